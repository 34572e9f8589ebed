import { useCallback, useEffect, useRef, useState } from "react";
import { getCurrentWebviewWindow } from "@tauri-apps/api/webviewWindow";
import {
  LOCALES,
  checkCost,
  getMessages,
  getPointStore,
  listBatches,
  listTransactions,
  localizedLowBalance,
  localizedOffline,
  localizedRecharged,
  type Batch,
  type DesktopService,
  type Locale,
  type LowBalance,
  type OfflineAllowance,
  type PointBalance,
  type Transaction,
} from "tauri-plugin-points-api";
import { useLocale, usePoints, useRecharged } from "tauri-plugin-points-api/react";
import * as app from "./app";
import { LANGUAGE_NAMES, TEXTS, chooseLocale, describeError, nameOf, type AppTexts } from "./i18n";
import { RechargeModal } from "./RechargeModal";

const store = getPointStore();
/** How long the balance stays still before the history and batches are read again. */
const HISTORY_SETTLE_MS = 250;
const windowLabel = getCurrentWebviewWindow().label;

const JOBS: { service: DesktopService; testid: string }[] = [
  { service: "compose", testid: "action-compose" },
  { service: "subtitle_burn", testid: "action-subtitle-burn" },
  { service: "cover_design", testid: "action-cover-design" },
];

/** A status line, worded when shown: it follows a change of language. */
type Say = { readonly say: (t: AppTexts, locale: Locale) => string } | null;
const failure = (e: unknown): Say => ({ say: (_, locale) => describeError(e, locale) });

