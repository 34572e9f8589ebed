import { useEffect, useRef, useSyncExternalStore } from "react";
import type { LowBalance, OfflineAllowance } from "./bindings";
import { getLocale, onMessagesChanged, type Locale } from "./messages";
import { getPointStore, type PointState, type PointStore, type Recharged } from "./store";

/** The state of `store`, re-rendering on every change. No provider needed. */
export function usePointStore(store: PointStore): PointState;
/**
 * A part of the state of `store`, re-rendering when it changes. `selector` must return a value
 * already in the state (or a primitive), not a new object on each call.
 */
export function usePointStore<T>(store: PointStore, selector: (state: PointState) => T): T;
export function usePointStore<T>(
  store: PointStore,
  selector?: (state: PointState) => T,
): T | PointState {
  const read = selector ? () => selector(store.getSnapshot()) : store.getSnapshot;
  return useSyncExternalStore<T | PointState>(store.subscribe, read, read);
}

/** Options of {@link usePoints}. */
export interface UsePointsOptions {
  /** The store to use. Default: the app's shared store (`getPointStore()`). */
  store?: PointStore | undefined;
  /**
   * Fetch the balance on mount, and again after every change of session, when the store has none
   * and is not known to be signed out. Default: true.
   */
  fetchOnMount?: boolean | undefined;
}

/** The store's state and actions, as {@link usePoints} returns them. */
export type UsePoints = PointState &
  Pick<
    PointStore,
    | "fetchBalance"
    | "checkCost"
    | "charge"
    | "fetchPending"
    | "syncPending"
    | "retryRefused"
    | "dismissRefused"
    | "openRecharge"
    | "closeRecharge"
    | "clearError"
    | "handleError"
    | "handleBackendResponse"
    | "handleBackendBody"
    | "onRecharged"
    | "onLowBalance"
    | "onOffline"
  >;

/**
 * The user's points and the actions on them, from the shared store (or `options.store`). On mount
 * it attaches the store's event listeners (once per store; they stay attached after unmount, as
 * the store outlives components), and on mount and after every sign-in, sign-out or change of
 * account it fetches the balance when none is known and no fetch is under way (not while signed
 * out). Failures of that fetch are in `error`.
 */
export function usePoints(options: UsePointsOptions = {}): UsePoints {
  const store = options.store ?? getPointStore();
  const fetchOnMount = options.fetchOnMount ?? true;
  const state = usePointStore(store);

  useEffect(() => {
    store.start().catch(() => undefined);
  }, [store]);

  // Runs on mount and at every change of session (the store empties itself then).
  useEffect(() => {
    const now = store.getSnapshot();
    if (fetchOnMount && now.balance === null && !now.loading && now.signedIn !== false) {
      store.fetchBalance().catch(() => undefined);
    }
  }, [store, fetchOnMount, state.session]);

  return {
    ...state,
    fetchBalance: store.fetchBalance,
    checkCost: store.checkCost,
    charge: store.charge,
    fetchPending: store.fetchPending,
    syncPending: store.syncPending,
    retryRefused: store.retryRefused,
    dismissRefused: store.dismissRefused,
    openRecharge: store.openRecharge,
    closeRecharge: store.closeRecharge,
    clearError: store.clearError,
    handleError: store.handleError,
    handleBackendResponse: store.handleBackendResponse,
    handleBackendBody: store.handleBackendBody,
    onRecharged: store.onRecharged,
    onLowBalance: store.onLowBalance,
    onOffline: store.onOffline,
  };
}

/** Calls the latest `handler` through `subscribe` while the component is mounted. */
function useListener<T>(subscribe: (listener: (value: T) => void) => () => void, handler: (value: T) => void): void {
  const latest = useRef(handler);
  useEffect(() => {
    latest.current = handler;
  });
  useEffect(() => subscribe((value) => latest.current(value)), [subscribe]);
}

/**
 * Calls `handler` (the latest one rendered) when the store closes the recharge dialog because a
 * balance covered its refusal (`recharge.satisfied`), while the component is mounted.
 */
export function useRecharged(handler: (recharged: Recharged) => void, store: PointStore = getPointStore()): void {
  useListener(store.onRecharged, handler);
}

/**
 * Calls `handler` (the latest one rendered) at every crossing below a low-balance threshold, while
 * the component is mounted. The crossing in force is also `lowBalance` of the store's state.
 */
export function useLowBalance(handler: (low: LowBalance) => void, store: PointStore = getPointStore()): void {
  useListener(store.onLowBalance, handler);
}

/**
 * The store's `offline` (`null` while the ledger is reachable), re-rendering when it changes. On
 * mount it attaches the store's event listeners, as {@link usePoints} does (once per store).
 */
export function useOffline(store: PointStore = getPointStore()): OfflineAllowance | null {
  useEffect(() => {
    store.start().catch(() => undefined);
  }, [store]);
  return usePointStore(store, selectOffline);
}

const selectOffline = (state: PointState): OfflineAllowance | null => state.offline;

/**
 * The language of the plugin's texts (`getLocale()`), re-rendering when `setLocale` (or, while
 * the host chose none, the browser's language) changes it. For the host's own texts too.
 */
export function useLocale(): Locale {
  return useSyncExternalStore(onMessagesChanged, getLocale, getLocale);
}

export { getPointStore, createPointStore } from "./store";
export { getLocale, getMessages, localizeError, localizedOffline, localizedRecharge, setLocale, type Locale } from "./messages";
export type { PointState, PointStore, RechargeDialog } from "./store";
