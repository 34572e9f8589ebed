//! The durable journal of charges made but not yet acknowledged by the ledger.
//!
//! A charge is written here (fsync, then an atomic rename) *before* its consume request is sent,
//! and removed when the ledger acknowledges it. Whatever is left after a crash, a timeout or a
//! 5xx is replayed later with the same idempotency key and the same body, so the ledger applies
//! each charge exactly once: never lost, never made twice.
//!
//! Each charge belongs to the account it was made for (see [`account_of`](crate::client::account_of)): a replay sends only
//! the charges of the account signed in now, so a charge left by one user is never billed to the
//! next user who signs in on the same machine; it waits until its own account signs in again.
//!
//! One file per charge, named by a random id (keys may hold any printable character); the key
//! and the request are inside. One process owns a journal directory at a time.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::client::{ConsumeRequest, IdempotencyKey, LedgerClient};
use crate::models::ChargeReceipt;
use crate::{Error, Result};

/// One charge waiting for the ledger's acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingCharge {
    /// The idempotency key every attempt of this charge is sent with.
    pub idempotency_key: String,
    /// The exact body to send.
    pub request: ConsumeRequest,
    /// The account the charge was made for ([`account_of`](crate::client::account_of) its token); `None` when it was
    /// recorded while signed out, in which case the next account to sign in replays it.
    #[serde(default)]
    pub account: Option<String>,
    /// When the charge was first recorded (seconds since the Unix epoch).
    pub recorded_at: u64,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayReport {
    /// Charges the ledger acknowledged (applied now, or found already applied).
    pub acknowledged: Vec<ChargeReceipt>,
    /// Charges the ledger proved can never apply; dropped with a warning.
    pub dropped: Vec<(PendingCharge, Error)>,
    /// Charges kept for a later replay (ledger unreachable, 5xx, signed out, made for another
    /// account, ...).
    pub kept: usize,
}

type Observer = Box<dyn Fn(usize) + Send + Sync>;

/// A directory of pending charges.
pub struct Journal {
    dir: PathBuf,
    /// Idempotency key → the file holding that charge.
    files: Mutex<HashMap<String, PathBuf>>,
    /// Serialises replays: one at a time.
    replaying: tokio::sync::Mutex<()>,
    /// Called with the number of pending charges whenever it changes.
    observer: Option<Observer>,
}

