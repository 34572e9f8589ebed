//! Durable storage of charges made but not yet acknowledged by the ledger (what to do with them
//! is [`crate::sync`]'s job).
//!
//! A charge is written here (fsync, atomic rename, directory fsync) *before* its consume request
//! is sent, and removed when the ledger acknowledges it, so it survives a crash, a timeout or a
//! 5xx and is sent again later with the same idempotency key and body: never lost, never made
//! twice. Each entry is bound to the account that ran the job (never to none) and identified by
//! (account, idempotency key), the ledger's own idempotency scope. Tokens are never written.
//!
//! Charges the ledger refuses for good are moved to a record of their own (`refused/`), kept for
//! the app to show. One process owns a journal directory: [`Journal::open`] takes an advisory
//! lock on `journal.lock` and a second process gets a clear [`Error::Storage`].
//!
//! Every method does blocking file I/O: call them from a blocking thread in async code.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::client::{ConsumeRequest, IdempotencyKey};
use crate::models::RefusedCharge;
use crate::{Error, Result};

/// The lock file a journal's owner holds.
const LOCK_FILE: &str = "journal.lock";
/// The folder of refused charges.
const REFUSED_DIR: &str = "refused";

/// One charge waiting for the ledger's acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingCharge {
    /// The idempotency key every attempt of this charge is sent with.
    pub idempotency_key: String,
    /// The exact body to send.
    pub request: ConsumeRequest,
    /// The account that ran the job (see [`crate::session::Session::account`]): the charge is
    /// only ever sent with a token of this account.
    pub account: String,
    /// When the charge was first recorded (seconds since the Unix epoch).
    pub recorded_at: u64,
    /// The ledger's account of the token the job's price was checked with (contract v1.2), when
    /// the ledger stated it: the charge is never sent with a token of another ledger account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_user: Option<String>,
    /// The price the ledger quoted at the job's pre-check: counted against the balance by the
    /// next pre-checks on this machine until the charge is acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<i64>,
    /// The offline allowance the job ran under (see [`crate::offline`]), sent with the charge so
    /// that the ledger settles it under that allowance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowance_id: Option<String>,
}

impl PendingCharge {
    /// A charge of `request` under `key` for `account`, recorded now.
    pub fn new(account: &str, key: &IdempotencyKey, request: ConsumeRequest) -> Self {
        Self {
            idempotency_key: key.as_str().to_owned(),
            request,
            account: account.to_owned(),
            recorded_at: now_seconds(),
            ledger_user: None,
            price: None,
            allowance_id: None,
        }
    }

    fn id(&self) -> (String, String) {
        (self.account.clone(), self.idempotency_key.clone())
    }
}

/// A pending charge as an older version wrote it (the account could be missing).
#[derive(Deserialize)]
struct StoredCharge {
    idempotency_key: String,
    request: ConsumeRequest,
    #[serde(default)]
    account: Option<String>,
    recorded_at: u64,
    #[serde(default)]
    ledger_user: Option<String>,
    #[serde(default)]
    price: Option<i64>,
    #[serde(default)]
    allowance_id: Option<String>,
}

/// A refused charge on disk: the record, the account it belongs to, and what it takes to send
/// it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredRefusal {
    account: String,
    refused: RefusedCharge,
    #[serde(default)]
    request: Option<ConsumeRequest>,
    #[serde(default)]
    ledger_user: Option<String>,
    #[serde(default)]
    price: Option<i64>,
    /// Where it is on disk (not stored).
    #[serde(skip)]
    path: PathBuf,
}

impl StoredRefusal {
    fn id(&self) -> (&str, &str) {
        (&self.account, &self.refused.idempotency_key)
    }
}

/// The most refused charges kept on record, all accounts together; past it the oldest record is
/// deleted (it is also in the log).
pub const MAX_REFUSED: usize = 500;

struct Entry {
    path: PathBuf,
    charge: PendingCharge,
}

/// A directory of pending charges, owned by this process.
pub struct Journal {
    dir: PathBuf,
    /// Held open (and locked) until the journal is closed.
    lock_file: fs::File,
    /// Set by [`Journal::close`]: nothing is written any more.
    closed: AtomicBool,
    /// The pending charges in memory. Held only for map operations, never across file I/O, so
    /// readers (the UI's pending counts) never wait for an fsync.
    entries: Mutex<BTreeMap<(String, String), Entry>>,
    refused: Mutex<Vec<StoredRefusal>>,
    /// Serialises the writers (record, remove, refuse), held across their file I/O.
    writing: Mutex<()>,
    /// Counts the changes of the pending charges, for subscribers ([`Journal::subscribe`]).
    changes: tokio::sync::watch::Sender<u64>,
}

