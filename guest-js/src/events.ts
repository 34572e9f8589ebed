import { listen } from "@tauri-apps/api/event";
import type {
  BalanceChanged,
  InsufficientPoints,
  LowBalance,
  OfflineStatus,
  PendingCharges,
  RefusedCharge,
  SessionChanged,
} from "./bindings";

/** Stops a listener (the same as `UnlistenFn` of `@tauri-apps/api/event`). */
export type UnlistenFn = () => void;

/** The events the plugin emits to every window. */
export const EVENTS = {
  /**
   * {@link BalanceChanged}: the signed-in account's whole summary (balance and totals) after a
   * fetch, a charge, a re-sent charge, a change on the ledger (its stream or a poll), with its
   * `seq` and `session`, in `seq` order.
   */
  balanceChanged: "points://balance-changed",
  /**
   * {@link LowBalance}: the balance went below a configured threshold (once per crossing; again
   * only after it was back at or above it).
   */
  lowBalance: "points://low-balance",
  /** {@link InsufficientPoints}: a refusal for lack of points, naming the window refused. */
  insufficient: "points://insufficient",
  /** {@link PendingCharges}: the signed-in account's unacknowledged charges; also at every change of session. */
  pendingChanged: "points://pending-changed",
  /** {@link SessionChanged}: a sign-in, a sign-out or another account. */
  sessionChanged: "points://session-changed",
  /** {@link RefusedCharge}: the ledger refused a finished job's charge for good. */
  chargeRefused: "points://charge-refused",
  /**
   * {@link OfflineStatus}: the offline state of the session changed (the ledger found unreachable
   * or reachable again, an offline job spent some of the allowance, the allowance expired).
   */
  offlineChanged: "points://offline-changed",
} as const;

/** Calls `handler` on every balance change; resolves to the function that stops listening. */
export function onBalanceChanged(handler: (payload: BalanceChanged) => void): Promise<UnlistenFn> {
  return listen<BalanceChanged>(EVENTS.balanceChanged, (event) => handler(event.payload));
}

/** Calls `handler` at every crossing below a low-balance threshold; resolves to the function that stops listening. */
export function onLowBalance(handler: (payload: LowBalance) => void): Promise<UnlistenFn> {
  return listen<LowBalance>(EVENTS.lowBalance, (event) => handler(event.payload));
}

/**
 * Calls `handler` on every refusal for lack of points, in any window (`payload.window` says which
 * one was refused); resolves to the function that stops listening.
 */
export function onInsufficientPoints(
  handler: (payload: InsufficientPoints) => void,
): Promise<UnlistenFn> {
  return listen<InsufficientPoints>(EVENTS.insufficient, (event) => handler(event.payload));
}

/** Calls `handler` when the number of unacknowledged charges changes; resolves to the function that stops listening. */
export function onPendingChanged(handler: (payload: PendingCharges) => void): Promise<UnlistenFn> {
  return listen<PendingCharges>(EVENTS.pendingChanged, (event) => handler(event.payload));
}

/** Calls `handler` at every sign-in, sign-out and change of account; resolves to the function that stops listening. */
export function onSessionChanged(handler: (payload: SessionChanged) => void): Promise<UnlistenFn> {
  return listen<SessionChanged>(EVENTS.sessionChanged, (event) => handler(event.payload));
}

/** Calls `handler` when the ledger refuses a charge for good; resolves to the function that stops listening. */
export function onChargeRefused(handler: (payload: RefusedCharge) => void): Promise<UnlistenFn> {
  return listen<RefusedCharge>(EVENTS.chargeRefused, (event) => handler(event.payload));
}

/** Calls `handler` at every change of the offline state; resolves to the function that stops listening. */
export function onOfflineChanged(handler: (payload: OfflineStatus) => void): Promise<UnlistenFn> {
  return listen<OfflineStatus>(EVENTS.offlineChanged, (event) => handler(event.payload));
}
