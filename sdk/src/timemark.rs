//! A clock that cannot be turned back: the latest of the server times seen and the local times
//! used, kept on disk, so that an offline allowance is judged against a time the user cannot
//! move backwards by setting the computer's clock.
//!
//! Two marks are kept: the latest time of all (server times included), which an allowance is
//! judged by, and the latest local time used, which the local clock is checked against. A local
//! clock earlier than the local mark (beyond the tolerance) was turned back and is refused; one
//! merely behind the server (a slow clock) is not: judging by the latest time of all already
//! makes it useless to turn the clock back, and refusing a slow clock would shut its user out.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::state_file::StateFile;

/// Where the time now comes from (Unix seconds); injectable for tests.
pub trait Clock: Send + Sync + 'static {
    /// The local time now.
    fn now(&self) -> i64;
}

/// The computer's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }
}

/// How far the local clock may be behind the mark without being taken for turned back (NTP
/// corrections, a server a little ahead).
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;
/// The name of the mark's file in its folder.
pub const FILE_NAME: &str = "time-mark.json";
/// The mark is saved when it has risen this much since it was last saved (and at every server
/// time): a crash loses less than this, well within [`DEFAULT_TOLERANCE_SECS`].
const SAVE_EVERY_SECS: i64 = 60;

/// The local clock is earlier than a time already seen or used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the clock reads {local}, earlier than {mark} already seen: it was turned back")]
pub struct ClockTurnedBack {
    /// The local time read.
    pub local: i64,
    /// The mark it is earlier than.
    pub mark: i64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Saved {
    /// The latest time of all.
    mark: i64,
    /// The latest local time used.
    #[serde(default)]
    local: i64,
}

/// The never-decreasing time mark.
pub struct TimeMark {
    clock: Arc<dyn Clock>,
    tolerance: i64,
    /// The marks now, and the ones last handed to the file.
    mark: Mutex<(Saved, Saved)>,
    file: Option<StateFile>,
}

impl std::fmt::Debug for TimeMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeMark")
            .field("mark", &self.mark())
            .field("tolerance", &self.tolerance)
            .finish_non_exhaustive()
    }
}

impl TimeMark {
    /// A mark kept in the folder `dir` (made if missing), read now; `clock` gives local time.
    pub fn open(dir: impl AsRef<Path>, clock: Arc<dyn Clock>) -> crate::Result<Self> {
        let (file, held) = StateFile::open(dir.as_ref().join(FILE_NAME), 1024)?;
        let saved = held
            .and_then(|bytes| serde_json::from_slice::<Saved>(&bytes).ok())
            .unwrap_or_default();
        let saved = Saved {
            mark: saved.mark.max(saved.local).max(0),
            local: saved.local.max(0),
        };
        Ok(Self {
            clock,
            tolerance: DEFAULT_TOLERANCE_SECS,
            mark: Mutex::new((saved, saved)),
            file: Some(file),
        })
    }

