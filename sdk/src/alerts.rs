//! Low-balance alerts: which configured thresholds an account's balance has fallen below, told
//! once per downward crossing and remembered per account across restarts.
//!
//! A threshold `t` fires when a figure has `balance < t` while the account was at or above it
//! (or never seen), and re-arms when a figure has `balance >= t` again. The state is saved beside
//! the journal (`alerts/low-balance.json`) by a thread of its own, so [`LowBalanceAlerts::observe`]
//! never waits on the disk.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::session::MAX_ACCOUNT_LEN;
use crate::state_file::StateFile;
use crate::{Error, Result};

/// The most thresholds configured.
pub const MAX_THRESHOLDS: usize = 16;
/// The most accounts remembered (the ones seen longest ago are forgotten first).
pub const MAX_ACCOUNTS: usize = 64;
/// The name of the state's file in its folder.
pub const FILE_NAME: &str = "low-balance.json";
/// The largest state file read; a larger one is ignored (and replaced).
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The thresholds and what each account has crossed.
pub struct LowBalanceAlerts {
    /// Highest first.
    thresholds: Vec<i64>,
    state: Mutex<State>,
    file: Option<StateFile>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct State {
    /// The accounts, the one seen last at the end.
    accounts: VecDeque<AccountAlerts>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccountAlerts {
    account: String,
    /// The thresholds the balance is below now (fired, not re-armed).
    below: Vec<i64>,
    /// The last balance seen.
    #[serde(default)]
    balance: Option<i64>,
}

impl LowBalanceAlerts {
    /// Checks `thresholds` (at most [`MAX_THRESHOLDS`], each within ±(2^53 − 1); duplicates
    /// are merged).
    pub fn check_thresholds(thresholds: &[i64]) -> Result<Vec<i64>> {
        if thresholds.len() > MAX_THRESHOLDS {
            return Err(Error::invalid_argument(
                "lowBalance",
                format!("at most {MAX_THRESHOLDS} thresholds"),
            ));
        }
        if thresholds
            .iter()
            .any(|t| t.abs() > crate::client::wire::MAX_AMOUNT)
        {
            return Err(Error::invalid_argument(
                "lowBalance",
                "a threshold is out of bounds",
            ));
        }
        let mut sorted = thresholds.to_vec();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        sorted.dedup();
        Ok(sorted)
    }

    /// Alerts in memory only (nothing survives the process).
    pub fn in_memory(thresholds: &[i64]) -> Result<Self> {
        Ok(Self {
            thresholds: Self::check_thresholds(thresholds)?,
            state: Mutex::new(State::default()),
            file: None,
        })
    }

    /// Alerts kept in the folder `dir` (made if missing; the plugin's is `alerts` in the
    /// journal's folder): the state saved there is read now (a small file; an unreadable one is
    /// replaced), and every change is saved by a thread of its own.
    pub fn open(dir: impl AsRef<Path>, thresholds: &[i64]) -> Result<Self> {
        let thresholds = Self::check_thresholds(thresholds)?;
        let (file, held) = StateFile::open(dir.as_ref().join(FILE_NAME), MAX_FILE_BYTES)?;
        let state = held.map(|bytes| read_state(&bytes)).unwrap_or_default();
        Ok(Self {
            thresholds,
            state: Mutex::new(state),
            file: Some(file),
        })
    }

    /// The thresholds, highest first.
    pub fn thresholds(&self) -> &[i64] {
        &self.thresholds
    }

    /// Takes `balance` as `account`'s balance now and returns the thresholds it has just fallen
    /// below (highest first; empty most of the time). Figures must come in order (oldest first).
    pub fn observe(&self, account: &str, balance: i64) -> Vec<i64> {
        if self.thresholds.is_empty() || account.len() > MAX_ACCOUNT_LEN {
            return Vec::new();
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let position = state.accounts.iter().position(|a| a.account == account);
        let mut entry = match position {
            Some(position) => state.accounts.remove(position).expect("a found position"),
            None => AccountAlerts {
                account: account.to_owned(),
                below: Vec::new(),
                balance: None,
            },
        };
        let before = entry.below.clone();
        let mut fired = Vec::new();
        for &threshold in &self.thresholds {
            let is_below = balance < threshold;
            let was_below = entry.below.contains(&threshold);
            if is_below && !was_below {
                entry.below.push(threshold);
                fired.push(threshold);
            } else if !is_below && was_below {
                entry.below.retain(|&t| t != threshold);
            }
        }
        entry.below.sort_unstable_by(|a, b| b.cmp(a));
        let changed = entry.below != before || position.is_none();
        entry.balance = Some(balance);
        state.accounts.push_back(entry);
        while state.accounts.len() > MAX_ACCOUNTS {
            state.accounts.pop_front();
        }
        if changed {
            if let Some(file) = &self.file {
                file.save(encode(&state));
            }
        }
        fired
    }

    /// `account`'s lowest threshold its balance is below now, and the last balance seen of it
    /// (for a window opened after the crossing, or an app started while below).
    pub fn in_force(&self, account: &str) -> Option<(i64, i64)> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let entry = state.accounts.iter().find(|a| a.account == account)?;
        let threshold = *entry.below.iter().min()?;
        Some((threshold, entry.balance?))
    }

    /// Writes the state now, from the calling thread (for an orderly exit and for tests).
    pub fn save_now(&self) -> Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let bytes = encode(&self.state.lock().unwrap_or_else(|p| p.into_inner()));
        file.save_now(&bytes)
    }
}

impl std::fmt::Debug for LowBalanceAlerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LowBalanceAlerts")
            .field("thresholds", &self.thresholds)
            .finish_non_exhaustive()
    }
}

