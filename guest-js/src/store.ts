import { getCurrentWebview } from "@tauri-apps/api/webview";
import * as api from "./commands";
import type { ChargeOptions, ServiceName } from "./commands";
import type {
  BalanceChanged,
  ChargeOutcome,
  CostCheck,
  DesktopService,
  InsufficientPoints,
  LowBalance,
  OfflineAllowance,
  OfflineStatus,
  PendingCharges,
  PendingStatus,
  PointBalance,
  PointsError,
  RefusedCharge,
  SessionChanged,
} from "./bindings";
import { isInsufficientPoints, isPointsError } from "./errors";
import {
  onBalanceChanged,
  onChargeRefused,
  onInsufficientPoints,
  onLowBalance as onLowBalanceEvent,
  onOfflineChanged,
  onPendingChanged,
  onSessionChanged,
  type UnlistenFn,
} from "./events";
import { getLocale, localizedRecharge, messagesVersion, onMessagesChanged, type RechargeTexts } from "./messages";
import {
  PAYMENT_REQUIRED,
  insufficientPointsFromBody,
  insufficientPointsFromResponse,
  type RefusalFigures,
} from "./backend";

/**
 * The recharge dialog: whether it is open, the figures of the refusal that opened it, and its
 * texts in the current language (`getLocale()`), with the figures filled in.
 *
 * While it is open, a whole summary that arrives (from any window's top-up, the ledger's stream,
 * a poll or a fetch) with `balance >= required` means the refusal is paid for: the store closes
 * the dialog itself, with `satisfied: true`, and calls its {@link PointStore.onRecharged}
 * listeners. The host does not close it for that.
 */
export interface RechargeDialog {
  readonly open: boolean;
  /**
   * `true` on the closed dialog when the store closed it because a balance covered `required`
   * (then `service` and `required` are the refusal's, `balance` the balance that covered it);
   * `false` while open, and after any other close. Reset by the next open or close.
   */
  readonly satisfied: boolean;
  readonly service: string | null;
  readonly required: number | null;
  readonly balance: number | null;
  /**
   * The title, message and button labels while open (`null` when closed). They follow
   * `setLocale` and `overrideMessages`: a change gives a new snapshot with the new texts.
   */
  readonly texts: RechargeTexts | null;
}

/** What the store keeps of a failure: a PointsError, a Tauri refusal (a string), or an Error. */
export type PointStoreError = PointsError | string | Error;

/** A snapshot of the store. Never mutated: every change makes a new one. */
export interface PointState {
  /**
   * The signed-in account's balance and totals, or `null` before the first fetch and after a
   * change of session. Always one whole summary of the ledger (a fetch's answer, or the
   * `summary` of `points://balance-changed`): `balance`, the totals and `seq` are of the same
   * moment. A figure that carries a balance only (a charge's receipt, a price check) never
   * changes it: the plugin's event with the whole summary does.
   */
  readonly balance: PointBalance | null;
  /**
   * The latest crossing below a low-balance threshold still in force (`points://low-balance`),
   * or `null`. Cleared when a newer figure at or above its threshold arrives (the next active
   * crossing, of a higher threshold, is shown then) and at every change of session.
   */
  readonly lowBalance: LowBalance | null;
  /**
   * `null` while the ledger is reachable; else what offline work may still spend (`until` is
   * `null` when no usable allowance is held: desktop jobs wait for the connection). Of the
   * session shown: read at start and at every change of session, then as
   * `points://offline-changed` says.
   */
  readonly offline: OfflineAllowance | null;
  /** Whether a balance fetch is in flight. */
  readonly loading: boolean;
  /** The last failure of a store action (cleared by the next success), or `null`. */
  readonly error: PointStoreError | null;
  /** The signed-in account's charges made but not yet acknowledged by the ledger (0 while signed out). */
  readonly pendingCharges: number;
  /**
   * Charges pending on this machine for other accounts than the signed-in one (all of them while
   * signed out), as of the last read of the pending charges: sent when their account signs in again.
   */
  readonly pendingOtherAccounts: number;
  /** The signed-in account's charges the ledger refused for good, oldest first: work done but not paid. */
  readonly refusedCharges: readonly RefusedCharge[];
  /**
   * The plugin's session number this state belongs to (it grows at every sign-in, sign-out and
   * change of account), or `null` until the store has heard one.
   */
  readonly session: number | null;
  /**
   * Whether an account is signed in: as announced by `points://session-changed`, or `true` after a
   * successful balance read. `null` while unknown.
   */
  readonly signedIn: boolean | null;
  readonly recharge: RechargeDialog;
}

