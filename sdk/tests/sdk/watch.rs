//! The live balance against the real reference ledger: every change made anywhere (a recharge
//! by the admin route, a backend's consume with the user's token) arrives whole and in order; a
//! stream cut again and again resumes after its last `seq` without a gap; a change of account or
//! a sign-out never lets the old account's figures through; a backend without the stream is
//! polled.

use std::sync::Arc;
use std::time::Duration;

use points_sdk::client::wire::check_summary;
use points_sdk::client::{ConsumeRequest, IdempotencyKey, LedgerClient};
use points_sdk::models::PointBalance;
use points_sdk::watch::{BalanceWatch, FigureSource, WatchListener, WatchPolicy};
use points_sdk::{Session, Sessions, TokenProvider};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::common::proxy::{Fault, FaultProxy};
use crate::common::{client_for, fast_retry, in_days, TestLedger};

/// One figure as the listener got it.
#[derive(Debug, Clone)]
struct Seen {
    generation: u64,
    account: String,
    figure: PointBalance,
    source: FigureSource,
}

struct Collect(
    mpsc::UnboundedSender<Seen>,
    Arc<std::sync::atomic::AtomicBool>,
);

impl WatchListener for Collect {
    fn foreground(&self) -> bool {
        self.1.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn figure(
        &self,
        generation: u64,
        session: &Session,
        figure: &PointBalance,
        source: FigureSource,
    ) {
        let _ = self.0.send(Seen {
            generation,
            account: session.account().to_owned(),
            figure: figure.clone(),
            source,
        });
    }
}

fn fast_watch() -> WatchPolicy {
    WatchPolicy {
        poll_interval: Duration::from_millis(100),
        hidden_poll_interval: Duration::from_millis(100),
        reconnect_base: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(200),
        idle_timeout: Duration::from_secs(30),
        stream_retry_interval: Duration::from_secs(3600),
    }
}

/// A watch of `base_url` with its sessions and the figures it reports.
fn watch_of(base_url: &str) -> (BalanceWatch, Arc<Sessions>, mpsc::UnboundedReceiver<Seen>) {
    let (watch, sessions, figures, _) = watch_shown(base_url, fast_watch());
    (watch, sessions, figures)
}

/// [`watch_of`] with `policy`, and the switch of whether the app is shown.
fn watch_shown(
    base_url: &str,
    policy: WatchPolicy,
) -> (
    BalanceWatch,
    Arc<Sessions>,
    mpsc::UnboundedReceiver<Seen>,
    Arc<std::sync::atomic::AtomicBool>,
) {
    let sessions = Arc::new(Sessions::new(None));
    let client = LedgerClient::builder(base_url)
        .retry(fast_retry())
        .request_timeout(Duration::from_secs(5))
        .token_provider({
            let sessions = sessions.clone();
            move || sessions.token()
        })
        .build()
        .unwrap();
    let (sender, receiver) = mpsc::unbounded_channel();
    let shown = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watch = BalanceWatch::new(
        client,
        sessions.clone(),
        policy,
        Arc::new(Collect(sender, shown.clone())),
    );
    tokio::spawn(watch.clone().run());
    (watch, sessions, receiver, shown)
}

/// A proxy to `ledger` whose stream requests meet `fault`; every other request passes.
async fn stream_proxy(ledger: &TestLedger, fault: Fault) -> FaultProxy {
    let proxy = FaultProxy::start(&ledger.ledger.base_url()).await;
    proxy.choose(move |line| {
        if line.starts_with("GET /points/stream") {
            fault
        } else {
            Fault::Pass
        }
    });
    proxy
}

/// The next figure, within 10 s.
async fn next(figures: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    let seen = tokio::time::timeout(Duration::from_secs(10), figures.recv())
        .await
        .expect("a figure within 10 s")
        .expect("the watch runs");
    check_summary(&seen.figure).expect("every figure is whole");
    seen
}

/// Figures until one has `balance`, all of them.
async fn until_balance(figures: &mut mpsc::UnboundedReceiver<Seen>, balance: i64) -> Vec<Seen> {
    let mut seen = Vec::new();
    loop {
        let figure = next(figures).await;
        let done = figure.figure.balance == balance;
        seen.push(figure);
        if done {
            return seen;
        }
    }
}

async fn backend_consume(ledger: &TestLedger, token: &str, key: &str) {
    let backend = client_for(&ledger.ledger.base_url(), Some(token));
    let request = ConsumeRequest {
        duration: Some(3.0),
        allow_debt: true,
        ..ConsumeRequest::new("tts")
    };
    backend
        .consume(&request, &IdempotencyKey::parse(key).unwrap())
        .await
        .expect("the backend's consume");
}

#[tokio::test]
async fn every_change_made_anywhere_arrives_whole_and_in_order() {
    let ledger = TestLedger::start(100).await;
    let (_watch, sessions, mut figures) = watch_of(&ledger.ledger.base_url());
    sessions.sign_in(Session::new(ledger.token.clone(), None).unwrap());
    let first = next(&mut figures).await;
    assert_eq!(
        first.figure.balance, 100,
        "the stream starts with the summary now"
    );
    assert_eq!(first.source, FigureSource::Stream);

    ledger
        .ledger
        .recharge(ledger.user, 50, in_days(30))
        .await
        .unwrap();
    let after_recharge = next(&mut figures).await;
    assert_eq!(after_recharge.figure.balance, 150);
    assert_eq!(after_recharge.figure.total_recharged, 150);

    backend_consume(&ledger, &ledger.token, "tts:job-1").await;
    let after_consume = next(&mut figures).await;
    assert!(after_consume.figure.balance < 150);
    assert_eq!(
        after_consume.figure.total_consumed,
        150 - after_consume.figure.balance,
        "the totals come with the balance"
    );
    let seqs = [&first, &after_recharge, &after_consume].map(|s| s.figure.seq.unwrap());
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in seq order: {seqs:?}"
    );
}

