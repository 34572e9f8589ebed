import { listen } from "@tauri-apps/api/event";
import type { BalanceChanged, InsufficientPoints, PendingCharges } from "./bindings";

/** Stops a listener (the same as `UnlistenFn` of `@tauri-apps/api/event`). */
export type UnlistenFn = () => void;

/** The events the plugin emits to every window. */
export const EVENTS = {
  /** {@link BalanceChanged}: `details` after a fetch, `null` after a charge. */
  balanceChanged: "points://balance-changed",
  /** {@link InsufficientPoints}: whenever the ledger answers 402. */
  insufficient: "points://insufficient",
  /** {@link PendingCharges}: charges made but not yet acknowledged by the ledger. */
  pendingChanged: "points://pending-changed",
} as const;

/** Calls `handler` on every balance change; resolves to the function that stops listening. */
export function onBalanceChanged(handler: (payload: BalanceChanged) => void): Promise<UnlistenFn> {
  return listen<BalanceChanged>(EVENTS.balanceChanged, (event) => handler(event.payload));
}

/** Calls `handler` on every 402 the plugin meets; resolves to the function that stops listening. */
export function onInsufficientPoints(
  handler: (payload: InsufficientPoints) => void,
): Promise<UnlistenFn> {
  return listen<InsufficientPoints>(EVENTS.insufficient, (event) => handler(event.payload));
}

/** Calls `handler` when the number of unacknowledged charges changes. */
export function onPendingChanged(handler: (payload: PendingCharges) => void): Promise<UnlistenFn> {
  return listen<PendingCharges>(EVENTS.pendingChanged, (event) => handler(event.payload));
}
