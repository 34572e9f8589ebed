//! Offline work: while the ledger cannot be reached, a desktop job runs when a signed allowance
//! of the signed-in account covers its price (see [`crate::allowance`]).
//!
//! Rules:
//! - an allowance is asked for while the ledger is reachable ([`Offline::refresh_if_due`]: none
//!   held, less than half of it left on this machine, less than half of its window left, the
//!   balance below what is left, or a balance that would grant more), never while an offline
//!   charge of the account is still pending or a job runs on one of its allowances, whichever
//!   allowance is held now (a new allowance supersedes the old one, whose unspent points the
//!   ledger releases); one ledger account holds one allowance on this machine, under whichever
//!   label it signed in last;
//! - it is checked against the pinned keys, for the session's ledger account and this device,
//!   each time it is used, against a clock that cannot be turned back ([`TimeMark`]);
//! - what is spent under it on this machine is the prices of the jobs running on it, of its
//!   charges still journaled, and of its charges already settled (kept on disk): across
//!   restarts, never more than its points;
//! - offline prices are the fixed prices the ledger answered last (its price table, read with
//!   each allowance); a service priced by duration does not run offline.
//!
//! Nothing here knows Tauri.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::allowance::{check_device_id, Allowance, AllowanceRefusal, PinnedKeys};
use crate::client::LedgerClient;
use crate::journal::{Journal, PendingCharge};
use crate::models::{OfflineAllowance, PricingMode};
use crate::session::Session;
use crate::state_file::StateFile;
use crate::timemark::{Clock, SystemClock, TimeMark};
use crate::{Error, Result};

/// The name of the allowances' file in the offline folder.
const FILE_NAME: &str = "allowances.json";
/// The name of the device id's file in the offline folder.
const DEVICE_FILE_NAME: &str = "device-id";
/// The most accounts whose allowance is kept (the least recently used goes first).
pub const MAX_ACCOUNTS: usize = 16;
/// The most prices kept per account.
const MAX_PRICES: usize = 64;
/// The most settled charges remembered per allowance; past it, offline work under that
/// allowance stops until a new one is issued.
const MAX_SETTLED: usize = 4096;
/// The longest allowances file read.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// The shortest time between two allowance requests of one account that are not needed for
/// work (a better allowance: more balance, a fresher window).
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// After a request whose answer was lost, the shortest wait before the next one: longer than a
/// request may stay under way at the ledger (its request timeout), so that a late first request
/// never supersedes the answer of the next.
const AFTER_A_LOST_ANSWER: Duration = Duration::from_secs(45);

/// Offline work's settings.
#[derive(Clone)]
pub struct OfflineSettings {
    /// The keys allowances must be signed with (from the app's configuration).
    pub keys: PinnedKeys,
    /// This device's id, sent with each allowance request; `None`: one made at first use and
    /// kept in the offline folder.
    pub device_id: Option<String>,
    /// The local clock (injectable for tests).
    pub clock: Arc<dyn Clock>,
}

impl OfflineSettings {
    /// Offline work under allowances signed by `keys`, on the computer's clock.
    pub fn new(keys: PinnedKeys) -> Self {
        Self {
            keys,
            device_id: None,
            clock: Arc::new(SystemClock),
        }
    }
}

/// What changes of the offline state are told to (the plugin turns them into
/// `points://offline-changed`).
pub trait OfflineListener: Send + Sync + 'static {
    /// What offline work may spend changed for `account`, or the ledger was found reachable or
    /// unreachable.
    fn offline_changed(&self, account: &str) {
        let _ = account;
    }
}

impl OfflineListener for () {}

/// One account's allowance as kept on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Held {
    allowance: Allowance,
    /// Points of this allowance's charges settled by the ledger, by idempotency key.
    #[serde(default)]
    settled: BTreeMap<String, i64>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct AccountState {
    account: String,
    #[serde(default)]
    held: Option<Held>,
    /// Set (on disk) before a new allowance is asked for and cleared by its answer: while set,
    /// the held allowance may have been superseded (its unspent points released) by an answer
    /// that was lost, and runs nothing.
    #[serde(default)]
    asking: bool,
    /// Fixed prices by service, as the ledger answered them last.
    #[serde(default)]
    prices: BTreeMap<String, i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    /// Most recently used last.
    accounts: Vec<AccountState>,
}