#[tokio::test]
async fn a_stream_cut_again_and_again_resumes_after_its_last_seq_without_a_gap() {
    let ledger = TestLedger::start(1_000).await;
    let proxy = stream_proxy(
        &ledger,
        Fault::Stream {
            cut_after: Some(Duration::from_millis(300)),
        },
    )
    .await;
    let (_watch, sessions, mut figures) = watch_of(&proxy.base_url);
    sessions.sign_in(Session::new(ledger.token.clone(), None).unwrap());
    let first = next(&mut figures).await;
    let changes = 40;
    for n in 0..changes {
        ledger
            .ledger
            .recharge(ledger.user, 1, in_days(30))
            .await
            .unwrap();
        if n % 4 == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let seen = until_balance(&mut figures, 1_000 + changes).await;
    let mut seqs = vec![first.figure.seq.unwrap()];
    seqs.extend(seen.iter().map(|s| s.figure.seq.unwrap()));
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "every change once, in order, across the cuts: {seqs:?}"
    );
    assert!(
        proxy.stats.cut.load(std::sync::atomic::Ordering::SeqCst) >= 3,
        "the stream was cut several times"
    );
}

#[tokio::test]
async fn a_change_of_account_or_a_sign_out_lets_no_figure_of_the_old_account_through() {
    let ledger = TestLedger::start(100).await;
    let other = Uuid::new_v4();
    ledger.ledger.recharge(other, 7, in_days(30)).await.unwrap();
    let other_token = ledger.ledger.token_for(other);
    let (_watch, sessions, mut figures) = watch_of(&ledger.ledger.base_url());

    sessions.sign_in(Session::new(ledger.token.clone(), None).unwrap());
    assert_eq!(next(&mut figures).await.figure.balance, 100);
    sessions.sign_in(Session::new(other_token.clone(), None).unwrap());
    let (_, generation) = sessions.snapshot();
    // The first user's balance moves while the second is signed in.
    ledger
        .ledger
        .recharge(ledger.user, 1, in_days(30))
        .await
        .unwrap();
    let seen = until_balance(&mut figures, 7).await;
    ledger.ledger.recharge(other, 3, in_days(30)).await.unwrap();
    let mut seen_after = until_balance(&mut figures, 10).await;
    seen_after.extend(seen);
    for figure in seen_after.iter().filter(|s| s.generation == generation) {
        assert_eq!(
            figure.account,
            format!("sub:{other}"),
            "a figure of the session now is of its account"
        );
        assert!(
            [7, 10].contains(&figure.figure.balance),
            "never the first user's figure in the second user's session: {figure:?}"
        );
    }

    sessions.sign_out();
    tokio::time::sleep(Duration::from_millis(200)).await;
    while figures.try_recv().is_ok() {}
    ledger.ledger.recharge(other, 5, in_days(30)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        figures.try_recv().is_err(),
        "signed out: the stream is closed and nothing is reported"
    );
}