/** What {@link PointStore.onRecharged} listeners get: the refusal paid for and the summary that covers it. */
export interface Recharged {
  readonly service: string | null;
  readonly required: number;
  readonly summary: PointBalance;
}

/** Options of {@link createPointStore}. */
export interface PointStoreOptions {
  /** The balance to show before the first fetch (e.g. one rendered by the server). */
  initialBalance?: PointBalance | null | undefined;
  /** Attach the plugin's event listeners at once (as {@link PointStore.start} does). Default: false. */
  start?: boolean | undefined;
  /**
   * The label of the webview the store lives in: a `points://insufficient` event opens the recharge
   * dialog only in the store whose label it names. Default: `getCurrentWebview().label`.
   */
  webviewLabel?: string | null | undefined;
}

/** The points of the signed-in user, for any UI. Its methods need no `this`: pass them around freely. */
export interface PointStore {
  /**
   * Calls `listener` after every change (a change of language included, which gives the dialog new
   * texts); returns the function that stops it. For `useSyncExternalStore`.
   */
  subscribe(listener: () => void): () => void;
  /** The current snapshot: the same object as long as nothing changed. For `useSyncExternalStore`. */
  getSnapshot(): PointState;

  /**
   * Reads the balance from the ledger. Calls made while one is in flight share its request and
   * its result. Rejects with the failure, which is also kept in `error`.
   */
  fetchBalance(): Promise<PointBalance>;
  /** The price of one use of a service; its `balance` also refreshes `balance.balance`. */
  checkCost(service: ServiceName, duration?: number): Promise<CostCheck>;
  /**
   * Charges one use of a desktop service, as one job under one idempotency key per user action:
   * `options.idempotencyKey`, or else one made before the call (`webview:<uuid>`). Pass the same
   * `idempotencyKey` to retry the same action: it is never charged twice. The outcome carries the
   * key ({@link idempotencyKeyOf}); to retry after a rejection, make the key first
   * ({@link newIdempotencyKey}) and pass it to every attempt.
   *
   * The plugin journals the charge before it sends it, so it resolves once sent:
   * - `acknowledged`: the receipt's balance refreshes `balance.balance` (not a replay's, which is
   *   the balance of the first charge);
   * - `pending`: the answer did not come; the plugin's background sync sends it later. Not an
   *   error: `error` is cleared, no dialog opens, and the pending charges are read again;
   * - `refused`: refused for good; the refused charges are read again (`refusedCharges`).
   *
   * It rejects when nothing was charged: with too few points with an `insufficientPoints` error,
   * opening the recharge dialog; every failure is kept in `error`. Needs `points:allow-charge`.
   */
  charge(service: DesktopService, options?: ChargeOptions): Promise<ChargeOutcome>;
  /** Reads the pending and refused charges again. Rejects with the failure, also kept in `error`. */
  fetchPending(): Promise<PendingStatus>;
  /**
   * Sends the pending charges now instead of waiting for the plugin's background sync, and shows
   * what is left. Rejects with the failure, also kept in `error`.
   */
  syncPending(): Promise<PendingStatus>;
  /**
   * Moves a refused charge (by its `idempotencyKey`) back to the pending charges and has it sent
   * now, then shows the pending and refused charges answered. Rejects with the failure, also kept
   * in `error`.
   */
  retryRefused(idempotencyKey: string): Promise<PendingStatus>;
  /**
   * Removes a refused charge (by its `idempotencyKey`) from the record once the user has seen it,
   * then shows the pending and refused charges answered. Rejects with the failure, also kept in
   * `error`.
   */
  dismissRefused(idempotencyKey: string): Promise<PendingStatus>;

  /** Opens the recharge dialog, with the figures of the refusal when known. */
  openRecharge(info?: Partial<RefusalFigures>): void;
  /** Closes the recharge dialog (its figures are cleared). */
  closeRecharge(): void;
  /** Clears `error`. */
  clearError(): void;

