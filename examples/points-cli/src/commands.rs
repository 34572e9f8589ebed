//! The wiring of the SDK (sessions → client → journal → sync → jobs) and one function per
//! subcommand.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use points_sdk::client::IdempotencyKey;
use points_sdk::journal::Journal;
use points_sdk::{
    ChargeOutcome, ChargeSync, Error, JobSpec, Jobs, LedgerClient, Session, Sessions, SyncPolicy,
    TokenProvider,
};

use crate::output;
use crate::{Cli, Command};

/// How long a `run` lets its charge's first send and journal settle before the process exits.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// The SDK or the ledger said no.
    Points(Error),
    /// A missing flag or variable.
    Usage(String),
    /// The job's own work failed (`run --fail`): nothing was charged.
    WorkFailed,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Points(error)
    }
}

impl Failure {
    /// 2 for too few points, 1 for anything else.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Points(Error::InsufficientPoints { .. }) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

/// What the commands share: the session holder and a client reading its token.
struct Ledger {
    sessions: Arc<Sessions>,
    client: LedgerClient,
}

impl Ledger {
    fn connect(cli: &Cli, token_required: bool) -> Result<Self, Failure> {
        let base_url = cli.base_url.clone().ok_or_else(|| {
            Failure::Usage("no ledger URL: pass --base-url or set POINTS_API_URL".into())
        })?;
        let sessions = Arc::new(Sessions::new(None));
        match &cli.token {
            Some(token) => sessions.sign_in(Session::new(token.clone(), cli.account.clone())?),
            None if token_required => {
                return Err(Failure::Usage(
                    "no session token: pass --token or set POINTS_TOKEN".into(),
                ))
            }
            None => sessions.sign_out(),
        }
        let client = LedgerClient::builder(base_url)
            .token_provider({
                let sessions = sessions.clone();
                move || sessions.token()
            })
            .build()?;
        Ok(Self { sessions, client })
    }

    /// The charge sender over the journal in `dir` (which this process then owns).
    fn sync(&self, dir: &Path) -> Result<ChargeSync, Failure> {
        let journal = Arc::new(Journal::open(dir)?);
        Ok(ChargeSync::new(
            self.client.clone(),
            journal,
            self.sessions.clone(),
            SyncPolicy::default(),
            Arc::new(()),
        ))
    }
}

/// Runs the command `cli` names.
pub async fn execute(cli: Cli) -> Result<ExitCode, Failure> {
    let json = cli.json;
    match &cli.command {
        Command::Balance => {
            let ledger = Ledger::connect(&cli, true)?;
            let balance = ledger.client.balance().await?;
            output::balance(json, &balance);
            Ok(ExitCode::SUCCESS)
        }
        Command::Cost { service, seconds } => {
            let ledger = Ledger::connect(&cli, true)?;
            let cost = ledger.client.cost(service, *seconds).await?;
            output::cost(json, &cost);
            Ok(if cost.sufficient {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Command::Run {
            service,
            key,
            seconds,
            fail,
        } => {
            let ledger = Ledger::connect(&cli, true)?;
            let sync = ledger.sync(&cli.journal)?;
            let jobs = Jobs::new(ledger.client.clone(), sync, Arc::new(()));
            let outcome = run(&jobs, service, key.as_deref(), *seconds, *fail).await;
            // Lets a job past its pre-check journal its charge, then releases the journal.
            jobs.shutdown(SHUTDOWN_GRACE).await;
            let outcome = outcome?;
            output::charge(json, service, &outcome);
            Ok(match outcome {
                ChargeOutcome::Refused { .. } => ExitCode::FAILURE,
                _ => ExitCode::SUCCESS,
            })
        }
        Command::Pending => {
            let ledger = Ledger::connect(&cli, false)?;
            let sync = ledger.sync(&cli.journal)?;
            let status = sync.status();
            let charges = match ledger.sessions.current() {
                Some(session) => sync.journal().pending_where(|charge| {
                    session.owns(&charge.account, charge.ledger_user.as_deref())
                }),
                None => Vec::new(),
            };
            sync.shutdown();
            output::pending(json, &status, &charges);
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync => {
            let ledger = Ledger::connect(&cli, true)?;
            let sync = ledger.sync(&cli.journal)?;
            let report = sync.sync_now().await;
            let left = sync.pending_count(ledger.sessions.current().as_ref());
            let others = sync.journal().len().saturating_sub(left);
            sync.shutdown();
            output::sync(json, &report, left, others);
            Ok(if report.failed > 0 || !report.refused.is_empty() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// Runs the trivial job of `run` through [`Jobs::run`].
async fn run(
    jobs: &Jobs,
    service: &str,
    job_key: Option<&str>,
    seconds: Option<f64>,
    fail: bool,
) -> Result<ChargeOutcome, Failure> {
    let job_key = match job_key {
        Some(key) => key.to_owned(),
        None => IdempotencyKey::random().to_string(),
    };
    let key = IdempotencyKey::parse(format!("{service}:{job_key}"))?;
    let mut spec = JobSpec::new(service, key);
    spec.duration = seconds;
    spec.reference = Some("points-cli".into());
    let charged = jobs
        .run(spec, || async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if fail {
                Err(Failure::WorkFailed)
            } else {
                Ok(())
            }
        })
        .await?;
    Ok(charged.charge)
}
