import { useCallback, useEffect, useRef, useState } from "react";
import { getCurrentWebviewWindow } from "@tauri-apps/api/webviewWindow";
import {
  checkCost,
  getPointStore,
  listBatches,
  listTransactions,
  type Batch,
  type DesktopService,
  type Transaction,
} from "tauri-plugin-points-api";
import { usePoints } from "tauri-plugin-points-api/react";
import * as app from "./app";
import { RechargeModal } from "./RechargeModal";

const store = getPointStore();
const windowLabel = getCurrentWebviewWindow().label;

const JOBS: { service: DesktopService; label: string; testid: string }[] = [
  { service: "compose", label: "Compose video", testid: "action-compose" },
  { service: "subtitle_burn", label: "Burn subtitles", testid: "action-subtitle-burn" },
  { service: "cover_design", label: "Design cover", testid: "action-cover-design" },
];

const day = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short" });
const points = (n: number) => (n === 1 || n === -1 ? "point" : "points");

export function App() {
  const pointState = usePoints({ fetchOnMount: false });
  const [session, setSession] = useState<app.SessionView | null>(null);
  // Whether the balance in the store was fetched for the session shown (not a previous user's).
  const [fresh, setFresh] = useState(false);
  const [batches, setBatches] = useState<Batch[]>([]);
  const [transactions, setTransactions] = useState<Transaction[]>([]);
  const [status, setStatus] = useState("");
  const [running, setRunning] = useState<{ service: DesktopService; percent: number } | null>(null);
  const [fail, setFail] = useState(false);

  // Counts session changes: a fetch made for an earlier one does not mark the balance fresh.
  const epoch = useRef(0);
  const follow = useCallback((view: app.SessionView) => {
    const mine = ++epoch.current;
    setSession(view);
    setFresh(false);
    setBatches([]);
    setTransactions([]);
    if (view.user !== null) {
      store.fetchBalance().then(
        () => mine === epoch.current && setFresh(true),
        () => undefined,
      );
    }
  }, []);

  useEffect(() => {
    let unlisten: (() => void) | undefined;
    let gone = false;
    app.onSessionChanged(follow).then((u) => (gone ? u() : (unlisten = u)));
    app.session().then(follow, (e) => setStatus(app.messageOf(e)));
    return () => {
      gone = true;
      unlisten?.();
    };
  }, [follow]);

  const signedIn = session?.user != null;
  const balance = signedIn && fresh ? pointState.balance : null;

  // History and batches follow every balance change.
  useEffect(() => {
    if (balance === null) return;
    let stale = false;
    Promise.all([listBatches(), listTransactions({ limit: 8 })]).then(
      ([b, t]) => {
        if (stale) return;
        setBatches(b);
        setTransactions(t.items);
      },
      () => undefined,
    );
    return () => {
      stale = true;
    };
  }, [balance]);

  async function run(service: DesktopService) {
    setStatus("");
    setRunning({ service, percent: 0 });
    try {
      const done = await app.runJob(service, fail, (percent) => setRunning({ service, percent }));
      if (done.charged) setStatus(`${service} done: ${done.charged.points} points charged`);
      else if (done.pending) setStatus(`${service} done: its charge will be sent when the ledger is back`);
      else if (done.refused) setStatus(`${service} done, but the ledger refused its charge: ${done.refused.message}`);
      else setStatus(`${service} done: not charged`);
    } catch (e) {
      if (!store.handleError(e)) setStatus(app.messageOf(e));
    } finally {
      setRunning(null);
    }
  }

  const next = batches.find((b) => b.remaining > 0);

  return (
    <main>
      <header>
        <h1>Points example</h1>
        <span className="muted" data-testid="window-label">
          {windowLabel}
        </span>
        <div className="badge" title="Your points">
          <span data-testid="balance">{balance ? balance.balance : "—"}</span> {points(balance?.balance ?? 0)}
        </div>
      </header>
      <p className="muted" data-testid="expires-next">
        {next ? `${next.remaining} ${points(next.remaining)} ${next.remaining === 1 ? "expires" : "expire"} on ${day.format(new Date(next.expiresAt))}` : signedIn ? "No points to expire" : ""}
      </p>

      <section className="row">
        <span data-testid="user">{signedIn ? `Signed in as ${session?.user}` : "Signed out"}</span>
        {signedIn ? (
          <button data-testid="sign-out" onClick={() => app.signOut().catch((e) => setStatus(app.messageOf(e)))}>
            Sign out
          </button>
        ) : (
          <button data-testid="sign-in-other" onClick={() => app.signInOther().catch((e) => setStatus(app.messageOf(e)))}>
            {session?.canSwitch ? "Sign in as another demo user" : "Sign in again"}
          </button>
        )}
        <button data-testid="open-window" onClick={() => app.openWindow().catch((e) => setStatus(app.messageOf(e)))}>
          Open another window
        </button>
        <span className="pending" title="Charges waiting for the ledger">
          Pending sync: <span data-testid="pending-count">{pointState.pendingCharges}</span>
        </span>
      </section>

      <section>
        <h2>Desktop jobs</h2>
        <div className="row">
          {JOBS.map((job) => (
            <button key={job.service} data-testid={job.testid} disabled={!signedIn || running !== null} onClick={() => run(job.service)}>
              {job.label}
            </button>
          ))}
          <label>
            <input type="checkbox" data-testid="fail-toggle" checked={fail} onChange={(e) => setFail(e.target.checked)} /> make
            this job fail
          </label>
        </div>
        {running && (
          <progress data-testid="job-progress" max={100} value={running.percent}>
            {running.percent}%
          </progress>
        )}
        <p data-testid="job-status">{status}</p>
      </section>

      <VideoPanel signedIn={signedIn} onStatus={setStatus} />

      <section>
        <h2>Transactions</h2>
        <ul data-testid="transactions">
          {transactions.map((t) => (
            <li key={t.id}>
              <span className={t.points < 0 ? "minus" : "plus"}>{t.points > 0 ? `+${t.points}` : t.points}</span>{" "}
              {t.kind} {t.service ?? ""} <span className="muted">→ {t.balanceAfter}</span>
            </li>
          ))}
        </ul>
      </section>

      <RechargeModal recharge={pointState.recharge} onClose={pointState.closeRecharge} />
    </main>
  );
}