impl Journal {
    /// Opens (creating it if needed) the journal in `dir`, loading what a previous run left.
    ///
    /// Fails with [`Error::Storage`] when another process holds the journal. Temporary files of
    /// an interrupted write are deleted (their consume was never sent); unreadable files are
    /// renamed `*.corrupt`; entries an older version recorded without an account are moved to
    /// the refused record (no account may be billed for them).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(dir.join(REFUSED_DIR)).map_err(storage)?;
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(storage)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::storage(format!(
                    "the pending-charges journal in {} is used by another running instance of \
                     this app",
                    dir.display()
                )))
            }
            Err(fs::TryLockError::Error(error)) => return Err(storage(error)),
        }
        let journal = Self {
            lock_file: lock,
            closed: AtomicBool::new(false),
            entries: Mutex::new(BTreeMap::new()),
            refused: Mutex::new(load_refusals(&dir.join(REFUSED_DIR))),
            writing: Mutex::new(()),
            changes: tokio::sync::watch::Sender::new(0),
            dir,
        };
        let mut orphans = Vec::new();
        for entry in fs::read_dir(&journal.dir).map_err(storage)? {
            let path = entry.map_err(storage)?.path();
            match path.extension().and_then(|ext| ext.to_str()) {
                Some("tmp") => {
                    let _ = fs::remove_file(&path);
                }
                Some("json") => match read_json::<StoredCharge>(&path) {
                    Ok(StoredCharge {
                        idempotency_key,
                        request,
                        account,
                        recorded_at,
                        ledger_user,
                        price,
                        allowance_id,
                    }) => match account {
                        Some(account) => {
                            let charge = PendingCharge {
                                idempotency_key,
                                request,
                                account,
                                recorded_at,
                                ledger_user,
                                price,
                                allowance_id,
                            };
                            journal.lock().insert(charge.id(), Entry { path, charge });
                        }
                        None => orphans.push((path, idempotency_key, request, recorded_at)),
                    },
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "unreadable pending charge set aside");
                        let _ = fs::rename(&path, path.with_extension("corrupt"));
                    }
                },
                _ => {}
            }
        }
        for (path, key, request, recorded_at) in orphans {
            tracing::warn!(
                key,
                "a pending charge without an account is set aside, not sent"
            );
            let charge = PendingCharge {
                idempotency_key: key,
                request,
                account: String::new(),
                recorded_at,
                ledger_user: None,
                price: None,
                allowance_id: None,
            };
            let error = Error::storage("recorded without an account: sent to no one".into());
            journal.write_refusal(&charge, &error)?;
            fs::remove_file(&path).map_err(storage)?;
        }
        Ok(journal)
    }

    /// A receiver told of every change of the pending charges (the latest count of changes).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The number of pending charges, all accounts together.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no charge is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pending charges, oldest first.
    pub fn pending(&self) -> Vec<PendingCharge> {
        let mut charges: Vec<PendingCharge> = self
            .lock()
            .values()
            .map(|entry| entry.charge.clone())
            .collect();
        charges.sort_by_key(|charge| charge.recorded_at);
        charges
    }

    /// The pending charges of `account`, oldest first.
    pub fn pending_of(&self, account: &str) -> Vec<PendingCharge> {
        self.pending_where(|charge| charge.account == account)
    }

    /// The pending charges `belongs` accepts, oldest first.
    pub fn pending_where(&self, belongs: impl Fn(&PendingCharge) -> bool) -> Vec<PendingCharge> {
        let mut charges: Vec<PendingCharge> = self
            .lock()
            .values()
            .filter(|entry| belongs(&entry.charge))
            .map(|entry| entry.charge.clone())
            .collect();
        charges.sort_by_key(|charge| charge.recorded_at);
        charges
    }

    /// The number of pending charges of `account`.
    pub fn count_of(&self, account: &str) -> usize {
        self.lock()
            .keys()
            .filter(|(owner, _)| owner == account)
            .count()
    }

    /// The number of pending charges `belongs` accepts, and the sum of their quoted prices.
    pub fn tally_where(&self, belongs: impl Fn(&PendingCharge) -> bool) -> (usize, i64) {
        self.lock()
            .values()
            .filter(|entry| belongs(&entry.charge))
            .fold((0, 0), |(count, sum), entry| {
                let price = entry.charge.price.unwrap_or(0).max(0);
                (count + 1, sum.saturating_add(price))
            })
    }

    /// The pending charge of `account` under `key`.
    pub fn get(&self, account: &str, key: &str) -> Option<PendingCharge> {
        self.lock()
            .get(&(account.to_owned(), key.to_owned()))
            .map(|entry| entry.charge.clone())
    }

    /// Whether the charge of `account` under `key` is still pending.
    pub fn contains(&self, account: &str, key: &str) -> bool {
        self.lock()
            .contains_key(&(account.to_owned(), key.to_owned()))
    }

    /// The charges of `account` the ledger refused for good, oldest first.
    pub fn refused_of(&self, account: &str) -> Vec<RefusedCharge> {
        self.refused_where(|owner, _| owner == account)
    }

    /// The refused charges whose (account, ledger account) `belongs` accepts, oldest first.
    pub fn refused_where(
        &self,
        belongs: impl Fn(&str, Option<&str>) -> bool,
    ) -> Vec<RefusedCharge> {
        self.refusals()
            .iter()
            .filter(|stored| belongs(&stored.account, stored.ledger_user.as_deref()))
            .map(|stored| stored.refused.clone())
            .collect()
    }

    /// Durably records `charge`: when this returns, it survives a crash. Recording the same
    /// charge again is a no-op; another charge under the same account and key is refused with
    /// [`Error::InvalidArgument`] (`idempotencyKey`), so no pending charge is ever replaced.
    pub fn record(&self, charge: &PendingCharge) -> Result<()> {
        if charge.account.is_empty() {
            return Err(Error::Unauthorized);
        }
        {
            let _writing = self.writer();
            if self.closed.load(Ordering::SeqCst) {
                return Err(Error::storage("the journal is closed".into()));
            }
            if let Some(existing) = self.lock().get(&charge.id()) {
                return if existing.charge.request == charge.request {
                    Ok(())
                } else {
                    Err(Error::invalid_argument(
                        "idempotencyKey",
                        "is already used by a different pending charge",
                    ))
                };
            }
            let path = self.dir.join(format!("{}.json", uuid::Uuid::new_v4()));
            let bytes = serde_json::to_vec_pretty(charge)
                .map_err(|error| Error::storage(error.to_string()))?;
            write_atomically(&path, &bytes).map_err(storage)?;
            self.lock().insert(
                charge.id(),
                Entry {
                    path,
                    charge: charge.clone(),
                },
            );
        }
        self.notify();
        Ok(())
    }

    /// Releases the journal for another process (this one is quitting); later records fail.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.lock_file.unlock();
    }

    /// Whether [`Journal::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Forgets the charge of `account` made with `key` (acknowledged by the ledger).
    pub fn remove(&self, account: &str, key: &str) -> Result<()> {
        {
            let _writing = self.writer();
            if self.closed.load(Ordering::SeqCst) {
                // Another instance may own the files now; it will find the charge acknowledged.
                return Ok(());
            }
            let id = (account.to_owned(), key.to_owned());
            let Some(entry) = self.lock().remove(&id) else {
                return Ok(());
            };
            match fs::remove_file(&entry.path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    self.lock().insert(id, entry);
                    return Err(storage(error));
                }
            }
            sync_dir(&self.dir);
        }
        self.notify();
        Ok(())
    }

    /// Moves a charge the ledger refused for good from the pending charges to the refused record.
    /// A charge already on record is not recorded again: `None` then.
    pub fn refuse(&self, charge: &PendingCharge, error: &Error) -> Result<Option<RefusedCharge>> {
        let refused = self.write_refusal(charge, error)?;
        self.remove(&charge.account, &charge.idempotency_key)?;
        Ok(refused)
    }

    /// Records the refusal of a charge that was never pending (a different charge under a key
    /// already pending, a journal that could not be written): kept in memory when the disk
    /// refuses it. `None` when this charge is already on record.
    pub fn record_refusal(&self, charge: &PendingCharge, error: &Error) -> Option<RefusedCharge> {
        match self.write_refusal(charge, error) {
            Ok(refused) => refused,
            Err(storage_error) => {
                tracing::error!(%storage_error, "a refused charge is kept in memory only");
                let stored = refusal_of(charge, error);
                let refused = stored.refused.clone();
                let mut refusals = self.refusals();
                if refusals.iter().any(|known| known.id() == stored.id()) {
                    return None;
                }
                refusals.push(stored);
                Some(refused)
            }
        }
    }

    /// Moves the refused charge under `key` whose account `belongs` accepts back to the pending
    /// charges (the user asked to send it again). `Ok(None)` when there is no such record;
    /// [`Error::InvalidArgument`] when an older version recorded it without its body.
    pub fn retry_refused(
        &self,
        key: &str,
        belongs: impl Fn(&str, Option<&str>) -> bool,
    ) -> Result<Option<PendingCharge>> {
        let Some(stored) = self.find_refusal(key, &belongs) else {
            return Ok(None);
        };
        let Some(request) = stored.request.clone() else {
            return Err(Error::invalid_argument(
                "idempotencyKey",
                "this refused charge was recorded without its request and cannot be sent again",
            ));
        };
        let charge = PendingCharge {
            idempotency_key: stored.refused.idempotency_key.clone(),
            request,
            account: stored.account.clone(),
            recorded_at: stored.refused.recorded_at,
            ledger_user: stored.ledger_user.clone(),
            price: stored.price,
            // Sent again by the user's choice: a plain charge, no longer under the allowance
            // that refused it.
            allowance_id: None,
        };
        self.record(&charge)?;
        self.delete_refusal(&stored)?;
        Ok(Some(charge))
    }

    /// Deletes the refused charge under `key` whose account `belongs` accepts from the record
    /// (the user has seen it). Whether there was one.
    pub fn dismiss_refused(
        &self,
        key: &str,
        belongs: impl Fn(&str, Option<&str>) -> bool,
    ) -> Result<bool> {
        match self.find_refusal(key, &belongs) {
            Some(stored) => self.delete_refusal(&stored).map(|()| true),
            None => Ok(false),
        }
    }

    fn find_refusal(
        &self,
        key: &str,
        belongs: &impl Fn(&str, Option<&str>) -> bool,
    ) -> Option<StoredRefusal> {
        self.refusals()
            .iter()
            .find(|stored| {
                stored.refused.idempotency_key == key
                    && belongs(&stored.account, stored.ledger_user.as_deref())
            })
            .cloned()
    }

    fn delete_refusal(&self, stored: &StoredRefusal) -> Result<()> {
        let _writing = self.writer();
        if !stored.path.as_os_str().is_empty() {
            match fs::remove_file(&stored.path) {
                Ok(()) => sync_dir(&self.dir.join(REFUSED_DIR)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(storage(error)),
            }
        }
        self.refusals().retain(|known| known.id() != stored.id());
        Ok(())
    }

    fn write_refusal(
        &self,
        charge: &PendingCharge,
        error: &Error,
    ) -> Result<Option<RefusedCharge>> {
        let _writing = self.writer();
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::storage("the journal is closed".into()));
        }
        let mut stored = refusal_of(charge, error);
        if self
            .refusals()
            .iter()
            .any(|known| known.id() == stored.id())
        {
            return Ok(None);
        }
        let bytes =
            serde_json::to_vec_pretty(&stored).map_err(|e| Error::storage(e.to_string()))?;
        let path = self
            .dir
            .join(REFUSED_DIR)
            .join(format!("{}.json", uuid::Uuid::new_v4()));
        write_atomically(&path, &bytes).map_err(storage)?;
        stored.path = path;
        let refused = stored.refused.clone();
        let evicted = {
            let mut refusals = self.refusals();
            refusals.push(stored);
            let excess = refusals.len().saturating_sub(MAX_REFUSED);
            refusals.drain(..excess).collect::<Vec<_>>()
        };
        for old in evicted {
            tracing::warn!(key = %old.refused.idempotency_key, service = %old.refused.service,
                "the refused-charges record is full: its oldest entry is deleted");
            let _ = fs::remove_file(&old.path);
        }
        Ok(Some(refused))
    }

    fn refusals(&self) -> std::sync::MutexGuard<'_, Vec<StoredRefusal>> {
        self.refused
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writing
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn notify(&self) {
        self.changes.send_modify(|changes| *changes += 1);
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

/// The refusal record of `charge`, refused now with `error`.
fn refusal_of(charge: &PendingCharge, error: &Error) -> StoredRefusal {
    StoredRefusal {
        account: charge.account.clone(),
        refused: RefusedCharge {
            idempotency_key: charge.idempotency_key.clone(),
            service: charge.request.service.clone(),
            recorded_at: charge.recorded_at,
            refused_at: now_seconds(),
            error: error.to_points_error(),
        },
        request: Some(charge.request.clone()),
        ledger_user: charge.ledger_user.clone(),
        price: charge.price,
        path: PathBuf::new(),
    }
}

fn load_refusals(dir: &Path) -> Vec<StoredRefusal> {
    let mut refusals: Vec<StoredRefusal> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .filter_map(|path| {
            let mut stored: StoredRefusal = read_json(&path).ok()?;
            stored.path = path;
            Some(stored)
        })
        .collect();
    refusals.sort_by_key(|stored| stored.refused.refused_at);
    refusals
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<T> {
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

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or_default()
}

fn storage(error: std::io::Error) -> Error {
    Error::storage(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn request(service: &str) -> ConsumeRequest {
        ConsumeRequest {
            allow_debt: true,
            ..ConsumeRequest::new(service)
        }
    }

    fn charge(account: &str, key: &str, service: &str) -> PendingCharge {
        PendingCharge::new(
            account,
            &IdempotencyKey::parse(key).unwrap(),
            request(service),
        )
    }

    #[test]
    fn recorded_charges_survive_reopening_and_removal_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        {
            let journal = Journal::open(dir.path()).unwrap();
            journal
                .record(&charge("sub:a", "job/1", "compose"))
                .unwrap();
            journal
                .record(&charge("sub:a", "job/2", "cover_design"))
                .unwrap();
            assert_eq!(journal.len(), 2);
        }
        let journal = Journal::open(dir.path()).unwrap();
        let pending = journal.pending_of("sub:a");
        assert_eq!(pending.len(), 2);
        assert!(pending
            .iter()
            .any(|c| c.idempotency_key == "job/1" && c.request == request("compose")));
        assert!(journal.pending_of("sub:b").is_empty());
        assert_eq!(
            (journal.count_of("sub:a"), journal.count_of("sub:b")),
            (2, 0)
        );
        journal.remove("sub:a", "job/1").unwrap();
        drop(journal);
        assert_eq!(Journal::open(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn a_pending_charge_is_never_replaced_by_another_under_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        journal
            .record(&charge("sub:a", "job-7", "compose"))
            .unwrap();
        journal
            .record(&charge("sub:a", "job-7", "compose"))
            .unwrap();
        assert_eq!(journal.len(), 1, "the same charge again is one entry");
        assert!(matches!(
            journal.record(&charge("sub:a", "job-7", "cover_design")),
            Err(Error::InvalidArgument { ref field, .. }) if field == "idempotencyKey"
        ));
        assert_eq!(journal.pending()[0].request, request("compose"));
        // The ledger scopes keys per user: another account may use the same key.
        journal
            .record(&charge("sub:b", "job-7", "cover_design"))
            .unwrap();
        assert_eq!(journal.len(), 2);
    }

    #[test]
    fn a_second_owner_gets_a_storage_error_and_damages_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let first = Journal::open(dir.path()).unwrap();
        first.record(&charge("sub:a", "k", "compose")).unwrap();
        std::fs::write(dir.path().join("in-progress.tmp"), b"{").unwrap();
        let second = Journal::open(dir.path());
        assert!(
            matches!(second, Err(Error::Storage { reason: ref message }) if message.contains("another running instance")),
            "{second:?}"
        );
        assert!(dir.path().join("in-progress.tmp").exists(), "untouched");
        drop(first);
        assert_eq!(Journal::open(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn interrupted_writes_corrupt_files_and_accountless_entries_are_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.tmp"), b"{\"idempotency_key\":").unwrap();
        fs::write(dir.path().join("b.json"), b"not json").unwrap();
        fs::write(
            dir.path().join("c.json"),
            br#"{"idempotency_key":"old","request":{"service":"compose","allow_debt":true},"account":null,"recorded_at":1}"#,
        )
        .unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        assert!(journal.is_empty());
        assert!(!dir.path().join("a.tmp").exists());
        assert!(dir.path().join("b.corrupt").exists());
        assert!(!dir.path().join("c.json").exists());
        assert_eq!(journal.refused_of("")[0].idempotency_key, "old");
    }

    #[test]
    fn refused_charges_are_kept_on_record_per_account() {
        let dir = tempfile::tempdir().unwrap();
        {
            let journal = Journal::open(dir.path()).unwrap();
            let pending = charge("sub:a", "k1", "compose");
            journal.record(&pending).unwrap();
            let error = Error::Backend {
                status: 422,
                code: Some("idempotency_conflict".into()),
                message: "reused".into(),
            };
            let refused = journal.refuse(&pending, &error).unwrap().unwrap();
            assert_eq!(refused.error.clone(), error.to_points_error());
            assert!(journal.is_empty());
            assert_eq!(
                journal.record_refusal(&pending, &error),
                None,
                "one record per charge"
            );
        }
        let journal = Journal::open(dir.path()).unwrap();
        assert_eq!(journal.refused_of("sub:a").len(), 1);
        assert!(journal.refused_of("sub:b").is_empty());
    }

    #[test]
    fn readers_never_wait_for_a_writer_in_its_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(dir.path()).unwrap());
        journal.record(&charge("sub:a", "k", "compose")).unwrap();
        let (held, release) = std::sync::mpsc::channel::<()>();
        let (entered, in_write) = std::sync::mpsc::channel::<()>();
        let writer = {
            let journal = journal.clone();
            std::thread::spawn(move || {
                // A writer in the middle of its file I/O holds this lock.
                let _writing = journal.writer();
                entered.send(()).unwrap();
                held.send(()).ok();
                std::thread::sleep(std::time::Duration::from_millis(800));
            })
        };
        in_write.recv().unwrap();
        let started = std::time::Instant::now();
        assert_eq!(journal.count_of("sub:a"), 1);
        assert_eq!(journal.pending_of("sub:a").len(), 1);
        assert!(journal.contains("sub:a", "k"));
        assert_eq!(journal.refused_of("sub:a").len(), 0);
        assert!(
            started.elapsed() < std::time::Duration::from_millis(200),
            "a reader waited {:?} for the writer",
            started.elapsed()
        );
        drop(release);
        writer.join().unwrap();
    }

    #[test]
    fn the_refused_record_is_bounded_and_its_entries_can_be_sent_again_or_dismissed() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let error = Error::Backend {
            status: 422,
            code: Some("unknown_service".into()),
            message: String::new(),
        };
        for n in 0..MAX_REFUSED + 5 {
            let refused = charge("sub:a", &format!("k{n}"), "compose");
            journal.record(&refused).unwrap();
            journal.refuse(&refused, &error).unwrap();
        }
        assert_eq!(journal.refused_of("sub:a").len(), MAX_REFUSED);
        assert_eq!(
            fs::read_dir(dir.path().join(REFUSED_DIR)).unwrap().count(),
            MAX_REFUSED,
            "the oldest files are deleted too"
        );
        assert_eq!(journal.refused_of("sub:a")[0].idempotency_key, "k5");
        let mine = |account: &str, _: Option<&str>| account == "sub:a";
        let back = journal.retry_refused("k7", mine).unwrap().unwrap();
        assert_eq!(back.request, request("compose"));
        assert!(journal.contains("sub:a", "k7"));
        assert!(journal.retry_refused("k7", mine).unwrap().is_none());
        assert!(journal.dismiss_refused("k8", mine).unwrap());
        assert!(
            !journal.dismiss_refused("k9", |_, _| false).unwrap(),
            "not theirs"
        );
        drop(journal);
        let journal = Journal::open(dir.path()).unwrap();
        assert_eq!(journal.refused_of("sub:a").len(), MAX_REFUSED - 2);
        assert_eq!(journal.len(), 1);
    }

    #[test]
    fn subscribers_see_every_change_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let changes = journal.subscribe();
        journal.record(&charge("sub:a", "k", "compose")).unwrap();
        assert_eq!((*changes.borrow(), journal.len()), (1, 1));
        journal.record(&charge("sub:a", "k", "compose")).unwrap();
        assert_eq!(*changes.borrow(), 1, "recording it again changes nothing");
        journal.remove("sub:a", "k").unwrap();
        assert_eq!((*changes.borrow(), journal.len()), (2, 0));
        journal.remove("sub:a", "k").unwrap();
        assert_eq!(*changes.borrow(), 2, "removing it again changes nothing");
    }
}
