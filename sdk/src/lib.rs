//! The client SDK of a prepaid points ledger, with no Tauri, GTK or WebKitGTK in its tree: a
//! desktop app's Tauri plugin (`tauri-plugin-points`), a CLI or a render worker use it alike.
//!
//! - [`client`]: one method per route of the ledger contract, typed errors, bounded answers;
//! - [`session`]: the signed-in account (its token in memory only) and the ledger's word on it;
//! - [`journal`]: durable storage of charges not yet acknowledged, bound to their account;
//! - [`policy`]: the one place deciding retry / hold / refuse for every error;
//! - [`sync`]: first sends and background re-sends with capped backoff;
//! - [`watch`]: the live balance of the signed-in account (the ledger's stream, or polls);
//! - [`alerts`]: low-balance thresholds crossed, once per crossing, per account;
//! - [`allowance`]: offline allowances the ledger signs, checked against pinned keys;
//! - [`offline`]: desktop jobs while the ledger cannot be reached, under a signed allowance;
//! - [`timemark`]: a clock that cannot be turned back, for judging allowances offline;
//! - [`jobs`]: the charged-job flow (reserve + pre-check → work → journal → send);
//! - [`models`]: the types answered to callers (the Tauri plugin's TypeScript surface).
//!
//! ```no_run
//! # async fn example() -> Result<(), points_sdk::Error> {
//! use std::sync::Arc;
//! use points_sdk::{client::IdempotencyKey, ChargeSync, JobSpec, Jobs, LedgerClient, Session, Sessions, SyncPolicy, TokenProvider};
//!
//! let sessions = Arc::new(Sessions::new(None));
//! sessions.sign_in(Session::new("<token>", Some("user-42".into()))?);
//! let client = LedgerClient::builder("https://api.example.com")
//!     .token_provider({ let sessions = sessions.clone(); move || sessions.token() })
//!     .build()?;
//! let journal = Arc::new(points_sdk::journal::Journal::open("points-journal")?);
//! let sync = ChargeSync::new(client.clone(), journal, sessions, SyncPolicy::default(), Arc::new(()));
//! tokio::spawn(sync.clone().run());
//! let jobs = Jobs::new(client, sync, Arc::new(()));
//! let charged = jobs
//!     .run(JobSpec::new("compose", IdempotencyKey::parse("compose:job-1")?), || async {
//!         Ok::<_, points_sdk::Error>("rendered")
//!     })
//!     .await?;
//! println!("{:?}", charged.charge);
//! # Ok(()) }
//! ```

pub mod alerts;
pub mod allowance;
pub mod client;
mod error;
pub mod jobs;
pub mod journal;
pub mod models;
pub mod offline;
pub mod policy;
pub mod session;
mod state_file;
pub mod sync;
pub mod timemark;
pub mod watch;

pub use client::{LedgerClient, RetryPolicy, SessionToken, TokenProvider};
pub use error::{Error, PointsError, Result};
pub use jobs::{Charged, JobListener, JobSpec, Jobs};
pub use models::{ChargeOutcome, DesktopService};
pub use session::{Session, Sessions};
pub use sync::{ChargeSync, SyncListener, SyncPolicy};
pub use watch::{BalanceWatch, WatchListener, WatchPolicy};
