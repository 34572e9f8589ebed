import * as api from "./commands";
import type { ChargeOptions, ServiceName } from "./commands";
import type {
  BalanceChanged,
  ChargeReceipt,
  CostCheck,
  DesktopService,
  InsufficientPoints,
  PendingCharges,
  PointBalance,
  PointsError,
} from "./bindings";
import { isInsufficientPoints, isPointsError } from "./errors";
import { onBalanceChanged, onInsufficientPoints, onPendingChanged, type UnlistenFn } from "./events";
import { PAYMENT_REQUIRED, insufficientPointsFromBody, insufficientPointsFromResponse } from "./backend";

/** The recharge dialog: whether it is open, and the figures of the refusal that opened it. */
export interface RechargeDialog {
  readonly open: boolean;
  readonly service: string | null;
  readonly required: number | null;
  readonly balance: number | null;
}

/** What the store keeps of a failure: a PointsError, a Tauri refusal (a string), or an Error. */
export type PointStoreError = PointsError | string | Error;

/** A snapshot of the store. Never mutated: every change makes a new one. */
export interface PointState {
  /** The balance and totals, or `null` before the first fetch. */
  readonly balance: PointBalance | null;
  /** Whether a balance fetch is in flight. */
  readonly loading: boolean;
  /** The last failure of a store action (cleared by the next success), or `null`. */
  readonly error: PointStoreError | null;
  /** Charges made but not yet acknowledged by the ledger. */
  readonly pendingCharges: number;
  readonly recharge: RechargeDialog;
}

/** Options of {@link createPointStore}. */
export interface PointStoreOptions {
  /** The balance to show before the first fetch (e.g. one rendered by the server). */
  initialBalance?: PointBalance | null | undefined;
  /** Attach the plugin's event listeners at once (as {@link PointStore.start} does). Default: false. */
  start?: boolean | undefined;
}

/** The points of the signed-in user, for any UI. Its methods need no `this`: pass them around freely. */
export interface PointStore {
  /** Calls `listener` after every change; returns the function that stops it. For `useSyncExternalStore`. */
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
   * Charges one use of a desktop service; the receipt's balance refreshes `balance.balance`.
   * With too few points it rejects with an `insufficientPoints` error and opens the recharge dialog.
   */
  charge(service: DesktopService, options?: ChargeOptions): Promise<ChargeReceipt>;

  /** Opens the recharge dialog, with the figures of the refusal when known. */
  openRecharge(info?: Partial<InsufficientPoints>): void;
  /** Closes the recharge dialog (its figures are cleared). */
  closeRecharge(): void;
  /** Clears `error`. */
  clearError(): void;

  /**
   * Takes a failure met outside the store (e.g. from a direct command call): keeps it in `error`
   * and, when it is an `insufficientPoints` error, opens the recharge dialog. Returns whether it
   * opened the dialog.
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
   * Attaches the listeners of the plugin's events (balance changes, 402s, pending charges). Calling
   * it again while started does nothing; resolves once they are attached.
   */
  start(): Promise<void>;
  /** Detaches the event listeners. The store keeps its state and can be started again. */
  dispose(): void;
}

const CLOSED: RechargeDialog = Object.freeze({ open: false, service: null, required: null, balance: null });

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

/** Makes a store of the user's points. It does nothing until an action or {@link PointStore.start} is called. */
export function createPointStore(options: PointStoreOptions = {}): PointStore {
  let state: PointState = Object.freeze({
    balance: options.initialBalance ? Object.freeze({ ...options.initialBalance }) : null,
    loading: false,
    error: null,
    pendingCharges: 0,
    recharge: CLOSED,
  });
  const listeners = new Set<() => void>();
  let inflight: Promise<PointBalance> | null = null;

  let started: Promise<void> | null = null;
  let generation = 0;
  let unlisteners: UnlistenFn[] = [];

  function set(patch: Partial<PointState>): void {
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

  /** The whole balance, keeping the current object when nothing in it changed. */
  function replaceBalance(balance: PointBalance): PointBalance {
    const current = state.balance;
    return current !== null && sameFields(current, balance) ? current : Object.freeze({ ...balance });
  }

  /** The current balance with only its `balance` figure changed (totals are unknown). */
  function patchBalanceFigure(figure: number): PointBalance | null {
    const current = state.balance;
    if (current === null || current.balance === figure) return current;
    return Object.freeze({ ...current, balance: figure });
  }

  function dialog(info: Partial<InsufficientPoints> = {}): RechargeDialog {
    const next: RechargeDialog = {
      open: true,
      service: info.service ?? null,
      required: info.required ?? null,
      balance: info.balance ?? null,
    };
    return sameFields(state.recharge, next) ? state.recharge : Object.freeze(next);
  }

  /** Keeps a failure in `error` (with `also` in the same change); opens the dialog for a 402. */
  function fail(error: unknown, also: Partial<PointState> = {}): void {
    const patch: { -readonly [K in keyof PointState]?: PointState[K] } = { ...also, error: toStoreError(error) };
    if (isInsufficientPoints(error)) patch.recharge = dialog(error);
    set(patch);
  }

  const store: PointStore = {
    subscribe(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    getSnapshot: () => state,

    fetchBalance() {
      if (inflight) return inflight;
      set({ loading: true });
      const request = api.getBalance().then(
        (balance) => {
          inflight = null;
          set({ balance: replaceBalance(balance), loading: false, error: null });
          return balance;
        },
        (error: unknown) => {
          inflight = null;
          fail(error, { loading: false });
          throw error;
        },
      );
      inflight = request;
      return request;
    },

    async checkCost(service, duration) {
      try {
        const cost = await api.checkCost(service, duration);
        set({ balance: patchBalanceFigure(cost.balance), error: null });
        return cost;
      } catch (error) {
        fail(error);
        throw error;
      }
    },

    async charge(service, chargeOptions) {
      try {
        const receipt = await api.charge(service, chargeOptions);
        set({ balance: patchBalanceFigure(receipt.balance), error: null });
        return receipt;
      } catch (error) {
        fail(error);
        throw error;
      }
    },

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
      const info = await insufficientPointsFromResponse(response);
      if (info === null) return false;
      set({ recharge: dialog(info) });
      return true;
    },

    handleBackendBody(body, status) {
      if (status !== PAYMENT_REQUIRED) return false;
      set({ recharge: dialog(insufficientPointsFromBody(body)) });
      return true;
    },

    start() {
      if (started) return started;
      const mine = ++generation;
      const attaching = [
        onBalanceChanged(onBalance),
        onInsufficientPoints((info) => set({ recharge: dialog(info) })),
        onPendingChanged((pending: PendingCharges) => set({ pendingCharges: pending.count })),
      ];
      const attempt: Promise<void> = Promise.allSettled(attaching).then((results) => {
        const attached = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
        const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
        if (mine !== generation || failure) {
          for (const unlisten of attached) unlisten();
          if (mine === generation) started = null;
          if (failure) throw failure.reason;
          return;
        }
        unlisteners = attached;
      });
      started = attempt;
      return attempt;
    },

    dispose() {
      generation++;
      started = null;
      const detaching = unlisteners;
      unlisteners = [];
      for (const unlisten of detaching) unlisten();
    },
  };

  function onBalance(change: BalanceChanged): void {
    if (change.details !== null) set({ balance: replaceBalance(change.details) });
    else set({ balance: patchBalanceFigure(change.balance) });
  }

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