  /**
   * Calls `listener` when the store closes the open recharge dialog because a summary with
   * `balance >= required` arrived (see {@link RechargeDialog}); returns the function that stops it.
   */
  onRecharged(listener: (recharged: Recharged) => void): () => void;
  /**
   * Calls `listener` at every crossing below a low-balance threshold of the session shown (once
   * started); returns the function that stops it. `lowBalance` holds the crossing too.
   */
  onLowBalance(listener: (low: LowBalance) => void): () => void;
  /**
   * Calls `listener` at every change of the offline state of the session shown (once started),
   * with the new `offline` (`null` once the ledger is reachable again); returns the function that
   * stops it. A read of the state (at start, at a change of session) calls no listener.
   */
  onOffline(listener: (offline: OfflineAllowance | null) => void): () => void;

  /**
   * Takes a failure met outside the store (e.g. from a direct command call of this window): keeps
   * it in `error` and, when it is an `insufficientPoints` error, opens the recharge dialog (once
   * for one refusal, though the plugin's `points://insufficient` event reports it too). Returns
   * whether it is such an error.
   */
  handleError(error: unknown): boolean;
  /**
   * Takes an answer of the app's own backend: on a 402 opens the recharge dialog with the figures
   * of its body (problem+json, FastAPI `detail`, or none) and resolves to `true`; otherwise `false`.
   * The body stays readable by the caller.
   */
  handleBackendResponse(response: Response): Promise<boolean>;
  /** Like {@link handleBackendResponse}, for a body already parsed (or its text) and its status. */
  handleBackendBody(body: unknown, status: number): boolean;

  /**
   * Attaches the listeners of the plugin's events (balance, refusals, pending and refused charges,
   * session, offline state), then reads the pending charges (and the low-balance crossing and
   * offline state in force). Calling it again while started does nothing;
   * resolves once the listeners are attached and that read is done (its failure is ignored).
   */
  start(): Promise<void>;
  /** Detaches the event listeners. The store keeps its state and can be started again. */
  dispose(): void;
}

const CLOSED: RechargeDialog = Object.freeze({
  open: false,
  satisfied: false,
  service: null,
  required: null,
  balance: null,
  texts: null,
});
const NO_REFUSALS: readonly RefusedCharge[] = Object.freeze([]);

/**
 * How long a refusal seen one way (the rejection of a call, or the plugin's event) waits for the
 * other report of the same refusal, which must not open the dialog a second time.
 */
const SAME_REFUSAL_MS = 2000;

function sameFields<T extends object>(a: T, b: T): boolean {
  const ka = Object.keys(a) as (keyof T)[];
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && Object.is(a[k], b[k]));
}

function toStoreError(error: unknown): PointStoreError {
  if (typeof error === "string" || error instanceof Error || isPointsError(error)) return error;
  const message = (error as { message?: unknown } | null)?.message;
  return new Error(typeof message === "string" ? message : String(error), { cause: error });
}

function refusalKey(info: Partial<RefusalFigures>): string {
  return JSON.stringify([info.service ?? null, info.required ?? null, info.balance ?? null]);
}

function refusedKey(refused: RefusedCharge): string {
  return `${refused.idempotencyKey}\n${refused.refusedAt}`;
}

/** The refusals of `incoming` once each, oldest first: `current` itself when it lists the same. */
function refusalList(current: readonly RefusedCharge[], incoming: readonly RefusedCharge[]): readonly RefusedCharge[] {
  const seen = new Set<string>();
  const list: RefusedCharge[] = [];
  for (const refused of incoming) {
    const key = refusedKey(refused);
    if (seen.has(key)) continue;
    seen.add(key);
    list.push(refused);
  }
  list.sort((a, b) => a.refusedAt - b.refusedAt);
  if (list.length === current.length && list.every((refused, i) => refusedKey(refused) === refusedKey(current[i]!))) {
    return current;
  }
  return list.length === 0 ? NO_REFUSALS : Object.freeze(list);
}

/** The figure of `otherAccounts`, 0 from a plugin that does not send it. */
function otherAccounts(status: PendingStatus): number {
  const figure: unknown = status.otherAccounts;
  return typeof figure === "number" ? figure : 0;
}

