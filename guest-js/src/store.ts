import { getCurrentWebview } from "@tauri-apps/api/webview";
import * as api from "./commands";
import type { ChargeOptions, ServiceName } from "./commands";
import type {
  BalanceChanged,
  ChargeOutcome,
  CostCheck,
  DesktopService,
  InsufficientPoints,
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
 */
export interface RechargeDialog {
  readonly open: boolean;
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
   * change of session. After a charge or a price check only `balance.balance` (and `seq`) change.
   */
  readonly balance: PointBalance | null;
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
   * session), then reads the pending charges. Calling it again while started does nothing;
   * resolves once the listeners are attached and that read is done (its failure is ignored).
   */
  start(): Promise<void>;
  /** Detaches the event listeners. The store keeps its state and can be started again. */
  dispose(): void;
}

const CLOSED: RechargeDialog = Object.freeze({ open: false, service: null, required: null, balance: null, texts: null });
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
 * empties itself (balance, pending and refused charges, error, dialog) and reads the balance (when
 * signed in) and the pending charges again; an answer to a call made before the change, or an
 * event of an older session, is not applied.
 *
 * Balances are ordered by the ledger's `seq`: a figure (a fetch, a charge, a price check, an
 * event) whose `seq` is lower than the `seq` of the balance shown is older and is dropped. When
 * either has no `seq` (a backend that does not send it), the figure that arrives last is shown.
 */
export function createPointStore(options: PointStoreOptions = {}): PointStore {
  let state: PointState = Object.freeze({
    balance: options.initialBalance ? Object.freeze({ ...options.initialBalance }) : null,
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
   * The patch showing a figure of the ledger: the whole summary when `details` is given, else
   * the current summary with its balance (and `seq`) replaced. Empty when the figure is older
   * than the one shown (a lower `seq`).
   */
  function showFigure(figure: number, seq: number | null | undefined, details: PointBalance | null): Patch {
    const current = state.balance;
    const next = seq ?? null;
    const shown = current?.seq ?? null;
    if (current !== null && next !== null && shown !== null && next < shown) return {};
    if (details !== null) return { balance: replaceBalance(details) };
    if (current === null || (current.balance === figure && shown === next)) return {};
    const updated: PointBalance = {
      balance: figure,
      totalRecharged: current.totalRecharged,
      totalConsumed: current.totalConsumed,
      totalExpired: current.totalExpired,
    };
    if (next !== null) updated.seq = next;
    return { balance: Object.freeze(updated) };
  }

  function dialog(info: Partial<RefusalFigures> = {}): RechargeDialog {
    const figures = { service: info.service ?? null, required: info.required ?? null, balance: info.balance ?? null };
    textsOf = { version: messagesVersion(), locale: getLocale() };
    const current = state.recharge;
    const texts = localizedRecharge(figures);
    const same = current.texts !== null && sameFields(current.texts, texts);
    const next: RechargeDialog = { open: true, ...figures, texts: same ? current.texts : texts };
    return sameFields(current, next) ? current : Object.freeze(next);
  }

  /** The dialog with texts of the current language and table, when they changed since it was made. */
  function relocalized(): RechargeDialog {
    const current = state.recharge;
    if (!current.open || (textsOf.version === messagesVersion() && textsOf.locale === getLocale())) return current;
    return dialog(current);
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
    shownRead = 0; // the reads are ordered within a session
    set({
      balance: null,
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
    set(showFigure(change.balance, change.seq, change.details));
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
            set({ ...showFigure(balance.balance, balance.seq, balance), loading: false, error: null, signedIn: true });
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
        if (mine === epoch) set({ ...showFigure(cost.balance, cost.seq, null), error: null });
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
            const receipt = outcome.receipt;
            // A replay carries the balance of the first charge: the plugin sends today's by event.
            set({ ...(receipt.replayed ? {} : showFigure(receipt.balance, receipt.seq, null)), error: null });
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
        onInsufficientPoints(onInsufficient),
        onPendingChanged((pending: PendingCharges) => {
          if (ofCurrentSession(pending.session, null, true)) set({ pendingCharges: pending.count });
        }),
        onSessionChanged(onSession),
        onChargeRefused((refused) => {
          heard.push({ refused, reads });
          set({ refusedCharges: withRefusals(state.refusedCharges, [refused]) });
        }),
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