/// The offline allowances of this machine's accounts. Cheap to clone.
#[derive(Clone)]
pub struct Offline {
    inner: Arc<Inner>,
}

struct Inner {
    keys: PinnedKeys,
    device_id: String,
    mark: TimeMark,
    state: Mutex<Saved>,
    file: Option<Arc<StateFile>>,
    /// Allowance id → the jobs running on it.
    running: Mutex<HashMap<String, RunningOn>>,
    /// Whether the last call to the ledger found it unreachable.
    unreachable: AtomicBool,
    /// Account → when its allowance was last asked for.
    asked: Mutex<HashMap<String, Instant>>,
    /// One allowance request at a time.
    refreshing: tokio::sync::Mutex<()>,
    listener: Mutex<Arc<dyn OfflineListener>>,
}

/// The jobs running on one allowance.
struct RunningOn {
    /// The ledger account the allowance was issued to.
    ledger_user: String,
    /// Their prices.
    points: i64,
}

/// Why a job may not run offline.
pub(crate) fn refusal_error(refusal: AllowanceRefusal, until: i64) -> Error {
    match refusal {
        AllowanceRefusal::Expired => Error::OfflineAllowanceExpired {
            until: rfc3339(until),
        },
        other => Error::OfflineAllowanceInvalid {
            reason: other.to_string(),
        },
    }
}

