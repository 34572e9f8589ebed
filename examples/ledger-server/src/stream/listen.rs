//! On PostgreSQL, one `LISTEN` connection per process hears the commits of every writer on the
//! database (this process, other ledger processes, the batch function): the `journal` trigger of
//! `migrations-postgres/1005_stream_notify.sql` sends each new entry on [`CHANNEL`], delivered at
//! commit, in commit order. Each is published to the [`Hub`].
//!
//! Invariants: a lost connection loses notifications, so once listening again every stream is
//! told to resync from the journal; a payload that cannot be read is published without its entry
//! (the stream reads the journal); nothing here waits on a stream.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::hub::{Hub, Notice};
use crate::ledger::{EntryKind, JournalEntry};

/// The notification channel of the `journal` trigger.
pub const CHANNEL: &str = "points_journal";

/// The payload of a notification, as the trigger writes it.
#[derive(Debug, Deserialize)]
struct Payload {
    /// User.
    u: Uuid,
    /// Sequence number.
    s: i64,
    /// Kind; absent when the trigger left the entry out.
    k: Option<String>,
    /// Signed points.
    p: Option<i64>,
    /// Balance after.
    b: Option<i64>,
    /// Service.
    v: Option<String>,
}

/// The notice a payload stands for, or `None` when it names no user.
fn notice_of(payload: &str) -> Option<(Uuid, Notice)> {
    let payload: Payload = serde_json::from_str(payload).ok()?;
    let entry = match (
        payload.k.as_deref().and_then(EntryKind::parse),
        payload.p,
        payload.b,
    ) {
        (Some(kind), Some(points), Some(balance_after)) => Some(JournalEntry {
            seq: payload.s,
            kind,
            points,
            balance_after,
            service: payload.v,
        }),
        _ => None,
    };
    Some((
        payload.u,
        Notice::Committed {
            seq: payload.s,
            entry,
        },
    ))
}

/// The running listener.
#[derive(Debug)]
pub struct Listener {
    task: JoinHandle<()>,
    pid: Arc<AtomicI32>,
}

impl Listener {
    /// The server process id of the listening connection (0 while reconnecting).
    pub fn backend_pid(&self) -> i32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// Waits for the listener to stop (after `stopped` turned true).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Connects to `url`, listens on [`CHANNEL`] and publishes to `hub` until `stopped` turns true.
/// Fails when the first connection cannot be made.
pub async fn start(
    url: &str,
    hub: Arc<Hub>,
    stopped: watch::Receiver<bool>,
) -> Result<Listener, sqlx::Error> {
    let pid = Arc::new(AtomicI32::new(0));
    let listener = connect(url, &pid).await?;
    let task = tokio::spawn(run(url.to_owned(), listener, hub, stopped, pid.clone()));
    Ok(Listener { task, pid })
}

async fn connect(url: &str, pid: &AtomicI32) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    refresh_pid(&mut listener, pid).await;
    Ok(listener)
}

async fn refresh_pid(listener: &mut PgListener, pid: &AtomicI32) {
    match sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
        .fetch_one(&mut *listener)
        .await
    {
        Ok(id) => pid.store(id, Ordering::Relaxed),
        Err(error) => tracing::debug!(%error, "cannot read the listener's backend pid"),
    }
}

async fn run(
    url: String,
    mut listener: PgListener,
    hub: Arc<Hub>,
    mut stopped: watch::Receiver<bool>,
    pid: Arc<AtomicI32>,
) {
    loop {
        let received = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            received = listener.try_recv() => received,
        };
        match received {
            Ok(Some(notification)) => match notice_of(notification.payload()) {
                Some((user, notice)) => hub.publish(user, notice),
                None => tracing::warn!(
                    payload = notification.payload(),
                    "unreadable journal notification"
                ),
            },
            Ok(None) => {
                // Lost and already listening again (eager reconnect): what was sent in between
                // is gone.
                tracing::warn!("stream listener reconnected: resyncing every stream");
                refresh_pid(&mut listener, &pid).await;
                hub.resync_all();
            }
            Err(error) => {
                tracing::warn!(%error, "stream listener failed: reconnecting");
                pid.store(0, Ordering::Relaxed);
                let mut wait = Duration::from_millis(50);
                listener = loop {
                    tokio::select! {
                        _ = stopped.wait_for(|stop| *stop) => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    match connect(&url, &pid).await {
                        Ok(listener) => break listener,
                        Err(error) => {
                            tracing::warn!(%error, "stream listener cannot reconnect yet");
                            wait = (wait * 2).min(Duration::from_secs(5));
                        }
                    }
                };
                hub.resync_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_with_and_without_their_entry() {
        let user = Uuid::new_v4();
        let (got, notice) = notice_of(&format!(
            r#"{{"u":"{user}","s":7,"k":"consume","p":-5,"b":10,"v":"tts"}}"#
        ))
        .unwrap();
        assert_eq!(got, user);
        assert_eq!(
            notice,
            Notice::Committed {
                seq: 7,
                entry: Some(JournalEntry {
                    seq: 7,
                    kind: EntryKind::Consume,
                    points: -5,
                    balance_after: 10,
                    service: Some("tts".into()),
                }),
            }
        );
        let (_, notice) = notice_of(&format!(r#"{{"u":"{user}","s":8}}"#)).unwrap();
        assert_eq!(
            notice,
            Notice::Committed {
                seq: 8,
                entry: None
            }
        );
        assert!(notice_of("not json").is_none());
    }
}
