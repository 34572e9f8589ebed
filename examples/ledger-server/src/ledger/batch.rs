//! Group commit of consumes: the charges queued at the same time are applied together, in one
//! transaction with one commit (on PostgreSQL one statement, `points_consume_batch`, so one
//! round trip too). Each writer has a queue of its own and a user's charges always go to the
//! same one ([`POSTGRES_WRITERS`] on PostgreSQL, one on SQLite), so the queued charges of a
//! busy user coalesce into one group rather than wait on each other's row lock in several.
//!
//! Invariants:
//! - A charge is answered only after the group holding it is committed: an acknowledged charge
//!   is durable as far as the database's commit is.
//! - Each charge of a group gets the answer it would get alone, applied in the group's order: a
//!   replay, a refusal or a conflict of one writes nothing and leaves the others as they are.
//! - A group that fails as a whole (a database error) is rolled back and its charges are tried
//!   again one by one, each in a transaction of its own: one failing charge fails only itself,
//!   and none is applied twice (a charge that did land answers its replay).
//! - No waiting for company: a writer takes whatever is queued (at most [`MAX_GROUP`]) as soon
//!   as it is free, so a charge waits at most for the groups ahead of it; the queues hold at
//!   most [`MAX_QUEUED`] charges (later ones wait for room).
//! - On PostgreSQL a group locks its users' rows in user order, so two groups (of this instance
//!   or another) never deadlock; a serialization failure or a deadlock is retried as a whole.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sqlx::Row;
use tokio::sync::{oneshot, Semaphore};

use super::charge::{charge_in_transaction, Charge};
use super::write::to_micros;
use super::{retrying, InFlight, LedgerError, Receipt};
use crate::amount::MAX_AMOUNT;
use crate::clock::Clock;
use crate::db::{Backend, Db};
use crate::stream::{Hub, Notice};

/// The most charges one group holds.
pub const MAX_GROUP: usize = 128;
/// The most charges waiting for a writer; past it, a consume waits for room.
pub const MAX_QUEUED: usize = 4096;
/// Writers (queues, groups applied at once) on PostgreSQL; SQLite has one. Measured on the
/// 2-core benchmark machine (`BENCHMARKS.md`): 2 gave the largest groups without leaving the
/// server idle; 1 left it half idle, 4 and 8 made groups of 2 to 3 charges.
pub const POSTGRES_WRITERS: usize = 2;

/// What the groups applied so far add up to (see [`crate::Ledger::group_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupStats {
    /// Groups applied.
    pub groups: u64,
    /// Charges in them.
    pub charges: u64,
    /// Time spent applying them (the database's part of a consume's latency), in microseconds.
    pub busy_micros: u64,
}

#[derive(Debug, Default)]
struct Counters {
    groups: AtomicU64,
    charges: AtomicU64,
    busy_micros: AtomicU64,
}

/// One charge waiting for its group, and where its answer goes.
struct Job {
    charge: Charge,
    reply: oneshot::Sender<Result<Receipt, LedgerError>>,
    /// Held until the charge is answered: a retry of its key meanwhile is told it is in flight.
    in_flight: InFlight,
    /// Its place in the queue.
    _room: tokio::sync::OwnedSemaphorePermit,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Writer tasks running on this queue: 0 or 1.
    writers: usize,
}

/// The queues of charges and the writers that apply them in groups: one queue per writer, a
/// user's charges always in the same queue (so one user's queued charges coalesce into one
/// group instead of waiting on each other's row lock in several).
pub(super) struct Batcher {
    queues: Vec<Arc<Mutex<Queue>>>,
    room: Arc<Semaphore>,
    db: Db,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    hub: Arc<Hub>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("writers", &self.queues.len())
            .finish_non_exhaustive()
    }
}