impl Journal {
    /// Opens (creating it if needed) the journal in `dir`, loading what a previous run left.
    ///
    /// Temporary files of an interrupted write are deleted (their consume was never sent);
    /// unreadable files are renamed `*.corrupt` and reported with a warning.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(storage)?;
        let mut files = HashMap::new();
        for entry in fs::read_dir(&dir).map_err(storage)? {
            let path = entry.map_err(storage)?.path();
            match path.extension().and_then(|ext| ext.to_str()) {
                Some("tmp") => {
                    let _ = fs::remove_file(&path);
                }
                Some("json") => match read_charge(&path) {
                    Ok(charge) => {
                        files.insert(charge.idempotency_key, path);
                    }
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "unreadable pending charge set aside");
                        let _ = fs::rename(&path, path.with_extension("corrupt"));
                    }
                },
                _ => {}
            }
        }
        Ok(Self {
            dir,
            files: Mutex::new(files),
            replaying: tokio::sync::Mutex::new(()),
            observer: None,
        })
    }

    /// Calls `observer` with the number of pending charges after every change.
    pub fn with_observer(mut self, observer: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The number of pending charges.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no charge is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pending charges, oldest first.
    pub fn pending(&self) -> Vec<PendingCharge> {
        let paths: Vec<PathBuf> = self.lock().values().cloned().collect();
        let mut charges: Vec<PendingCharge> = paths
            .iter()
            .filter_map(|path| read_charge(path).ok())
            .collect();
        charges.sort_by_key(|charge| charge.recorded_at);
        charges
    }

    /// Durably records `request` under `key`, for `account`: when this returns, the charge
    /// survives a crash.
    pub fn record(
        &self,
        account: Option<&str>,
        key: &IdempotencyKey,
        request: &ConsumeRequest,
    ) -> Result<PendingCharge> {
        let charge = PendingCharge {
            idempotency_key: key.as_str().to_owned(),
            request: request.clone(),
            account: account.map(str::to_owned),
            recorded_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|since| since.as_secs())
                .unwrap_or_default(),
        };
        let bytes =
            serde_json::to_vec_pretty(&charge).map_err(|e| Error::Storage(e.to_string()))?;
        let count = {
            let mut files = self.lock();
            let path = files
                .get(key.as_str())
                .cloned()
                .unwrap_or_else(|| self.dir.join(format!("{}.json", uuid::Uuid::new_v4())));
            write_atomically(&path, &bytes).map_err(storage)?;
            files.insert(charge.idempotency_key.clone(), path);
            files.len()
        };
        self.notify(count);
        Ok(charge)
    }

    /// Forgets the charge made with `key` (acknowledged, or proved impossible).
    pub fn remove(&self, key: &str) -> Result<()> {
        let count = {
            let mut files = self.lock();
            let Some(path) = files.remove(key) else {
                return Ok(());
            };
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    files.insert(key.to_owned(), path);
                    return Err(storage(error));
                }
            }
            sync_dir(&self.dir);
            files.len()
        };
        self.notify(count);
        Ok(())
    }

    /// Records the charge, sends it, and settles the journal entry by the outcome: removed on
    /// acknowledgement or when the ledger proves it can never apply, kept otherwise.
    ///
    /// If the journal cannot be written (disk full, read-only), the charge is still sent once,
    /// unjournaled, and the failure logged: the work it pays for is already done.
    pub async fn consume(
        &self,
        client: &LedgerClient,
        request: &ConsumeRequest,
        key: &IdempotencyKey,
    ) -> Result<ChargeReceipt> {
        let recorded = self.record(client.account().as_deref(), key, request);
        if let Err(error) = &recorded {
            tracing::error!(%error, "could not journal a charge; sending it without a journal entry");
        }
        let outcome = client.consume(request, key).await;
        if recorded.is_ok() {
            self.settle(key.as_str(), &outcome);
        } else if let Err(error) = &outcome {
            tracing::error!(%error, "an unjournaled charge was not acknowledged and may be lost");
        }
        outcome
    }

    /// Sends every pending charge of the account `client` is signed in as again, with its own
    /// key and body; see [`ReplayReport`]. A replay already running makes this one return an
    /// empty report.
    pub async fn replay(&self, client: &LedgerClient) -> ReplayReport {
        let mut report = ReplayReport::default();
        let Ok(_guard) = self.replaying.try_lock() else {
            return report;
        };
        let account = client.account();
        for charge in self.pending() {
            let belongs = match (&charge.account, &account) {
                (Some(owner), Some(current)) => owner == current,
                (None, _) => true,
                (Some(_), None) => false,
            };
            if !belongs {
                report.kept += 1;
                continue;
            }
            let key = match IdempotencyKey::parse(charge.idempotency_key.clone()) {
                Ok(key) => key,
                Err(error) => {
                    self.settle(&charge.idempotency_key, &Err(error.clone()));
                    report.dropped.push((charge, error));
                    continue;
                }
            };
            let outcome = client.consume(&charge.request, &key).await;
            self.settle(key.as_str(), &outcome);
            match outcome {
                Ok(receipt) => report.acknowledged.push(receipt),
                Err(error) if proves_never_applicable(&error) => {
                    report.dropped.push((charge, error))
                }
                Err(_) => report.kept += 1,
            }
        }
        report
    }

    fn settle(&self, key: &str, outcome: &Result<ChargeReceipt>) {
        let drop = match outcome {
            Ok(_) => true,
            Err(error) if proves_never_applicable(error) => {
                tracing::warn!(%error, "dropping a pending charge the ledger can never apply");
                true
            }
            Err(error) => {
                tracing::info!(%error, "charge kept in the journal for a later replay");
                false
            }
        };
        if drop {
            if let Err(error) = self.remove(key) {
                tracing::error!(%error, "could not remove a settled charge from the journal");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PathBuf>> {
        self.files
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn notify(&self, count: usize) {
        if let Some(observer) = &self.observer {
            observer(count);
        }
    }
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("pending", &self.len())
            .finish_non_exhaustive()
    }
}

/// Whether the ledger's answer proves this charge can never be applied, so keeping it would only
/// replay it forever: an unknown service, a bad duration or key, a malformed request (400) or a
/// key already used for a different charge (422). Everything else (unreachable, 5xx, 401, 402,
/// an undecodable answer) may succeed later and is kept.
pub fn proves_never_applicable(error: &Error) -> bool {
    match error {
        Error::UnknownService { .. }
        | Error::InvalidDuration
        | Error::InvalidArgument { .. }
        | Error::NotChargeableHere { .. } => true,
        Error::Backend { status, .. } => *status == 400 || *status == 422,
        _ => false,
    }
}

fn read_charge(path: &Path) -> std::io::Result<PendingCharge> {
    let bytes = fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(std::io::Error::other)
}

/// Writes `bytes` to a temporary file, syncs it, renames it over `path`, and syncs the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// Makes a rename or a removal in `dir` durable (a no-op where directories cannot be opened).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

fn storage(error: std::io::Error) -> Error {
    Error::Storage(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(service: &str) -> ConsumeRequest {
        ConsumeRequest {
            allow_debt: true,
            ..ConsumeRequest::new(service)
        }
    }

    #[test]
    fn recorded_charges_survive_reopening_and_removal_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let key = IdempotencyKey::parse("job/1 ".trim()).unwrap();
        {
            let journal = Journal::open(dir.path()).unwrap();
            journal.record(None, &key, &request("compose")).unwrap();
            journal
                .record(None, &IdempotencyKey::random(), &request("cover_design"))
                .unwrap();
            assert_eq!(journal.len(), 2);
        }
        let journal = Journal::open(dir.path()).unwrap();
        let pending = journal.pending();
        assert_eq!(pending.len(), 2);
        assert!(pending.iter().any(
            |charge| charge.idempotency_key == "job/1" && charge.request == request("compose")
        ));
        journal.remove("job/1").unwrap();
        assert_eq!(Journal::open(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn recording_the_same_key_twice_keeps_one_entry() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let key = IdempotencyKey::random();
        journal.record(None, &key, &request("compose")).unwrap();
        journal.record(None, &key, &request("compose")).unwrap();
        assert_eq!(journal.len(), 1);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn interrupted_writes_and_corrupt_files_are_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.tmp"), b"{\"idempotency_key\":").unwrap();
        fs::write(dir.path().join("b.json"), b"not json").unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        assert!(journal.is_empty());
        assert!(!dir.path().join("a.tmp").exists());
        assert!(dir.path().join("b.corrupt").exists());
    }

    #[test]
    fn the_observer_sees_every_count() {
        let dir = tempfile::tempdir().unwrap();
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let journal = Journal::open(dir.path()).unwrap().with_observer({
            let seen = seen.clone();
            move |count| seen.lock().unwrap().push(count)
        });
        let key = IdempotencyKey::random();
        journal.record(None, &key, &request("compose")).unwrap();
        journal.remove(key.as_str()).unwrap();
        journal.remove(key.as_str()).unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![1, 0]);
    }

    #[test]
    fn only_answers_that_prove_impossibility_drop_a_charge() {
        assert!(proves_never_applicable(&Error::UnknownService {
            service: "x".into()
        }));
        assert!(proves_never_applicable(&Error::Backend {
            status: 422,
            code: Some("idempotency_conflict".into()),
            message: String::new()
        }));
        for kept in [
            Error::Network("reset".into()),
            Error::Timeout,
            Error::Unauthorized,
            Error::Protocol("eof".into()),
            Error::InsufficientPoints {
                service: None,
                required: None,
                balance: None,
            },
            Error::Backend {
                status: 503,
                code: None,
                message: String::new(),
            },
            Error::Backend {
                status: 404,
                code: None,
                message: String::new(),
            },
        ] {
            assert!(!proves_never_applicable(&kept), "{kept:?}");
        }
    }
}