export function App() {
  // Fetches the balance on mount and after every change of session (the store empties itself then).
  const pointState = usePoints();
  const [session, setSession] = useState<app.SessionView | null>(null);
  // The plugin's session of the user shown: the store's figures count once it is there (never a
  // previous user's, whichever of the app's and the plugin's announcements comes first).
  const [pluginSession, setPluginSession] = useState<number | null>(null);
  const [batches, setBatches] = useState<Batch[]>([]);
  const [transactions, setTransactions] = useState<Transaction[]>([]);
  const locale = useLocale();
  const t = TEXTS[locale];
  const [status, setStatus] = useState<Say>(null);
  const [running, setRunning] = useState<{ service: DesktopService; percent: number } | null>(null);
  const [fail, setFail] = useState(false);

  // Counts session changes: a read made for an earlier one does not name the plugin session.
  const epoch = useRef(0);
  const follow = useCallback((view: app.SessionView) => {
    const mine = ++epoch.current;
    setSession(view);
    setPluginSession(null);
    setBatches([]);
    setTransactions([]);
    // The plugin's session now: reading it moves the store to it (and its balance is fetched then).
    store.fetchPending().then(
      (status) => mine === epoch.current && setPluginSession(status.session),
      () => undefined,
    );
  }, []);

  useEffect(() => {
    let unlisten: (() => void) | undefined;
    let gone = false;
    app.onSessionChanged(follow).then((u) => (gone ? u() : (unlisten = u)));
    app.session().then(follow, (e) => setStatus(failure(e)));
    return () => {
      gone = true;
      unlisten?.();
    };
  }, [follow]);

  const signedIn = session?.user != null;
  // Only the figures of that session: neither a previous user's, nor (while the app's own
  // announcement is on its way) the next user's under this one's name.
  const current = signedIn && pluginSession !== null && pointState.session === pluginSession;
  const balance = current ? pointState.balance : null;
  const lowBalance = current ? pointState.lowBalance : null;
  const offline = current ? pointState.offline : null;

  // A top-up made anywhere that pays for the open dialog's refusal: the store closed it; say so.
  useRecharged(({ summary }) => setStatus({ say: (_, locale) => localizedRecharged(summary, locale) }), store);

  // History and batches follow the balance: read again once it has been still for a moment (a
  // burst of changes from the ledger is one read, not one per change).
  useEffect(() => {
    if (balance === null) return;
    let stale = false;
    const timer = setTimeout(() => {
      Promise.all([listBatches(), listTransactions({ limit: 8 })]).then(
        ([b, t]) => {
          if (stale) return;
          setBatches(b);
          setTransactions(t.items);
        },
        () => undefined,
      );
    }, HISTORY_SETTLE_MS);
    return () => {
      stale = true;
      clearTimeout(timer);
    };
  }, [balance]);

  async function run(service: DesktopService) {
    setStatus(null);
    setRunning({ service, percent: 0 });
    try {
      const done = await app.runJob(service, fail, (percent) => setRunning({ service, percent }));
      const { charged, refused } = done;
      if (charged) setStatus({ say: (t) => t.jobCharged(nameOf(service), charged.points) });
      else if (done.pending) setStatus({ say: (t) => t.jobPending(nameOf(service)) });
      else if (refused) setStatus({ say: (t, locale) => t.jobRefused(nameOf(service), describeError(refused, locale)) });
      else setStatus({ say: (t) => t.jobNotCharged(nameOf(service)) });
    } catch (e) {
      // Too few points opens the dialog; the reason (an offline refusal's too) is said in the status line.
      store.handleError(e);
      setStatus(failure(e));
    } finally {
      setRunning(null);
    }
  }

  const next = batches.find((b) => b.remaining > 0);

  return (
    <main>
      <header>
        <h1 data-testid="title">{t.title}</h1>
        <span className="muted" data-testid="window-label">
          {windowLabel}
        </span>
        <span className="languages" role="group" aria-label={t.language}>
          {LOCALES.map((l) => (
            <button key={l} lang={l} data-testid={`language-${l}`} aria-pressed={l === locale} onClick={() => chooseLocale(l)}>
              {LANGUAGE_NAMES[l]}
            </button>
          ))}
        </span>
        <div className="badge" title={t.yourPoints}>
          <span data-testid="balance">{balance ? balance.balance : "—"}</span> {t.points(balance?.balance ?? 0)}
        </div>
      </header>
      <p className="muted" data-testid="expires-next">
        {next ? t.expires(next.remaining, new Date(next.expiresAt)) : signedIn ? t.nothingExpires : ""}
      </p>
      <Totals balance={balance} texts={t} />
      {lowBalance && balance && <LowBalanceBanner low={lowBalance} balance={balance.balance} locale={locale} />}
      {offline && <OfflineBanner offline={offline} locale={locale} />}

      <section className="row">
        <span data-testid="user">{signedIn ? t.signedInAs(session?.user ?? "") : t.signedOut}</span>
        {signedIn ? (
          <button data-testid="sign-out" onClick={() => app.signOut().catch((e) => setStatus(failure(e)))}>
            {t.signOut}
          </button>
        ) : (
          <button data-testid="sign-in-other" onClick={() => app.signInOther().catch((e) => setStatus(failure(e)))}>
            {session?.canSwitch ? t.signInOther : t.signInAgain}
          </button>
        )}
        <button data-testid="open-window" onClick={() => app.openWindow().catch((e) => setStatus(failure(e)))}>
          {t.openWindow}
        </button>
        <span className="pending" title={t.pendingTitle}>
          {t.pending} <span data-testid="pending-count">{pointState.pendingCharges}</span>
        </span>
      </section>

      <section>
        <h2>{t.jobs}</h2>
        <div className="row">
          {JOBS.map((job) => (
            <button key={job.service} data-testid={job.testid} disabled={!signedIn || running !== null} onClick={() => run(job.service)}>
              {t.jobButtons[job.service]}
            </button>
          ))}
          <label>
            <input type="checkbox" data-testid="fail-toggle" checked={fail} onChange={(e) => setFail(e.target.checked)} /> {t.failToggle}
          </label>
        </div>
        {running && (
          <progress data-testid="job-progress" max={100} value={running.percent}>
            {running.percent}%
          </progress>
        )}
        <p data-testid="job-status">{status?.say(t, locale) ?? ""}</p>
      </section>

      <VideoPanel signedIn={signedIn} texts={t} onStatus={setStatus} />

      <section>
        <h2>{t.transactions}</h2>
        <ul data-testid="transactions">
          {transactions.map((entry) => (
            <li key={entry.id}>
              <span className={entry.points < 0 ? "minus" : "plus"}>{entry.points > 0 ? `+${entry.points}` : entry.points}</span>{" "}
              {getMessages(locale).transactionKinds[entry.kind]} {entry.service ? nameOf(entry.service) : ""}{" "}
              <span className="muted">→ {entry.balanceAfter}</span>
            </li>
          ))}
        </ul>
      </section>

      <RechargeModal recharge={pointState.recharge} onClose={pointState.closeRecharge} />
    </main>
  );
}