/** `current` with the refusals of `incoming` it lacks, oldest first (the same array when none). */
function withRefusals(current: readonly RefusedCharge[], incoming: readonly RefusedCharge[]): readonly RefusedCharge[] {
  const seen = new Set(current.map(refusedKey));
  const added: RefusedCharge[] = [];
  for (const refused of incoming) {
    const key = refusedKey(refused);
    if (seen.has(key)) continue;
    seen.add(key);
    added.push(refused);
  }
  if (added.length === 0) return current;
  return Object.freeze([...current, ...added].sort((a, b) => a.refusedAt - b.refusedAt));
}

/** Calls every listener with `value`; one that throws does not stop the others (its error is rethrown apart). */
function notify<T>(listeners: ReadonlySet<(value: T) => void>, value: T): void {
  for (const listener of [...listeners]) {
    try {
      listener(value);
    } catch (error) {
      setTimeout(() => {
        throw error;
      });
    }
  }
}

/** Whether a figure of `seq` is newer than one of `than` (when either is unknown: yes, it came later). */
function isNewer(seq: number | null | undefined, than: number | null): boolean {
  return seq == null || than === null || seq > than;
}

/** A low-balance crossing and the `seq` shown when it was heard (only a newer figure ends it). */
interface Crossing {
  readonly low: LowBalance;
  readonly seq: number | null;
}

/** The label of the current webview, or `null` outside Tauri. */
function currentWebviewLabel(): string | null {
  try {
    return getCurrentWebview().label;
  } catch {
    return null;
  }
}

/** A refusal reported one way, waiting for the other report of it. */
interface SeenRefusal {
  readonly key: string;
  readonly from: "call" | "event";
  readonly at: number;
}

type Patch = { -readonly [K in keyof PointState]?: PointState[K] };

/**
 * Makes a store of the user's points. It does nothing until an action or {@link PointStore.start}
 * is called.
 *
 * Once started it follows the plugin's session: at every sign-in, sign-out or change of account it
 * empties itself (balance, pending and refused charges, offline state, error, dialog) and reads the
 * balance (when signed in), the pending charges and the offline state again; an answer to a call made before the change, or an
 * event of an older session, is not applied.
 *
 * Balances are whole summaries ordered by the ledger's `seq`: a summary (a fetch's answer, or the
 * plugin's `points://balance-changed`) whose `seq` is lower than the `seq` of the one shown is
 * older and is dropped; when either has no `seq` (a backend that does not send it), the one that
 * arrives last is shown. A figure of a balance alone (a charge's receipt, a price check) is never
 * merged into the totals shown: the plugin emits the whole summary of a charge, and a price check
 * newer than the summary shown has the store fetch the summary.
 *
 * A summary is also what ends a low-balance crossing (`lowBalance`) and what closes an open
 * recharge dialog whose refusal it pays for (`recharge.satisfied`, {@link PointStore.onRecharged}).
 */