impl Offline {
    /// Offline work kept in the folder `dir` (made if missing): the allowances, the time mark and
    /// the device id.
    pub fn open(dir: impl AsRef<Path>, settings: OfflineSettings) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|error| Error::storage(error.to_string()))?;
        let device_id = match settings.device_id {
            Some(id) => id,
            None => device_id_in(dir)?,
        };
        let (file, held) = StateFile::open(dir.join(FILE_NAME), MAX_FILE_BYTES)?;
        let state = held
            .and_then(|bytes| serde_json::from_slice::<Saved>(&bytes).ok())
            .unwrap_or_default();
        let mark = TimeMark::open(dir, settings.clock)?;
        Self::build(settings.keys, device_id, mark, state, Some(Arc::new(file)))
    }

    /// Offline work in memory only (tests, tools).
    pub fn in_memory(keys: PinnedKeys, device_id: &str, clock: Arc<dyn Clock>) -> Result<Self> {
        Self::build(
            keys,
            device_id.to_owned(),
            TimeMark::in_memory(clock),
            Saved::default(),
            None,
        )
    }

    fn build(
        keys: PinnedKeys,
        device_id: String,
        mark: TimeMark,
        mut state: Saved,
        file: Option<Arc<StateFile>>,
    ) -> Result<Self> {
        check_device_id(&device_id)
            .map_err(|refusal| Error::invalid_argument("deviceId", refusal.to_string()))?;
        state.accounts.truncate(MAX_ACCOUNTS);
        Ok(Self {
            inner: Arc::new(Inner {
                keys,
                device_id,
                mark,
                state: Mutex::new(state),
                file,
                running: Mutex::default(),
                unreachable: AtomicBool::new(false),
                asked: Mutex::default(),
                refreshing: tokio::sync::Mutex::new(()),
                listener: Mutex::new(Arc::new(())),
            }),
        })
    }

    /// Tells `listener` of every change from now on.
    pub fn set_listener(&self, listener: Arc<dyn OfflineListener>) {
        *self
            .inner
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = listener;
    }

    /// This device's id.
    pub fn device_id(&self) -> &str {
        &self.inner.device_id
    }

    /// The never-decreasing time mark allowances are judged by.
    pub fn time_mark(&self) -> &TimeMark {
        &self.inner.mark
    }

    /// Whether the last call to the ledger found it unreachable.
    pub fn is_unreachable(&self) -> bool {
        self.inner.unreachable.load(Ordering::SeqCst)
    }

    /// The held allowance of `account`, as stored (checked or not).
    pub fn allowance_of(&self, account: &str) -> Option<Allowance> {
        let state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        find(&state, account)
            .and_then(|a| a.held.as_ref())
            .map(|held| held.allowance.clone())
    }

    /// The ledger answered (`reachable`) or could not be reached: told to the listener when it
    /// changes.
    pub fn set_reachable(&self, account: Option<&str>, reachable: bool) {
        let was = self.inner.unreachable.swap(!reachable, Ordering::SeqCst);
        if was == reachable {
            if let Some(account) = account {
                self.changed(account);
            }
        }
    }

    /// What offline work of `session` may still spend: `None` while the ledger is reachable.
    pub fn status(&self, session: &Session, journal: &Journal) -> Option<OfflineAllowance> {
        if !self.is_unreachable() {
            return None;
        }
        let running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
        Some(match self.usable(session, journal, false) {
            Ok((allowance, remaining)) => OfflineAllowance {
                remaining: remaining
                    .saturating_sub(running.get(&allowance.allowance_id).map_or(0, |r| r.points))
                    .max(0),
                until: Some(rfc3339(allowance.not_after)),
            },
            Err(_) => OfflineAllowance {
                remaining: 0,
                until: None,
            },
        })
    }

    /// Reserves `service`'s price under `session`'s allowance for a job about to run offline:
    /// the allowance id, the ledger account it was issued to, and the price. Released when the
    /// reservation is dropped.
    pub(crate) fn reserve(
        &self,
        session: &Session,
        journal: &Journal,
        service: &str,
        duration: Option<f64>,
    ) -> Result<OfflineReservation> {
        let price = if duration.is_some() {
            None
        } else {
            let state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            find(&state, session.account()).and_then(|a| a.prices.get(service).copied())
        };
        // Held across the count: a job that finishes meanwhile is journaled before it leaves
        // `running`, so it is counted once or twice, never not at all.
        let mut running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
        let (allowance, remaining) = self.usable(session, journal, true)?;
        let Some(price) = price else {
            return Err(Error::OfflineAllowanceNone {
                reason: format!("no offline price is known for `{service}`"),
            });
        };
        let already = running.get(&allowance.allowance_id).map_or(0, |r| r.points);
        let left = remaining.saturating_sub(already);
        if price > left {
            return Err(Error::OfflineAllowanceExhausted {
                service: service.to_owned(),
                required: price,
                remaining: left.max(0),
            });
        }
        running
            .entry(allowance.allowance_id.clone())
            .or_insert_with(|| RunningOn {
                ledger_user: allowance.user_id.clone(),
                points: 0,
            })
            .points += price;
        drop(running);
        self.changed(session.account());
        Ok(OfflineReservation {
            offline: self.clone(),
            account: session.account().to_owned(),
            allowance_id: allowance.allowance_id,
            ledger_user: allowance.user_id,
            price,
        })
    }

    /// The allowance `session` may work under now, and what is left of it on this machine (jobs
    /// running on it not counted). `use_time`: the local time read is used (raises the mark);
    /// else only looked at.
    fn usable(
        &self,
        session: &Session,
        journal: &Journal,
        use_time: bool,
    ) -> Result<(Allowance, i64)> {
        let (held, asking) = {
            let state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            find(&state, session.account()).map_or((None, false), |a| (a.held.clone(), a.asking))
        };
        let Some(held) = held else {
            return Err(Error::OfflineAllowanceNone {
                reason: "no allowance is held for this account on this machine".into(),
            });
        };
        if asking {
            return Err(Error::OfflineAllowanceNone {
                reason: "the answer to the last allowance request was lost: the allowance held \
                         may have been superseded"
                    .into(),
            });
        }
        let user = expected_user(session).ok_or_else(|| Error::OfflineAllowanceInvalid {
            reason: "the ledger account of this session is not known".into(),
        })?;
        let now = if use_time {
            self.inner.mark.now()
        } else {
            self.inner.mark.peek()
        };
        let now = now.map_err(|turned| Error::OfflineClockTurnedBack {
            mark: rfc3339(turned.mark),
        })?;
        held.allowance
            .check_for(&self.inner.keys, &user, &self.inner.device_id, now)
            .map_err(|refusal| refusal_error(refusal, held.allowance.not_after))?;
        if held.settled.len() >= MAX_SETTLED {
            return Err(Error::OfflineAllowanceExhausted {
                service: String::new(),
                required: 0,
                remaining: 0,
            });
        }
        let spent = spent_under(&held, journal);
        Ok((
            held.allowance.clone(),
            held.allowance.points.saturating_sub(spent),
        ))
    }

    /// The ledger settled `charge`: if it was made under an allowance, what it cost is kept as
    /// spent under it (written before the charge leaves the journal).
    pub fn settled(&self, charge: &PendingCharge) {
        let (Some(allowance_id), Some(price)) = (&charge.allowance_id, charge.price) else {
            return;
        };
        let bytes = {
            let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            let Some(held) = state
                .accounts
                .iter_mut()
                .find(|a| a.account == charge.account)
                .and_then(|a| a.held.as_mut())
                .filter(|held| held.allowance.allowance_id == *allowance_id)
            else {
                return;
            };
            if held.settled.len() >= MAX_SETTLED {
                return;
            }
            held.settled
                .insert(charge.idempotency_key.clone(), price.max(0));
            (self.ticket(), encode(&state))
        };
        self.write_now(bytes, "the offline spend");
    }

    /// Asks the ledger for a new allowance for `session` when one is due (see the module's
    /// rules), and reads the price table with it. `balance`: the account's balance, when known.
    /// Errors of the ledger are returned (and an unreachable ledger is remembered); nothing is
    /// asked while a charge under the current allowance is pending or a job runs on it.
    pub async fn refresh_if_due(
        &self,
        client: &LedgerClient,
        session: &Session,
        journal: &Journal,
        balance: Option<i64>,
    ) -> Result<bool> {
        if self.inner.keys.is_empty() {
            return Ok(false);
        }
        let _one = self.inner.refreshing.lock().await;
        if !self.due(session, journal, balance) {
            return Ok(false);
        }
        self.inner
            .asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session.account().to_owned(), Instant::now());
        let client = client.as_token(session.token());
        if expected_user(session).is_none() {
            // Offline work of this ledger account under another label (charges waiting, jobs
            // running) is found by the ledger account: this token's is learnt first, once.
            match client.balance_stated().await {
                Ok(stated) => session.learn_ledger_user(stated.user_id.as_deref()),
                Err(error) => {
                    if unreachable(&error) {
                        self.set_reachable(Some(session.account()), false);
                    }
                    return Err(error);
                }
            }
        }
        self.set_asking(session.account(), true).await;
        if self.in_use(session, journal) {
            // A job took the allowance meanwhile (before the mark): not now.
            self.set_asking(session.account(), false).await;
            return Ok(false);
        }
        let answer = client.allowance(&self.inner.device_id).await;
        let allowance = match answer {
            Ok(allowance) => allowance,
            Err(error) => {
                // Whatever the error, an earlier attempt of the request may have reached the
                // ledger (a lost answer, then a refusal of the retry): the held allowance stays
                // unused until an answer comes.
                if unreachable(&error) {
                    self.set_reachable(Some(session.account()), false);
                }
                return Err(error);
            }
        };
        let prices = client.prices().await.ok();
        self.inner.mark.reached_ledger(allowance.server_time);
        let user = expected_user(session).unwrap_or_else(|| allowance.user_id.clone());
        let now = self.inner.mark.now().unwrap_or(allowance.server_time);
        if let Err(refusal) =
            allowance.check_for(&self.inner.keys, &user, &self.inner.device_id, now)
        {
            tracing::error!(%refusal, "the ledger's allowance is not trusted");
            return Err(Error::OfflineAllowanceInvalid {
                reason: refusal.to_string(),
            });
        }
        session.learn_ledger_user(Some(&allowance.user_id));
        {
            let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            // The one live allowance of this ledger account on this device: one held under
            // another label of it is superseded.
            for other in &mut state.accounts {
                if other
                    .held
                    .as_ref()
                    .is_some_and(|held| held.allowance.user_id == allowance.user_id)
                {
                    other.held = None;
                }
            }
            let mut entry = take(&mut state, session.account());
            entry.held = Some(Held {
                allowance,
                settled: BTreeMap::new(),
            });
            entry.asking = false;
            if let Some(prices) = prices {
                entry.prices = prices
                    .services
                    .iter()
                    .filter(|price| price.mode == PricingMode::Fixed)
                    .filter_map(|price| Some((price.service.clone(), price.points?)))
                    .take(MAX_PRICES)
                    .collect();
            }
            state.accounts.push(entry);
            let excess = state.accounts.len().saturating_sub(MAX_ACCOUNTS);
            state.accounts.drain(..excess);
            self.save(&state);
        }
        self.set_reachable(None, true);
        self.changed(session.account());
        Ok(true)
    }

    /// Whether a charge of `session`'s made under any allowance is pending, or a job runs on an
    /// allowance of its ledger account: a new allowance would release what the ledger still owes
    /// them. Not only the held allowance: an account's entry may have been put aside for others
    /// ([`MAX_ACCOUNTS`]) while its offline charges wait, and one ledger account may be signed in
    /// under two labels.
    fn in_use(&self, session: &Session, journal: &Journal) -> bool {
        // A job only runs on an allowance checked for the session's ledger account.
        let user = expected_user(session);
        let runs = self
            .inner
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|on| user.as_deref() == Some(on.ledger_user.as_str()));
        runs || journal
            .tally_where(|charge| {
                charge.allowance_id.is_some()
                    && (session.owns(&charge.account, charge.ledger_user.as_deref())
                        || (user.is_some() && charge.ledger_user == user))
            })
            .0
            > 0
    }

    /// Whether `account`'s allowance was asked for less than `interval` ago.
    fn asked_within(&self, account: &str, interval: Duration) -> bool {
        self.inner
            .asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(account)
            .is_some_and(|at| at.elapsed() < interval)
    }

    fn is_asking(&self, account: &str) -> bool {
        let state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        find(&state, account).is_some_and(|a| a.asking)
    }

    /// Marks `account`'s allowance request as under way (or over), on disk before it returns.
    async fn set_asking(&self, account: &str, asking: bool) {
        let bytes = {
            let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            let Some(entry) = state.accounts.iter_mut().find(|a| a.account == account) else {
                return; // Nothing held: nothing to protect.
            };
            if entry.asking == asking {
                return;
            }
            entry.asking = asking;
            (self.ticket(), encode(&state))
        };
        let offline = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            offline.write_now(bytes, "the allowance request mark")
        })
        .await;
    }

    /// Keeps the fixed price of `service` the ledger just quoted, for offline pre-checks.
    pub fn learn_price(&self, account: &str, service: &str, duration: Option<f64>, price: i64) {
        if duration.is_some() || self.inner.keys.is_empty() {
            return;
        }
        {
            let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            let Some(entry) = state.accounts.iter_mut().find(|a| a.account == account) else {
                return;
            };
            if entry.prices.get(service) == Some(&price)
                || (entry.prices.len() >= MAX_PRICES && !entry.prices.contains_key(service))
            {
                return;
            }
            entry.prices.insert(service.to_owned(), price);
            self.save(&state);
        }
    }

    /// Whether a new allowance is due for `session` (see the module's rules): checked before a
    /// request is even spawned, and again under the request lock.
    pub(crate) fn due(&self, session: &Session, journal: &Journal, balance: Option<i64>) -> bool {
        if self.inner.keys.is_empty() {
            return false;
        }
        let held = {
            let state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            find(&state, session.account()).and_then(|a| a.held.clone())
        };
        let Some(held) = held else {
            return true;
        };
        if self.in_use(session, journal) {
            return false;
        }
        if self.is_asking(session.account()) {
            // The last request's outcome is unknown: ask again, but not before a request still
            // under way at the ledger is surely over.
            return !self.asked_within(session.account(), AFTER_A_LOST_ANSWER);
        }
        if self.inner.mark.peek().is_err() {
            // The clock was turned back: the ledger's time lets offline work go on.
            return true;
        }
        let usable = expected_user(session).is_some_and(|user| {
            held.allowance
                .check_for(
                    &self.inner.keys,
                    &user,
                    &self.inner.device_id,
                    self.inner.mark.mark(),
                )
                .is_ok()
        });
        if !usable {
            return true;
        }
        let allowance = &held.allowance;
        let left = allowance.points.saturating_sub(spent_under(&held, journal));
        let window = allowance.not_after - allowance.issued_at;
        let time_left = allowance.not_after - self.inner.mark.mark();
        let needed = left.saturating_mul(2) < allowance.points
            || time_left.saturating_mul(2) < window
            || balance.is_some_and(|balance| balance < left);
        if needed {
            return true;
        }
        let better = balance.is_some_and(|balance| balance > allowance.points);
        better && !self.asked_within(session.account(), MIN_REFRESH_INTERVAL)
    }

    fn release(&self, account: &str, allowance_id: &str, price: i64) {
        {
            let mut running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(on) = running.get_mut(allowance_id) {
                on.points = on.points.saturating_sub(price);
                if on.points <= 0 {
                    running.remove(allowance_id);
                }
            }
        }
        self.changed(account);
    }

    fn changed(&self, account: &str) {
        let listener = self
            .inner
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        listener.offline_changed(account);
    }

    /// Saves the allowances and the time mark now, from the calling thread (at exit).
    pub fn save_now(&self) {
        let _ = self.inner.mark.save_now();
        let bytes = {
            let state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            (self.ticket(), encode(&state))
        };
        self.write_now(bytes, "the offline state");
    }

    /// Hands `state` to the file's writer thread; call it under the state's lock (the order of
    /// the states is the order of the calls).
    fn save(&self, state: &Saved) {
        if let Some(file) = &self.inner.file {
            file.save(encode(state));
        }
    }

    /// A place in the order of states; take it under the state's lock.
    fn ticket(&self) -> u64 {
        self.inner.file.as_ref().map_or(0, |file| file.ticket())
    }

    /// Writes a state taken with its ticket now, from the calling thread, unless a later one is
    /// on disk.
    fn write_now(&self, (ticket, bytes): (u64, Vec<u8>), what: &str) {
        if let Some(file) = &self.inner.file {
            if let Err(error) = file.write_now(ticket, &bytes) {
                tracing::warn!(%error, "{what} could not be saved");
            }
        }
    }
}

