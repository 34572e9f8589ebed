//! A small state file written by a thread of its own: callers hand it the latest bytes and never
//! wait on the disk; only the latest state is written (atomically: a crash leaves the old file or
//! the new one).

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};

/// One state file and its writer thread.
pub(crate) struct StateFile {
    path: PathBuf,
    sender: Mutex<mpsc::Sender<Vec<u8>>>,
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
        let (sender, receiver) = mpsc::channel::<Vec<u8>>();
        let target = path.clone();
        std::thread::Builder::new()
            .name("points-state".into())
            .spawn(move || {
                while let Ok(mut bytes) = receiver.recv() {
                    while let Ok(newer) = receiver.try_recv() {
                        bytes = newer;
                    }
                    if let Err(error) = write_atomically(&target, &bytes) {
                        tracing::warn!(%error, file = %target.display(), "a state file could not be saved");
                    }
                }
            })
            .map_err(|error| crate::Error::storage(error.to_string()))?;
        Ok((
            Self {
                path,
                sender: Mutex::new(sender),
            },
            held,
        ))
    }

    /// Has `bytes` written soon (a later call supersedes it).
    pub(crate) fn save(&self, bytes: Vec<u8>) {
        let _ = self
            .sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(bytes);
    }

    /// Writes `bytes` now, from the calling thread (at exit, in tests).
    pub(crate) fn save_now(&self, bytes: &[u8]) -> crate::Result<()> {
        write_atomically(&self.path, bytes)
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