export function createPointStore(options: PointStoreOptions = {}): PointStore {
  let state: PointState = Object.freeze({
    balance: options.initialBalance ? Object.freeze({ ...options.initialBalance }) : null,
    lowBalance: null,
    offline: null,
    loading: false,
    error: null,
    pendingCharges: 0,
    pendingOtherAccounts: 0,
    refusedCharges: NO_REFUSALS,
    session: null,
    signedIn: null,
    recharge: CLOSED,
  });
  const listeners = new Set<() => void>();
  let inflight: Promise<PointBalance> | null = null;

  /** Grows at every change of session: a call made in an older epoch does not touch the state. */
  let epoch = 0;
  /** The session the store last emptied itself for. */
  let emptiedFor: number | null = null;
  /** Refusals that opened the dialog, waiting for their other report. */
  let seenRefusals: SeenRefusal[] = [];
  /** Reads of the pending status started, and the number of the latest one shown. */
  let reads = 0;
  let shownRead = 0;
  /** Refusals heard by event, with the number of reads started then (a later read lists them). */
  let heard: { readonly refused: RefusedCharge; readonly reads: number }[] = [];
  let label: string | null | undefined = options.webviewLabel;
  /** The crossings below a threshold in force, lowest threshold first (`lowBalance` is the first). */
  let crossings: Crossing[] = [];
  /** The `seq` shown when the dialog opened: only a newer summary can pay for its refusal. */
  let dialogSeq: number | null = null;
  const rechargedListeners = new Set<(recharged: Recharged) => void>();
  const lowBalanceListeners = new Set<(low: LowBalance) => void>();
  const offlineListeners = new Set<(offline: OfflineAllowance | null) => void>();
  /** Offline events heard: a read of the offline state sent before the latest one is older than it. */
  let offlineHeard = 0;

  let started: Promise<void> | null = null;
  let attachment = 0;
  let unlisteners: UnlistenFn[] = [];
  /** The table version and language the dialog's texts were made with. */
  let textsOf = { version: messagesVersion(), locale: getLocale() };
  /** Follows the language while someone subscribes. */
  let stopFollowingMessages: (() => void) | null = null;

  function set(patch: Patch): void {
    let next: PointState | null = null;
    for (const key of Object.keys(patch) as (keyof PointState)[]) {
      if (!Object.is(patch[key], state[key])) {
        next = { ...state, ...patch };
        break;
      }
    }
    if (next === null) return;
    state = Object.freeze(next);
    for (const listener of [...listeners]) listener();
  }

  function ownLabel(): string | null {
    if (label === undefined) {
      const found = currentWebviewLabel();
      if (found === null) return null; // not known yet: asked again next time
      label = found;
    }
    return label;
  }

  /** The whole balance, keeping the current object when nothing in it changed. */
  function replaceBalance(balance: PointBalance): PointBalance {
    const current = state.balance;
    return current !== null && sameFields(current, balance) ? current : Object.freeze({ ...balance });
  }

  /**
   * Shows a whole summary of the ledger (with `also` in the same change), unless it is older than
   * the one shown (a lower `seq`): ends the low-balance crossings it is at or above, and closes
   * the dialog whose refusal it pays for, calling the `onRecharged` listeners after the change.
   */
  function showSummary(summary: PointBalance, also: Patch = {}): void {
    const current = state.balance;
    const shown = current?.seq ?? null;
    if (current !== null && summary.seq != null && shown !== null && summary.seq < shown) {
      set(also);
      return;
    }
    const patch: Patch = { ...also, balance: replaceBalance(summary) };
    const left = crossings.filter((c) => !(summary.balance >= c.low.threshold && isNewer(summary.seq, c.seq)));
    if (left.length !== crossings.length) {
      crossings = left;
      patch.lowBalance = left[0]?.low ?? null;
    }
    const dialog = state.recharge;
    let recharged: Recharged | null = null;
    if (dialog.open && dialog.required !== null && summary.balance >= dialog.required && isNewer(summary.seq, dialogSeq)) {
      recharged = Object.freeze({ service: dialog.service, required: dialog.required, summary: patch.balance! });
      patch.recharge = Object.freeze({
        open: false,
        satisfied: true,
        service: dialog.service,
        required: dialog.required,
        balance: summary.balance,
        texts: null,
      });
    }
    set(patch);
    if (recharged !== null) notify(rechargedListeners, recharged);
  }

  /** A balance without its totals (a price check): fetches the summary when it is newer than the one shown. */
  function sawFigure(balance: number, seq: number | null | undefined): void {
    const current = state.balance;
    if (current === null || current.balance === balance) return;
    if (seq != null && current.seq != null && seq <= current.seq) return;
    store.fetchBalance().catch(() => undefined);
  }

  /**
   * The dialog open with `info`'s figures and texts of the current language; a new refusal
   * (`refusal`, not a change of language) also notes the `seq` shown, which it must be paid after.
   */
  function dialog(info: Partial<RefusalFigures> = {}, refusal = true): RechargeDialog {
    const figures = { service: info.service ?? null, required: info.required ?? null, balance: info.balance ?? null };
    textsOf = { version: messagesVersion(), locale: getLocale() };
    if (refusal) dialogSeq = state.balance?.seq ?? null;
    const current = state.recharge;
    const texts = localizedRecharge(figures);
    const same = current.texts !== null && sameFields(current.texts, texts);
    const next: RechargeDialog = { open: true, satisfied: false, ...figures, texts: same ? current.texts : texts };
    return sameFields(current, next) ? current : Object.freeze(next);
  }

  /** The dialog with texts of the current language and table, when they changed since it was made. */
  function relocalized(): RechargeDialog {
    const current = state.recharge;
    if (!current.open || (textsOf.version === messagesVersion() && textsOf.locale === getLocale())) return current;
    return dialog(current, false);
  }

  /**
   * Whether a refusal reported `from` a call or an event should open the dialog: not when the
   * other report of the same refusal already did.
   */
  function firstReport(info: Partial<RefusalFigures>, from: SeenRefusal["from"]): boolean {
    const now = Date.now();
    const key = refusalKey(info);
    seenRefusals = seenRefusals.filter((seen) => now - seen.at < SAME_REFUSAL_MS);
    const other = seenRefusals.findIndex((seen) => seen.key === key && seen.from !== from);
    if (other !== -1) {
      seenRefusals.splice(other, 1);
      return false;
    }
    seenRefusals.push({ key, from, at: now });
    return true;
  }

  /** Keeps a failure in `error` (with `also` in the same change); opens the dialog for a 402. */
  function fail(error: unknown, also: Patch = {}): void {
    const patch: Patch = { ...also, error: toStoreError(error) };
    if (isInsufficientPoints(error) && firstReport(error, "call")) patch.recharge = dialog(error);
    set(patch);
  }

  /**
   * Empties the store for session `session` (a sign-in, a sign-out or another account): calls
   * made before no longer touch the state. Then reads the balance (when signed in) and, unless
   * `pendingKnown`, the pending charges.
   */
  function empty(session: number, signedIn: boolean | null, pendingKnown: boolean): void {
    epoch++;
    emptiedFor = session;
    inflight = null;
    seenRefusals = [];
    heard = [];
    crossings = [];
    shownRead = 0; // the reads are ordered within a session
    set({
      balance: null,
      lowBalance: null,
      offline: null,
      loading: false,
      error: null,
      pendingCharges: 0,
      pendingOtherAccounts: 0,
      refusedCharges: NO_REFUSALS,
      session,
      signedIn,
      recharge: CLOSED,
    });
    if (signedIn === true) store.fetchBalance().catch(() => undefined);
    if (!pendingKnown) readPending(api.getPending, false).catch(() => undefined);
    if (signedIn !== false) {
      readLowBalance();
      readOffline();
    }
  }

  /** The allowance, keeping the current object when nothing in it changed. */
  function replaceOffline(offline: OfflineAllowance | null): OfflineAllowance | null {
    const current = state.offline;
    if (offline === null) return null;
    return current !== null && sameFields(current, offline) ? current : Object.freeze({ ...offline });
  }

  /**
   * Asks the plugin for the offline state of the session (a window opened after
   * `points://offline-changed` fired has heard no event) and shows it, unless an event came
   * meanwhile; calls no `onOffline` listener.
   */
  function readOffline(): void {
    const heard = offlineHeard;
    api
      .getOffline()
      .then((status) => {
        if (heard !== offlineHeard || !ofCurrentSession(status.session, null, false)) return;
        set({ offline: replaceOffline(status.offline) });
      })
      .catch(() => undefined);
  }

  /**
   * Asks the plugin which crossing is in force (a window opened after `points://low-balance`
   * fired, or an app started below a threshold, has heard no event) and shows it, without
   * calling the `onLowBalance` listeners: it is no new crossing.
   */
  function readLowBalance(): void {
    api
      .getLowBalance()
      .then((low) => {
        if (low === null || !ofCurrentSession(low.session, true, false)) return;
        if (crossings.some((c) => c.low.threshold === low.threshold)) return;
        if (state.balance !== null && state.balance.balance >= low.threshold) return;
        const crossing: Crossing = { low: Object.freeze({ ...low }), seq: state.balance?.seq ?? null };
        crossings = [...crossings, crossing].sort((a, b) => a.low.threshold - b.low.threshold);
        set({ lowBalance: crossings[0]!.low });
      })
      .catch(() => undefined);
  }

  /**
   * Takes the session number of an answer or an event: whether it is the session shown (a newer
   * one empties the store first; the first one heard is adopted).
   */
  function ofCurrentSession(session: number, signedIn: boolean | null, pendingKnown: boolean): boolean {
    const known = state.session;
    if (known === null) {
      set(signedIn === null ? { session } : { session, signedIn });
      return true;
    }
    if (session < known) return false;
    if (session > known) empty(session, signedIn, pendingKnown);
    return true;
  }

  function onSession(change: SessionChanged): void {
    const known = state.session;
    if (known !== null && change.session < known) return;
    if (emptiedFor === change.session) {
      // Already emptied for it, on an answer that carried it first: only learn who is signed in.
      set({ signedIn: change.signedIn });
      if (change.signedIn && state.balance === null && inflight === null) store.fetchBalance().catch(() => undefined);
      return;
    }
    // Also for the session adopted from an answer: a balance read before then may be the last one's.
    empty(change.session, change.signedIn, false);
  }

  function onBalance(change: BalanceChanged): void {
    if (!ofCurrentSession(change.session, true, false)) return;
    // A plugin of contract v1.1 sends `details` (a fetch's summary, else null) instead of
    // `summary`: a figure without its summary is fetched whole.
    const old = change as unknown as { summary?: unknown; details?: unknown };
    const summary = old.summary ?? old.details;
    if (typeof summary === "object" && summary !== null) showSummary(summary as PointBalance);
    else sawFigure(change.balance, change.seq);
  }

  function onLow(low: LowBalance): void {
    if (!ofCurrentSession(low.session, true, false)) return;
    const crossing: Crossing = { low: Object.freeze({ ...low }), seq: state.balance?.seq ?? null };
    crossings = [...crossings.filter((c) => c.low.threshold !== low.threshold), crossing].sort(
      (a, b) => a.low.threshold - b.low.threshold,
    );
    set({ lowBalance: crossings[0]!.low });
    notify(lowBalanceListeners, crossing.low);
  }

  function onOfflineEvent(status: OfflineStatus): void {
    if (state.session !== null && status.session < state.session) return;
    // Counted first: a read sent when this event empties the store for its session answers later.
    offlineHeard++;
    if (!ofCurrentSession(status.session, null, false)) return;
    const offline = replaceOffline(status.offline);
    set({ offline });
    notify(offlineListeners, offline);
  }

  function onInsufficient(info: InsufficientPoints): void {
    const mine = ownLabel();
    if (info.window === null || info.window !== mine) return;
    if (firstReport(info, "event")) set({ recharge: dialog(info) });
  }

  /**
   * Shows the answer of read number `read`: its refused charges are the whole record (a retried
   * or dismissed one leaves it), with those heard by event since the read was sent. The answer
   * of a read sent before the one shown only tells who is signed in.
   */
  function applyPending(status: PendingStatus, clearError: boolean, read: number): void {
    if (!ofCurrentSession(status.session, status.signedIn, true)) return;
    const patch: Patch = { signedIn: status.signedIn };
    if (read >= shownRead) {
      shownRead = read;
      heard = heard.filter((h) => h.reads >= read);
      patch.pendingCharges = status.count;
      patch.pendingOtherAccounts = otherAccounts(status);
      patch.refusedCharges = refusalList(state.refusedCharges, [...status.refused, ...heard.map((h) => h.refused)]);
    }
    if (clearError) patch.error = null;
    set(patch);
  }

  async function readPending(read: () => Promise<PendingStatus>, record: boolean): Promise<PendingStatus> {
    const mine = epoch;
    const number = ++reads;
    try {
      const status = await read();
      applyPending(status, record, number);
      return status;
    } catch (error) {
      if (record && mine === epoch) fail(error);
      throw error;
    }
  }

  const store: PointStore = {
    subscribe(listener) {
      listeners.add(listener);
      stopFollowingMessages ??= onMessagesChanged(() => set({ recharge: relocalized() }));
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0 && stopFollowingMessages) {
          stopFollowingMessages();
          stopFollowingMessages = null;
        }
      };
    },
    getSnapshot() {
      // Without subscribers nobody heard a change of language: the texts are brought up to date here.
      const recharge = relocalized();
      if (recharge !== state.recharge) state = Object.freeze({ ...state, recharge });
      return state;
    },

    fetchBalance() {
      if (inflight) return inflight;
      const mine = epoch;
      set({ loading: true });
      const request = api.getBalance().then(
        (balance) => {
          if (mine === epoch) {
            inflight = null;
            showSummary(balance, { loading: false, error: null, signedIn: true });
          }
          return balance;
        },
        (error: unknown) => {
          if (mine === epoch) {
            inflight = null;
            fail(error, { loading: false });
          }
          throw error;
        },
      );
      inflight = request;
      return request;
    },

    async checkCost(service, duration) {
      const mine = epoch;
      try {
        const cost = await api.checkCost(service, duration);
        if (mine === epoch) {
          set({ error: null });
          sawFigure(cost.balance, cost.seq);
        }
        return cost;
      } catch (error) {
        if (mine === epoch) fail(error);
        throw error;
      }
    },

    async charge(service, chargeOptions = {}) {
      const mine = epoch;
      // One key per user action, made before the call: a retry with it is never a second charge.
      const idempotencyKey = chargeOptions.idempotencyKey ?? api.newIdempotencyKey();
      try {
        const outcome = await api.charge(service, { ...chargeOptions, idempotencyKey });
        if (mine === epoch) {
          if (outcome.status === "acknowledged") {
            // The receipt's balance comes without totals: the plugin's event brings the summary.
            set({ error: null });
          } else {
            // Journaled (pending) or refused for good: not a failure of the call.
            set({ error: null });
            await readPending(api.getPending, false).catch(() => undefined);
          }
        }
        return outcome;
      } catch (error) {
        if (mine === epoch) fail(error);
        throw error;
      }
    },

    fetchPending: () => readPending(api.getPending, true),
    syncPending: () => readPending(api.syncPending, true),
    retryRefused: (idempotencyKey) => readPending(() => api.retryRefused(idempotencyKey), true),
    dismissRefused: (idempotencyKey) => readPending(() => api.dismissRefused(idempotencyKey), true),

    openRecharge(info) {
      set({ recharge: dialog(info) });
    },
    closeRecharge() {
      set({ recharge: CLOSED });
    },
    clearError() {
      set({ error: null });
    },

    onRecharged(listener) {
      const own = (recharged: Recharged) => listener(recharged);
      rechargedListeners.add(own);
      return () => void rechargedListeners.delete(own);
    },
    onLowBalance(listener) {
      const own = (low: LowBalance) => listener(low);
      lowBalanceListeners.add(own);
      return () => void lowBalanceListeners.delete(own);
    },
    onOffline(listener) {
      const own = (offline: OfflineAllowance | null) => listener(offline);
      offlineListeners.add(own);
      return () => void offlineListeners.delete(own);
    },

    handleError(error) {
      fail(error);
      return isInsufficientPoints(error);
    },

    async handleBackendResponse(response) {
      const mine = epoch;
      const info = await insufficientPointsFromResponse(response);
      if (info === null) return false;
      if (mine === epoch) set({ recharge: dialog(info) });
      return true;
    },

    handleBackendBody(body, status) {
      if (status !== PAYMENT_REQUIRED) return false;
      set({ recharge: dialog(insufficientPointsFromBody(body)) });
      return true;
    },

    start() {
      if (started) return started;
      const mine = ++attachment;
      const attaching = [
        onBalanceChanged(onBalance),
        onLowBalanceEvent(onLow),
        onInsufficientPoints(onInsufficient),
        onPendingChanged((pending: PendingCharges) => {
          if (ofCurrentSession(pending.session, null, true)) set({ pendingCharges: pending.count });
        }),
        onSessionChanged(onSession),
        onChargeRefused((refused) => {
          heard.push({ refused, reads });
          set({ refusedCharges: withRefusals(state.refusedCharges, [refused]) });
        }),
        onOfflineChanged(onOfflineEvent),
      ];
      const attempt: Promise<void> = Promise.allSettled(attaching).then(async (results) => {
        const attached = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
        const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
        if (mine !== attachment || failure) {
          for (const unlisten of attached) unlisten();
          if (mine === attachment) started = null;
          if (failure) throw failure.reason;
          return;
        }
        unlisteners = attached;
        readLowBalance();
        readOffline();
        // A restart with charges still pending shows them at once.
        await readPending(api.getPending, false).catch(() => undefined);
      });
      started = attempt;
      return attempt;
    },

    dispose() {
      attachment++;
      started = null;
      const detaching = unlisteners;
      unlisteners = [];
      for (const unlisten of detaching) unlisten();
    },
  };

  if (options.start) void store.start().catch(() => undefined);
  return store;
}

const DEFAULT_STORE = Symbol.for("tauri-plugin-points-api.defaultStore");

/**
 * The store shared by the whole app (made on first use, one per window). `usePoints()` of the
 * `/react` entry uses it.
 */
export function getPointStore(): PointStore {
  const holder = globalThis as { [DEFAULT_STORE]?: PointStore };
  return (holder[DEFAULT_STORE] ??= createPointStore());
}