impl Batcher {
    /// A batcher over `db`: one writer on SQLite, [`POSTGRES_WRITERS`] on PostgreSQL.
    pub(super) fn new(db: Db, clock: Arc<dyn Clock>, hub: Arc<Hub>) -> Self {
        let writers = match db.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => POSTGRES_WRITERS,
        };
        Self {
            queues: (0..writers).map(|_| Arc::default()).collect(),
            room: Arc::new(Semaphore::new(MAX_QUEUED)),
            db,
            clock,
            counters: Arc::default(),
            hub,
        }
    }

    /// The groups applied so far.
    pub(super) fn stats(&self) -> GroupStats {
        GroupStats {
            groups: self.counters.groups.load(Ordering::Relaxed),
            charges: self.counters.charges.load(Ordering::Relaxed),
            busy_micros: self.counters.busy_micros.load(Ordering::Relaxed),
        }
    }

    /// Queues `charge` and answers it once its group is committed (or failed).
    pub(super) async fn submit(
        &self,
        charge: Charge,
        in_flight: InFlight,
    ) -> Result<Receipt, LedgerError> {
        let room = self
            .room
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let (reply, answer) = oneshot::channel();
        let queue = &self.queues[charge.user.as_u128() as usize % self.queues.len()];
        let start_writer = {
            let mut queue = queue.lock().expect("consume queue lock");
            queue.jobs.push_back(Job {
                charge,
                reply,
                in_flight,
                _room: room,
            });
            let start = queue.writers == 0;
            if start {
                queue.writers = 1;
            }
            start
        };
        if start_writer {
            tokio::spawn(write_groups(
                queue.clone(),
                self.db.clone(),
                self.clock.clone(),
                self.counters.clone(),
                self.hub.clone(),
            ));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::WorkerCrashed.into()))
    }
}

/// Counts a writer out if its task ends without doing so itself (a panic), and answers the
/// charges still queued for it with an error: none of them was applied, and none is left
/// waiting for a writer that will not come.
struct Running(Option<Arc<Mutex<Queue>>>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(queue) = self.0.take() {
            let stranded = match queue.lock() {
                Ok(mut queue) => {
                    queue.writers -= 1;
                    std::mem::take(&mut queue.jobs)
                }
                Err(_) => VecDeque::new(),
            };
            // Dropped outside the lock: each job's reply channel closes (its consume answers
            // an error) and its key is no longer in flight.
            drop(stranded);
        }
    }
}