/** Generate video: the price comes from the cost check; the job goes to "the app's backend". */
function VideoPanel({ signedIn, onStatus }: { signedIn: boolean; onStatus: (s: string) => void }) {
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
        (e) => !stale && onStatus(app.messageOf(e)),
      );
    }, 150);
    return () => {
      stale = true;
      clearTimeout(timer);
    };
  }, [seconds, valid, signedIn, onStatus]);

  async function submit() {
    onStatus("");
    try {
      const answer = await app.submitVideo(seconds);
      if (store.handleBackendBody(answer.body, answer.status)) return;
      if (answer.status === 200) {
        const charged = (answer.body as { points?: number }).points;
        onStatus(`video accepted by the backend: ${charged ?? "?"} points charged`);
        await store.fetchBalance();
      } else onStatus(`the backend answered ${answer.status}`);
    } catch (e) {
      onStatus(app.messageOf(e));
    }
  }

  return (
    <section>
      <h2>Generate video</h2>
      <div className="row">
        <label>
          Duration (s){" "}
          <input data-testid="video-duration" type="number" min="0.1" step="0.1" value={duration} onChange={(e) => setDuration(e.target.value)} />
        </label>
        <span>
          Cost: <span data-testid="video-cost">{cost ?? "…"}</span> points
        </span>
        <button data-testid="action-video" disabled={!signedIn || !valid} onClick={submit}>
          Generate video
        </button>
      </div>
    </section>
  );
}