    /// A mark in memory only.
    pub fn in_memory(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            tolerance: DEFAULT_TOLERANCE_SECS,
            mark: Mutex::new((Saved::default(), Saved::default())),
            file: None,
        }
    }

    /// The same, with another tolerance (seconds, at least 0).
    pub fn with_tolerance(mut self, seconds: i64) -> Self {
        self.tolerance = seconds.max(0);
        self
    }

    /// The mark now.
    pub fn mark(&self) -> i64 {
        self.mark.lock().unwrap_or_else(|p| p.into_inner()).0.mark
    }

    /// Takes a time the ledger stated (`server_time`, Unix seconds): the mark never goes below it.
    pub fn saw_server_time(&self, server_time: i64) {
        self.raise(server_time, None);
    }

    /// The ledger was reached and stated `server_time`: the mark never goes below it, and the
    /// local clock is taken as it reads now (a clock turned back is trusted again from here: the
    /// mark, at least the ledger's time, is what allowances are judged by).
    pub fn reached_ledger(&self, server_time: i64) {
        let local = self.clock.now();
        {
            let mut guard = self.mark.lock().unwrap_or_else(|p| p.into_inner());
            guard.0.local = local.max(0);
        }
        self.raise(server_time, None);
    }

    /// Saves the mark now, from the calling thread (at exit, in tests).
    pub fn save_now(&self) -> crate::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut mark = self.mark.lock().unwrap_or_else(|p| p.into_inner());
        mark.1 = mark.0;
        file.save_now(&encode(mark.0))
    }

    /// The time to judge an allowance by: the latest of the local clock and every time seen;
    /// [`ClockTurnedBack`] when the local clock is earlier than a local time already used
    /// (beyond the tolerance).
    pub fn now(&self) -> Result<i64, ClockTurnedBack> {
        let (local, _) = self.read()?;
        Ok(self.raise(local, Some(local)))
    }

    /// What [`TimeMark::now`] would answer, without using the local time (nothing raised).
    pub fn peek(&self) -> Result<i64, ClockTurnedBack> {
        self.read().map(|(local, marks)| marks.mark.max(local))
    }

    /// The local time now and the marks, or [`ClockTurnedBack`].
    fn read(&self) -> Result<(i64, Saved), ClockTurnedBack> {
        let local = self.clock.now();
        let marks = self.mark.lock().unwrap_or_else(|p| p.into_inner()).0;
        if local < marks.local.saturating_sub(self.tolerance) {
            return Err(ClockTurnedBack {
                local,
                mark: marks.local,
            });
        }
        Ok((local, marks))
    }

    /// Raises the marks (`local`: a local time used) and returns the latest time of all.
    fn raise(&self, to: i64, local: Option<i64>) -> i64 {
        let mut guard = self.mark.lock().unwrap_or_else(|p| p.into_inner());
        let (marks, saved) = &mut *guard;
        marks.mark = marks.mark.max(to);
        if let Some(local) = local {
            marks.local = marks.local.max(local);
        }
        // A server time is saved at once; local times once they moved on a minute.
        let due = local.is_none() || marks.local - saved.local >= SAVE_EVERY_SECS;
        if *marks != *saved && due {
            *saved = *marks;
            if let Some(file) = &self.file {
                file.save(encode(*marks));
            }
        }
        marks.mark
    }
}

fn encode(marks: Saved) -> Vec<u8> {
    serde_json::to_vec(&marks).expect("a mark serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    struct Manual(AtomicI64);

    impl Clock for Manual {
        fn now(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn the_mark_never_goes_back_and_a_clock_turned_back_is_refused() {
        let clock = Arc::new(Manual(AtomicI64::new(1_000_000)));
        let mark = TimeMark::in_memory(clock.clone()).with_tolerance(300);
        assert_eq!(mark.now(), Ok(1_000_000));
        mark.saw_server_time(1_000_500);
        assert_eq!(
            mark.now(),
            Ok(1_000_500),
            "a slow clock is judged by the server's time, not refused"
        );
        clock.0.store(1_000_100, Ordering::SeqCst);
        assert_eq!(mark.now(), Ok(1_000_500));
        clock.0.store(999_850, Ordering::SeqCst);
        assert_eq!(mark.now(), Ok(1_000_500), "within the tolerance");
        clock.0.store(999_000, Ordering::SeqCst);
        assert_eq!(
            mark.now(),
            Err(ClockTurnedBack {
                local: 999_000,
                mark: 1_000_100
            })
        );
        clock.0.store(1_002_000, Ordering::SeqCst);
        assert_eq!(mark.now(), Ok(1_002_000));
        mark.saw_server_time(5);
        assert_eq!(mark.mark(), 1_002_000);
    }

    #[test]
    fn the_mark_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(Manual(AtomicI64::new(2_000_000)));
        let mark = TimeMark::open(dir.path(), clock.clone()).unwrap();
        assert_eq!(mark.now(), Ok(2_000_000));
        mark.save_now().unwrap();
        drop(mark);
        clock.0.store(1_000_000, Ordering::SeqCst);
        let mark = TimeMark::open(dir.path(), clock).unwrap();
        assert!(mark.now().is_err(), "turned back across a restart");
    }
}