fn encode(state: &State) -> Vec<u8> {
    serde_json::to_vec(state).expect("the alert state serialises")
}

/// The saved state, bounded; a damaged one starts afresh.
fn read_state(bytes: &[u8]) -> State {
    let Ok(mut state) = serde_json::from_slice::<State>(bytes) else {
        tracing::warn!("the low-balance state could not be read: starting afresh");
        return State::default();
    };
    state
        .accounts
        .retain(|a| a.account.len() <= MAX_ACCOUNT_LEN && a.below.len() <= MAX_THRESHOLDS);
    while state.accounts.len() > MAX_ACCOUNTS {
        state.accounts.pop_front();
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_per_downward_crossing_and_rearms_at_or_above() {
        let alerts = LowBalanceAlerts::in_memory(&[10, 50, 50]).unwrap();
        assert_eq!(alerts.thresholds(), &[50, 10]);
        assert_eq!(alerts.observe("a", 60), Vec::<i64>::new());
        assert_eq!(alerts.observe("a", 49), vec![50]);
        assert_eq!(alerts.observe("a", 40), Vec::<i64>::new());
        assert_eq!(alerts.observe("a", 5), vec![10]);
        assert_eq!(alerts.in_force("a"), Some((10, 5)));
        assert_eq!(alerts.observe("b", 5), vec![50, 10], "per account");
        assert_eq!(alerts.observe("a", 50), Vec::<i64>::new(), "re-armed at 50");
        assert_eq!(alerts.in_force("a"), None);
        assert_eq!(alerts.in_force("nobody"), None);
        assert_eq!(alerts.observe("a", 49), vec![50]);
        assert_eq!(alerts.observe("a", 9), vec![10]);
    }

    #[test]
    fn the_state_survives_a_restart_and_a_damaged_file_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let alerts = LowBalanceAlerts::open(dir.path(), &[50]).unwrap();
        assert_eq!(alerts.observe("a", 10), vec![50]);
        alerts.save_now().unwrap();
        drop(alerts);
        let alerts = LowBalanceAlerts::open(dir.path(), &[50]).unwrap();
        assert_eq!(
            alerts.in_force("a"),
            Some((50, 10)),
            "in force after the restart"
        );
        assert_eq!(alerts.observe("a", 10), Vec::<i64>::new(), "not twice");
        // A folder of its own: the writer threads of the instances above may still be saving.
        let damaged = tempfile::tempdir().unwrap();
        std::fs::write(damaged.path().join(FILE_NAME), b"{not json").unwrap();
        let alerts = LowBalanceAlerts::open(damaged.path(), &[50]).unwrap();
        assert_eq!(alerts.observe("a", 10), vec![50]);
    }

    #[test]
    fn accounts_and_thresholds_are_bounded() {
        assert!(LowBalanceAlerts::in_memory(&[1; MAX_THRESHOLDS + 1]).is_err());
        assert!(LowBalanceAlerts::in_memory(&[i64::MAX]).is_err());
        let alerts = LowBalanceAlerts::in_memory(&[50]).unwrap();
        for n in 0..(MAX_ACCOUNTS + 10) {
            alerts.observe(&format!("user-{n}"), 0);
        }
        assert_eq!(alerts.state.lock().unwrap().accounts.len(), MAX_ACCOUNTS);
        assert_eq!(
            alerts.observe("user-0", 0),
            vec![50],
            "the oldest was forgotten"
        );
    }
}