impl std::fmt::Debug for Offline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offline")
            .field("device_id", &self.inner.device_id)
            .field("keys", &self.inner.keys)
            .field("unreachable", &self.is_unreachable())
            .finish_non_exhaustive()
    }
}

/// Points reserved under an allowance for a job running offline; released when dropped.
pub(crate) struct OfflineReservation {
    offline: Offline,
    account: String,
    /// The allowance the job's charge is made under.
    pub(crate) allowance_id: String,
    /// The ledger account it was issued to.
    pub(crate) ledger_user: String,
    /// The job's price.
    pub(crate) price: i64,
}

impl Drop for OfflineReservation {
    fn drop(&mut self) {
        self.offline
            .release(&self.account, &self.allowance_id, self.price);
    }
}

/// Whether `error` says the ledger could not be reached (network, timeout, 5xx): the errors
/// that let a job fall back to its allowance. A 401, a 402 or any other answer does not.
pub fn unreachable(error: &Error) -> bool {
    match error {
        Error::Network { .. } | Error::Timeout => true,
        Error::Backend { status, .. } => *status >= 500,
        _ => false,
    }
}

/// What this machine spent under `held`: its charges still journaled and those settled.
fn spent_under(held: &Held, journal: &Journal) -> i64 {
    let id = held.allowance.allowance_id.as_str();
    let (_, journaled) = journal.tally_where(|charge| {
        charge.allowance_id.as_deref() == Some(id)
            && !held.settled.contains_key(&charge.idempotency_key)
    });
    held.settled
        .values()
        .fold(journaled, |sum, points| sum.saturating_add(*points))
}