/** Generate video: the price comes from the cost check; the job goes to "the app's backend". */
function VideoPanel({ signedIn, texts: t, onStatus }: { signedIn: boolean; texts: AppTexts; onStatus: (s: Say) => void }) {
  const [duration, setDuration] = useState("3");
  const [cost, setCost] = useState<number | null>(null);
  const seconds = Number(duration);
  const valid = Number.isFinite(seconds) && seconds > 0;

  useEffect(() => {
    setCost(null);
    if (!signedIn || !valid) return;
    let stale = false;
    const timer = setTimeout(() => {
      checkCost("video", seconds).then(
        (c) => !stale && setCost(c.required),
        (e) => !stale && onStatus(failure(e)),
      );
    }, 150);
    return () => {
      stale = true;
      clearTimeout(timer);
    };
  }, [seconds, valid, signedIn, onStatus]);

  async function submit() {
    onStatus(null);
    try {
      const answer = await app.submitVideo(seconds);
      if (store.handleBackendBody(answer.body, answer.status)) return;
      if (answer.status === 200) {
        const charged = (answer.body as { points?: number }).points ?? null;
        // The balance follows by itself: the ledger's stream (or the plugin's poll) brings the summary.
        onStatus({ say: (t) => t.videoAccepted(charged) });
      } else onStatus({ say: (t) => t.backendAnswered(answer.status) });
    } catch (e) {
      onStatus(failure(e));
    }
  }

  return (
    <section>
      <h2>{t.video}</h2>
      <div className="row">
        <label>
          {t.duration}{" "}
          <input data-testid="video-duration" type="number" min="0.1" step="0.1" value={duration} onChange={(e) => setDuration(e.target.value)} />
        </label>
        <span>
          {t.cost} <span data-testid="video-cost">{cost ?? "…"}</span> {t.points(cost ?? 0)}
        </span>
        <button data-testid="action-video" disabled={!signedIn || !valid} onClick={submit}>
          {t.generate}
        </button>
      </div>
    </section>
  );
}

/** The totals of the summary shown, the same one as the badge (they always add up). */
function Totals({ balance, texts: t }: { balance: PointBalance | null; texts: AppTexts }) {
  if (balance === null) return <p className="muted" data-testid="totals" />;
  return (
    <p
      className="muted"
      data-testid="totals"
      data-balance={balance.balance}
      data-recharged={balance.totalRecharged}
      data-consumed={balance.totalConsumed}
      data-expired={balance.totalExpired}
      data-seq={balance.seq ?? ""}
    >
      {t.totals(balance.totalRecharged, balance.totalConsumed, balance.totalExpired)}
    </p>
  );
}

/**
 * The low-balance banner, while the store's crossing is in force (in every window). "Top up"
 * buys 50 points; "Dismiss" hides it until the next crossing.
 */
function LowBalanceBanner({ low, balance, locale }: { low: LowBalance; balance: number; locale: Locale }) {
  const [dismissed, setDismissed] = useState<LowBalance | null>(null);
  const [busy, setBusy] = useState(false);
  if (dismissed === low) return null;
  const texts = localizedLowBalance({ threshold: low.threshold, balance }, locale);
  return (
    <div className="banner" role="status" data-testid="low-balance" data-threshold={low.threshold}>
      <span data-testid="low-balance-message">{texts.message}</span>
      <button
        data-testid="low-balance-top-up"
        disabled={busy}
        onClick={() => {
          setBusy(true);
          app.topUp().finally(() => setBusy(false)).catch(() => undefined);
        }}
      >
        {texts.action}
      </button>
      <button data-testid="low-balance-dismiss" onClick={() => setDismissed(low)}>
        {texts.dismiss}
      </button>
    </div>
  );
}

/**
 * The offline banner, while the ledger cannot be reached (the store's `offline`, in every window):
 * what the offline allowance still covers and until when, or that desktop jobs wait for the
 * connection.
 */
function OfflineBanner({ offline, locale }: { offline: OfflineAllowance; locale: Locale }) {
  return (
    <div
      className="banner offline"
      role="status"
      data-testid="offline-banner"
      data-remaining={offline.remaining}
      data-until={offline.until ?? ""}
    >
      <span data-testid="offline-message">{localizedOffline(offline, locale)}</span>
    </div>
  );
}