/// A writer: applies the queued charges a group at a time until the queue is empty.
async fn write_groups(
    queue: Arc<Mutex<Queue>>,
    db: Db,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    hub: Arc<Hub>,
) {
    let mut running = Running(Some(queue.clone()));
    loop {
        let jobs: Vec<Job> = {
            let mut queue = queue.lock().expect("consume queue lock");
            if queue.jobs.is_empty() {
                // Counted out under the same lock a submitter checks: a charge queued after
                // this finds a writer slot free and starts one.
                queue.writers -= 1;
                running.0 = None;
                return;
            }
            let n = queue.jobs.len().min(MAX_GROUP);
            queue.jobs.drain(..n).collect()
        };
        let charges: Vec<&Charge> = jobs.iter().map(|job| &job.charge).collect();
        let started = Instant::now();
        let answers = apply(&db, &*clock, &hub, &charges).await;
        counters.groups.fetch_add(1, Ordering::Relaxed);
        counters
            .charges
            .fetch_add(charges.len() as u64, Ordering::Relaxed);
        counters.busy_micros.fetch_add(
            started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
        for (job, answer) in jobs.into_iter().zip(answers) {
            let Job {
                reply, in_flight, ..
            } = job;
            // The key is free again before its answer leaves: a retry right after the answer
            // is not told it is in flight.
            drop(in_flight);
            let _ = reply.send(answer);
        }
    }
}

/// Applies `charges` as one group (see the module's invariants); answers them in their order.
pub(super) async fn apply(
    db: &Db,
    clock: &dyn Clock,
    hub: &Hub,
    charges: &[&Charge],
) -> Vec<Result<Receipt, LedgerError>> {
    let answers = apply_all(db, clock, charges).await;
    if db.backend() == Backend::Sqlite {
        // Committed: tell the streams (PostgreSQL's journal trigger does it there).
        for receipt in answers.iter().flatten() {
            if !receipt.replayed && receipt.transaction_id.is_some() {
                hub.publish(
                    receipt.user_id,
                    Notice::Committed {
                        seq: receipt.seq,
                        entry: None,
                    },
                );
            }
        }
    }
    answers
}

/// [`apply`], before the streams are told.
async fn apply_all(
    db: &Db,
    clock: &dyn Clock,
    charges: &[&Charge],
) -> Vec<Result<Receipt, LedgerError>> {
    let now = to_micros(clock.now());
    match retrying(|| apply_once(db, now, charges)).await {
        Ok(answers) => answers,
        Err(error) if charges.len() == 1 => vec![Err(error)],
        Err(error) => {
            tracing::warn!(%error, charges = charges.len(), "a group of consumes failed; applying them one by one");
            let mut answers = Vec::with_capacity(charges.len());
            for charge in charges {
                let alone = retrying(|| apply_once(db, now, std::slice::from_ref(charge))).await;
                answers.push(alone.and_then(|mut answer| answer.pop().expect("one answer")));
            }
            answers
        }
    }
}

/// One attempt at a group: `Err` when the group as a whole failed (nothing of it committed);
/// else each charge's answer, all of it committed.
async fn apply_once(
    db: &Db,
    now: i64,
    charges: &[&Charge],
) -> Result<Vec<Result<Receipt, LedgerError>>, LedgerError> {
    match db.backend() {
        Backend::Postgres => apply_on_postgres(db, now, charges).await,
        Backend::Sqlite => {
            let mut tx = db.begin_group().await?;
            let mut answers = Vec::with_capacity(charges.len());
            for charge in charges {
                answers.push(charge_in_transaction(&mut tx, db, now, charge, None).await?);
            }
            tx.commit().await?;
            Ok(answers)
        }
    }
}

/// A group in one statement: `points_consume_batch` (`migrations-postgres/`) applies the
/// charges in the order given (here: by user, then as queued) in autocommit, and its rows come
/// back once the statement, and so its commit, is over.
async fn apply_on_postgres(
    db: &Db,
    now: i64,
    charges: &[&Charge],
) -> Result<Vec<Result<Receipt, LedgerError>>, LedgerError> {
    let Some(statements) = db.statements() else {
        return Err(sqlx::Error::Configuration("no PostgreSQL statement pool".into()).into());
    };
    let mut order: Vec<usize> = (0..charges.len()).collect();
    order.sort_by_key(|&i| charges[i].user);
    let column = |f: &dyn Fn(&Charge) -> Option<String>| -> Vec<Option<String>> {
        order.iter().map(|&i| f(charges[i])).collect()
    };
    let users = column(&|c| Some(c.user.to_string()));
    let keys = column(&|c| Some(c.key.as_str().to_owned()));
    let fingerprints = column(&|c| Some(c.fingerprint.clone()));
    let services = column(&|c| Some(c.request.service.clone()));
    let references = column(&|c| c.request.reference.clone());
    // Time-ordered ids (UUIDv7): new journal entries go to the end of its primary key index.
    let ids = column(&|_| Some(uuid::Uuid::now_v7().to_string()));
    let points: Vec<i64> = order.iter().map(|&i| charges[i].required).collect();
    let allow_debt: Vec<bool> = order
        .iter()
        .map(|&i| charges[i].request.allow_debt)
        .collect();
    let query = sqlx::query::<sqlx::Postgres>(
        "SELECT n, outcome, transaction_id, service, points, balance, seq \
         FROM points_consume_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(users)
    .bind(keys)
    .bind(fingerprints)
    .bind(services)
    .bind(points)
    .bind(allow_debt)
    .bind(references)
    .bind(ids)
    .bind(now)
    .bind(MAX_AMOUNT);
    let rows = statements.fetch_all(query).await?;
    let mut answers: Vec<Option<Result<Receipt, LedgerError>>> =
        (0..charges.len()).map(|_| None).collect();
    for row in &rows {
        let n: i32 = row.try_get(0)?;
        let Some(&i) = usize::try_from(n - 1).ok().and_then(|n| order.get(n)) else {
            return Err(sqlx::Error::Decode(
                format!("points_consume_batch answered row {n}").into(),
            )
            .into());
        };
        answers[i] = Some(outcome(charges[i], row)?);
    }
    answers
        .into_iter()
        .map(|a| {
            a.ok_or_else(|| {
                sqlx::Error::Decode("points_consume_batch left a charge unanswered".into()).into()
            })
        })
        .collect()
}

/// A charge's answer from its row of `points_consume_batch`.
fn outcome(
    charge: &Charge,
    row: &sqlx::postgres::PgRow,
) -> Result<Result<Receipt, LedgerError>, LedgerError> {
    let outcome: String = row.try_get(1)?;
    let receipt = |replayed: bool| -> Result<Receipt, LedgerError> {
        Ok(Receipt {
            user_id: charge.user,
            transaction_id: row.try_get(2)?,
            service: row.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
            points: row.try_get(4)?,
            balance: row.try_get(5)?,
            replayed,
            seq: row.try_get(6)?,
        })
    };
    Ok(match outcome.as_str() {
        "charged" => Ok(receipt(false)?),
        "replayed" => Ok(receipt(true)?),
        "mismatch" => Err(LedgerError::IdempotencyMismatch),
        "out_of_range" => Err(LedgerError::AmountOutOfRange),
        "insufficient" => Err(LedgerError::InsufficientPoints {
            service: charge.request.service.clone(),
            required: charge.required,
            balance: row.try_get(5)?,
        }),
        other => {
            return Err(sqlx::Error::Decode(
                format!("points_consume_batch answered `{other}`").into(),
            )
            .into())
        }
    })
}
