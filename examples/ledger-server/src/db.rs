//! The database: connection pools over SQLite or PostgreSQL, and the few places where the two
//! dialects differ (how a write transaction starts, how the user's row is locked).

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgRow, Postgres};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};
use tokio::sync::Semaphore;
use uuid::Uuid;

/// Which database the URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, in a file or in memory.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Connection pools to the ledger's database (migrated): one for reads, one for writes.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    write_pool: AnyPool,
    backend: Backend,
    options: AnyConnectOptions,
    statements: Option<std::sync::Arc<StatementPool>>,
}

/// Connections for single statements in autocommit on PostgreSQL (the batched consume),
/// outside sqlx's pool: that pool pings every connection it takes back, one more round trip
/// per request, as long as the consume itself. A connection goes back only after its
/// statement ran to the end (a server error leaves it usable: the implicit transaction is
/// rolled back); any other failure, or a future dropped mid-statement, closes it.
#[derive(Debug)]
pub struct StatementPool {
    options: PgConnectOptions,
    idle: std::sync::Mutex<Vec<PgConnection>>,
    permits: Semaphore,
}

impl StatementPool {
    fn new(options: PgConnectOptions, max: u32) -> Self {
        Self {
            options,
            idle: std::sync::Mutex::new(Vec::new()),
            permits: Semaphore::new(max.max(1) as usize),
        }
    }

    async fn connect(&self) -> Result<PgConnection, sqlx::Error> {
        let mut conn = self.options.connect().await?;
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .await?;
        Ok(conn)
    }

    /// Runs `query` on an idle connection (or a new one) and answers its rows, once the
    /// server said the statement is over (in autocommit: committed).
    pub async fn fetch_all<'q>(
        &self,
        query: sqlx::query::Query<'q, Postgres, PgArguments>,
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().expect("statement pool lock").pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let result = query.fetch_all(&mut conn).await;
        match &result {
            Ok(_) | Err(sqlx::Error::Database(_)) => {
                self.idle.lock().expect("statement pool lock").push(conn)
            }
            Err(_) => drop(conn),
        }
        result
    }

    async fn close(&self) {
        self.permits.close();
        let idle: Vec<_> = std::mem::take(&mut *self.idle.lock().expect("statement pool lock"));
        for conn in idle {
            let _ = conn.close().await;
        }
    }
}

/// The migrations in `migrations/` (both dialects), then, on PostgreSQL, those in
/// `migrations-postgres/` (numbered from 1001: the one-statement consume function). Each set
/// ignores the other's versions in the migration table.
async fn migrate(pool: &AnyPool, backend: Backend) -> Result<(), sqlx::migrate::MigrateError> {
    let mut shared = sqlx::migrate!("./migrations");
    shared.set_ignore_missing(true);
    shared.run(pool).await?;
    if backend == Backend::Postgres {
        let mut postgres = sqlx::migrate!("./migrations-postgres");
        postgres.set_ignore_missing(true);
        postgres.run(pool).await?;
    }
    Ok(())
}