/// The ledger account `session`'s allowance must have been issued to: the one the ledger
/// stated for its token, else its JWT subject.
fn expected_user(session: &Session) -> Option<String> {
    session
        .ledger_user()
        .map(str::to_owned)
        .or_else(|| session.account().strip_prefix("sub:").map(str::to_owned))
}

fn find<'a>(state: &'a Saved, account: &str) -> Option<&'a AccountState> {
    state.accounts.iter().find(|a| a.account == account)
}

/// Removes `account`'s entry (a fresh one when missing), to push it back as the most recent.
fn take(state: &mut Saved, account: &str) -> AccountState {
    match state.accounts.iter().position(|a| a.account == account) {
        Some(position) => state.accounts.remove(position),
        None => AccountState {
            account: account.to_owned(),
            ..AccountState::default()
        },
    }
}

fn encode(state: &Saved) -> Vec<u8> {
    serde_json::to_vec(state).expect("the offline state serialises")
}

/// Unix seconds as RFC 3339 (UTC).
pub(crate) fn rfc3339(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The device id kept in `dir`, made (a random UUID) at first use.
fn device_id_in(dir: &Path) -> Result<String> {
    let path = dir.join(DEVICE_FILE_NAME);
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim().to_owned();
        if check_device_id(&id).is_ok() {
            return Ok(id);
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::write(&path, &id).map_err(|error| Error::storage(error.to_string()))?;
    Ok(id)
}
