//! A small state file written by a thread of its own: callers hand it the latest bytes and never
//! wait on the disk; only the latest state is written (atomically: a crash leaves the old file or
//! the new one).

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};

/// One state file and its writer thread. Every state handed to it gets a ticket, in the order
/// it was handed over; a state is never written over a later one (the writer thread and
/// [`StateFile::write_now`] share the order).
pub(crate) struct StateFile {
    path: PathBuf,
    sender: Mutex<mpsc::Sender<(u64, Vec<u8>)>>,
    /// The last ticket handed out.
    tickets: std::sync::atomic::AtomicU64,
    /// The ticket of the state on disk; held across each write.
    written: std::sync::Arc<Mutex<u64>>,
}

/// Writes `bytes` (of `ticket`) unless a later state is on disk already.
fn write_in_order(
    path: &Path,
    written: &Mutex<u64>,
    ticket: u64,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut last = written.lock().unwrap_or_else(|p| p.into_inner());
    if ticket <= *last {
        return Ok(());
    }
    write_atomically(path, bytes)?;
    *last = ticket;
    Ok(())
}

impl StateFile {
    /// The file at `path` (its folder made if missing) and what it holds now, when it is at most
    /// `max_bytes` long and readable.
    pub(crate) fn open(path: PathBuf, max_bytes: u64) -> crate::Result<(Self, Option<Vec<u8>>)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|error| crate::Error::storage(error.to_string()))?;
        }
        let held = read_bounded(&path, max_bytes);
        let (sender, receiver) = mpsc::channel::<(u64, Vec<u8>)>();
        let target = path.clone();
        let written = std::sync::Arc::new(Mutex::new(0));
        let last = written.clone();
        std::thread::Builder::new()
            .name("points-state".into())
            .spawn(move || {
                while let Ok((mut ticket, mut bytes)) = receiver.recv() {
                    while let Ok(newer) = receiver.try_recv() {
                        (ticket, bytes) = newer;
                    }
                    if let Err(error) = write_in_order(&target, &last, ticket, &bytes) {
                        tracing::warn!(%error, file = %target.display(), "a state file could not be saved");
                    }
                }
            })
            .map_err(|error| crate::Error::storage(error.to_string()))?;
        Ok((
            Self {
                path,
                sender: Mutex::new(sender),
                tickets: std::sync::atomic::AtomicU64::new(0),
                written,
            },
            held,
        ))
    }

    /// Has `bytes` written soon (a later call supersedes it).
    pub(crate) fn save(&self, bytes: Vec<u8>) {
        let ticket = self.ticket();
        let _ = self
            .sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((ticket, bytes));
    }

    /// Writes `bytes` now, from the calling thread (at exit, in tests).
    pub(crate) fn save_now(&self, bytes: &[u8]) -> crate::Result<()> {
        self.write_now(self.ticket(), bytes)
    }

    /// A place in the order of states, taken where the state is read (under its lock), for
    /// [`StateFile::write_now`] outside of it.
    pub(crate) fn ticket(&self) -> u64 {
        self.tickets
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            .saturating_add(1)
    }

    /// Writes `bytes`, the state of `ticket`, now from the calling thread, unless a later state
    /// is on disk already.
    pub(crate) fn write_now(&self, ticket: u64, bytes: &[u8]) -> crate::Result<()> {
        write_in_order(&self.path, &self.written, ticket, bytes)
            .map_err(|error| crate::Error::storage(error.to_string()))
    }
}

fn read_bounded(path: &Path, max_bytes: u64) -> Option<Vec<u8>> {
    let file = std::fs::File::open(path).ok()?;
    if file.metadata().ok()?.len() > max_bytes {
        tracing::warn!(file = %path.display(), "a state file is too long: ignored");
        return None;
    }
    std::fs::read(path).ok()
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    // Its own name: the writer thread and a `save_now` may write at the same time.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temporary = path.with_extension(format!("{n}.tmp"));
    let mut out = std::fs::File::create(&temporary)?;
    out.write_all(bytes)?;
    out.sync_all()?;
    std::fs::rename(&temporary, path)
}