impl Db {
    /// Connects to `url` (`sqlite:...` or `postgres://...`) and runs the migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(sqlx::Error::Configuration(
                format!("unsupported database URL `{url}`: use sqlite:... or postgres://...")
                    .into(),
            ));
        };
        let in_memory =
            backend == Backend::Sqlite && (url.contains(":memory:") || url.contains("mode=memory"));
        let options = AnyConnectOptions::from_str(url)?;
        let pool_options = |max: u32| {
            let mut pool = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(60));
            pool = if in_memory {
                // Every connection to `:memory:` is its own database: keep exactly one, forever.
                pool.max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
            } else {
                pool.max_connections(max.max(1))
            };
            if backend == Backend::Postgres {
                // No ping before each use: it is a round trip of its own, as long as a consume.
                // A connection the server has dropped fails one request instead; nothing was
                // written, and the client's retry (same idempotency key) goes through.
                pool = pool.test_before_acquire(false);
                // The one-statement consume runs in an implicit transaction, which takes the
                // session's isolation level: READ COMMITTED, whatever the server's or the
                // database's default (explicit transactions name it in their BEGIN).
                pool = pool.after_connect(|conn, _meta| {
                    Box::pin(async move {
                        conn.execute(
                            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
                        )
                        .await?;
                        Ok(())
                    })
                });
            }
            if backend == Backend::Sqlite {
                pool = pool.after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if !in_memory {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            // FULL: a commit acknowledged to a client survives a power cut
                            // (NORMAL in WAL mode may lose the last commits).
                            conn.execute("PRAGMA synchronous = FULL").await?;
                        }
                        conn.execute("PRAGMA busy_timeout = 30000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        Ok(())
                    })
                });
            }
            pool
        };
        let pool = pool_options(max_connections)
            .connect_with(options.clone())
            .await?;
        migrate(&pool, backend).await?;
        // SQLite has one writer at a time: queue writers on one connection (a fair queue)
        // rather than let them sleep in SQLite's busy handler. PostgreSQL locks rows itself.
        let write_pool = if backend == Backend::Sqlite && !in_memory {
            pool_options(1).connect_with(options.clone()).await?
        } else {
            pool.clone()
        };
        let statements = match backend {
            Backend::Postgres => Some(std::sync::Arc::new(StatementPool::new(
                PgConnectOptions::from_str(url)?,
                max_connections,
            ))),
            Backend::Sqlite => None,
        };
        Ok(Self {
            pool,
            write_pool,
            backend,
            options,
            statements,
        })
    }

    /// The pool, for reads.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A connection of its own, outside the pools (for a session-level lock held while the
    /// pools do the work). Close it when done.
    pub async fn dedicated_connection(&self) -> Result<sqlx::AnyConnection, sqlx::Error> {
        use sqlx::ConnectOptions;
        self.options.connect().await
    }

    /// The connections for single statements on PostgreSQL (`None` on SQLite).
    pub fn statements(&self) -> Option<&StatementPool> {
        self.statements.as_deref()
    }

    /// Which dialect this database speaks.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction for `user`, holding their summary row lock when the row
    /// exists.
    ///
    /// - SQLite: `BEGIN IMMEDIATE` takes the database's write lock at once, so two writers never
    ///   both read and then collide on upgrade.
    /// - PostgreSQL: `BEGIN ISOLATION LEVEL READ COMMITTED` (whatever the server's default: the
    ///   money rules rely on each statement seeing what the previous holder of the row lock
    ///   committed), then `SELECT ... FOR UPDATE` as a statement of its own inside the
    ///   transaction. When the lock fails (a `lock_timeout`, a cancel) the transaction is
    ///   dropped and rolled back before its connection goes back to the pool; a lock taken in the
    ///   `BEGIN` query itself would leave the connection inside an aborted transaction.
    ///
    /// Reads of the user's rows must come in later statements, so that they see what the
    /// previous holder of the lock committed.
    pub async fn begin_write(
        &self,
        user: Uuid,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.write_pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => {
                let mut tx = self
                    .write_pool
                    .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
                    .await?;
                sqlx::query("SELECT last_seq FROM accounts WHERE user_id = $1 FOR UPDATE")
                    .bind(user.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    /// Starts the transaction of a group of consumes on SQLite: `BEGIN IMMEDIATE` on the one
    /// write connection (the database's write lock, held until the group commits). PostgreSQL
    /// applies a group in one statement instead (`points_consume_batch`).
    pub async fn begin_group(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        self.write_pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// The statement that takes a user's summary row lock (`$1`: the user) inside a write
    /// transaction, for a row created after [`Db::begin_write`]: `SELECT ... FOR UPDATE` on
    /// PostgreSQL; none on SQLite, whose immediate transaction holds the write lock.
    pub fn row_lock_sql(&self) -> Option<&'static str> {
        match self.backend {
            Backend::Postgres => {
                Some("SELECT last_seq FROM accounts WHERE user_id = $1 FOR UPDATE")
            }
            Backend::Sqlite => None,
        }
    }

    /// What ends a `SELECT` that locks the rows it reads, inside a write transaction that holds
    /// the user's summary row lock: ` FOR UPDATE` on PostgreSQL; nothing on SQLite, whose
    /// immediate transaction holds the write lock.
    pub fn row_lock_clause(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        if let Some(statements) = &self.statements {
            statements.close().await;
        }
        self.write_pool.close().await;
        self.pool.close().await;
    }
}