#[tokio::test]
async fn a_backend_without_the_stream_is_polled() {
    let ledger = TestLedger::start(100).await;
    let proxy = stream_proxy(
        &ledger,
        Fault::Answer {
            status: 404,
            retry_after: None,
            body: "{\"detail\":\"Not Found\"}",
        },
    )
    .await;
    let (_watch, sessions, mut figures) = watch_of(&proxy.base_url);
    sessions.sign_in(Session::new(ledger.token.clone(), None).unwrap());
    let first = next(&mut figures).await;
    assert_eq!(
        (first.figure.balance, first.source),
        (100, FigureSource::Poll)
    );
    ledger
        .ledger
        .recharge(ledger.user, 20, in_days(30))
        .await
        .unwrap();
    let seen = until_balance(&mut figures, 120).await;
    assert!(seen.iter().all(|s| s.source == FigureSource::Poll));
    let polls_before = proxy
        .stats
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(550)).await;
    let polls = proxy
        .stats
        .requests
        .load(std::sync::atomic::Ordering::SeqCst)
        - polls_before;
    assert!(
        (3..=8).contains(&polls),
        "about one poll per 100 ms, and no stream request between them: {polls}"
    );
}

#[tokio::test]
async fn polls_slow_down_while_nothing_is_shown() {
    let ledger = TestLedger::start(100).await;
    let proxy = stream_proxy(
        &ledger,
        Fault::Answer {
            status: 501,
            retry_after: None,
            body: "{}",
        },
    )
    .await;
    let policy = WatchPolicy {
        hidden_poll_interval: Duration::from_millis(400),
        ..fast_watch()
    };
    let (_watch, sessions, mut figures, shown) = watch_shown(&proxy.base_url, policy);
    sessions.sign_in(Session::new(ledger.token.clone(), None).unwrap());
    next(&mut figures).await;
    let requests = || {
        proxy
            .stats
            .requests
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    let count_during = |wait: Duration| async move {
        let before = requests();
        tokio::time::sleep(wait).await;
        requests() - before
    };
    let shown_polls = count_during(Duration::from_millis(1000)).await;
    shown.store(false, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let hidden_polls = count_during(Duration::from_millis(1000)).await;
    assert!(
        shown_polls >= 7 && hidden_polls <= 4,
        "every 100 ms while shown ({shown_polls}), every 400 ms while hidden ({hidden_polls})"
    );
}

#[tokio::test]
async fn a_stream_of_another_account_is_never_reported() {
    let ledger = TestLedger::start(100).await;
    let other = Uuid::new_v4();
    ledger.ledger.recharge(other, 7, in_days(30)).await.unwrap();
    let proxy = stream_proxy(
        &ledger,
        Fault::Stream {
            cut_after: Some(Duration::from_millis(300)),
        },
    )
    .await;
    let (_watch, sessions, mut figures) = watch_of(&proxy.base_url);
    sessions.sign_in(Session::new(ledger.token.clone(), None).unwrap());
    assert_eq!(next(&mut figures).await.figure.balance, 100);
    // A gateway gone wrong: from the next connection on, the stream is another user's.
    proxy.exchange_token(&ledger.token, &ledger.ledger.token_for(other));
    tokio::time::sleep(Duration::from_millis(400)).await;
    ledger.ledger.recharge(other, 1, in_days(30)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    while let Ok(seen) = figures.try_recv() {
        assert_eq!(
            seen.figure.balance, 100,
            "never another account's figure: {seen:?}"
        );
    }
}
