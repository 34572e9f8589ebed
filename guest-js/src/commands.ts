import { invoke } from "@tauri-apps/api/core";
import type {
  Batch,
  ChargeOutcome,
  CostCheck,
  DesktopService,
  KnownService,
  PendingStatus,
  PointBalance,
  LowBalance,
  OfflineStatus,
  PriceList,
  TransactionPage,
} from "./bindings";

/** The plugin's name: its commands are invoked as `plugin:points|<command>`. */
export const PLUGIN_NAME = "points";

/** Every command of the plugin, as the webview invokes it. */
export const COMMANDS = {
  getBalance: "plugin:points|get_balance",
  getLowBalance: "plugin:points|get_low_balance",
  getOffline: "plugin:points|get_offline",
  checkCost: "plugin:points|check_cost",
  charge: "plugin:points|charge",
  getPrices: "plugin:points|get_prices",
  listTransactions: "plugin:points|list_transactions",
  listBatches: "plugin:points|list_batches",
  setSessionToken: "plugin:points|set_session_token",
  clearSessionToken: "plugin:points|clear_session_token",
  getPending: "plugin:points|get_pending",
  syncPending: "plugin:points|sync_pending",
  retryRefused: "plugin:points|retry_refused",
  dismissRefused: "plugin:points|dismiss_refused",
} as const;

/** A service name: one the ledger prices today, or any other string it may price later. */
export type ServiceName = KnownService | (string & {});

/** Options of {@link charge}. */
export interface ChargeOptions {
  /**
   * Identifies one user action: the same key sent again is never a second charge (an acknowledged
   * charge answers its first receipt, `replayed: true`). Make one per user action, before the
   * call ({@link newIdempotencyKey}), and pass it again to retry that action. Printable ASCII
   * without spaces, 1 to 255 characters. When missing, the plugin makes one for this call (the
   * outcome carries it: {@link idempotencyKeyOf}).
   */
  idempotencyKey?: string | undefined;
  /** A free reference stored with the transaction (a job id, a file name). */
  reference?: string | undefined;
}

/** Options of {@link setSessionToken}. */
export interface SessionOptions {
  /**
   * The host's own, stable id of the account the token belongs to (printable ASCII without
   * spaces, 1 to 255 characters). Pending charges are bound to the account: give it when the
   * token is opaque (not a JWT with a `sub` claim), or charges left pending by one sign-in can
   * only be sent again with that very token.
   */
  accountId?: string | undefined;
}

/** Options of {@link listTransactions}. */
export interface ListTransactionsOptions {
  /** How many entries at most. */
  limit?: number | undefined;
  /** The `nextCursor` of the previous page. */
  before?: string | undefined;
}

/**
 * A new idempotency key for one user action: `webview:` and a random UUID (or 32 random hex
 * digits where `crypto.randomUUID` is missing, as outside a secure context).
 */
export function newIdempotencyKey(): string {
  const random: Partial<Crypto> | undefined = globalThis.crypto;
  if (typeof random?.randomUUID === "function") return `webview:${random.randomUUID()}`;
  const bytes = new Uint8Array(16);
  if (typeof random?.getRandomValues === "function") random.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return `webview:${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** The idempotency key a charge was made under, whatever became of it. */
export function idempotencyKeyOf(outcome: ChargeOutcome): string {
  return outcome.status === "acknowledged" ? outcome.receipt.idempotencyKey : outcome.idempotencyKey;
}

/** The arguments object, without the keys whose value is `undefined`. */
function args(values: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(values)) {
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** The user's balance and totals, read from the ledger. */
export function getBalance(): Promise<PointBalance> {
  return invoke<PointBalance>(COMMANDS.getBalance);
}

/**
 * The signed-in account's low-balance crossing in force (its lowest threshold the balance is
 * below, with the last balance seen), or `null`: what `points://low-balance` said, for a window
 * that opened after it.
 */
export function getLowBalance(): Promise<LowBalance | null> {
  return invoke<LowBalance | null>(COMMANDS.getLowBalance);
}

/**
 * The offline state of the current session: `offline` is `null` while the ledger is reachable,
 * else what offline work may still spend. What `points://offline-changed` said, for a window that
 * opened after it.
 */
export function getOffline(): Promise<OfflineStatus> {
  return invoke<OfflineStatus>(COMMANDS.getOffline);
}

/**
 * The price of one use of `service` and whether the balance covers it. `duration` (seconds) is
 * needed by the services priced per second (`tts`, `video`).
 */
export function checkCost(service: ServiceName, duration?: number): Promise<CostCheck> {
  return invoke<CostCheck>(COMMANDS.checkCost, args({ service, duration }));
}

/**
 * Charges one use of a service the desktop app performs itself, under `options.idempotencyKey`.
 * Never goes into debt. Needs the opt-in permission `points:allow-charge` (not in the plugin's
 * default set).
 *
 * The plugin journals the charge before it sends it. Once sent, it resolves with what became of
 * it, never rejects:
 * - `acknowledged`: the ledger applied it (`receipt.replayed` when that key was charged before);
 * - `pending`: the answer did not come (offline, a timeout, a 5xx): the charge is kept and the
 *   plugin's background sync sends it later under the same key. Not a failure;
 * - `refused`: the ledger refused it for good; it is kept in the refused record
 *   (`getPending().refused`) until {@link retryRefused} or {@link dismissRefused}.
 *
 * It rejects with a `PointsError` only when nothing was charged: `insufficientPoints` (the price
 * check or the ledger's 402; nothing is pending), `unauthorized`, `notChargeableHere`,
 * `invalidArgument`, and `network` / `timeout` when the price check could not reach the ledger
 * (nothing was sent). The same `idempotencyKey` again is never a second charge.
 */
export function charge(service: DesktopService, options: ChargeOptions = {}): Promise<ChargeOutcome> {
  return invoke<ChargeOutcome>(
    COMMANDS.charge,
    args({ service, idempotencyKey: options.idempotencyKey, reference: options.reference }),
  );
}

/** The price table, for display. */
export function getPrices(): Promise<PriceList> {
  return invoke<PriceList>(COMMANDS.getPrices);
}

/** The user's transactions, newest first, one page at a time. */
export function listTransactions(options: ListTransactionsOptions = {}): Promise<TransactionPage> {
  return invoke<TransactionPage>(
    COMMANDS.listTransactions,
    args({ limit: options.limit, before: options.before }),
  );
}

/** The live recharge batches, soonest expiry first. */
export function listBatches(): Promise<Batch[]> {
  return invoke<Batch[]>(COMMANDS.listBatches);
}

/**
 * Signs in: gives the plugin the user's session token for the ledger (up to 8192 characters; it is
 * never readable again), with the host's account id when known. A change of account is announced
 * by `points://session-changed`, and that account's pending charges are sent at once.
 */
export async function setSessionToken(token: string, options: SessionOptions = {}): Promise<void> {
  await invoke<null>(COMMANDS.setSessionToken, args({ token, accountId: options.accountId }));
}

/**
 * Signs out: forgets the session token. No ledger call is made until the next sign-in; announced by
 * `points://session-changed`. Pending charges stay kept for their own account.
 */
export async function clearSessionToken(): Promise<void> {
  await invoke<null>(COMMANDS.clearSessionToken);
}

/**
 * The signed-in account's charges not yet acknowledged by the ledger, and those it refused for
 * good (count 0 and no refusals while signed out); `otherAccounts` counts the charges pending on
 * this machine for other accounts.
 */
export function getPending(): Promise<PendingStatus> {
  return invoke<PendingStatus>(COMMANDS.getPending);
}

/**
 * Sends the pending charges now (after a pass already under way, if any) instead of waiting for
 * the background sync, and answers what is left.
 */
export function syncPending(): Promise<PendingStatus> {
  return invoke<PendingStatus>(COMMANDS.syncPending);
}

/**
 * Moves the signed-in account's refused charge with that key back to the pending charges and asks
 * the background sync to send it now (under the same key); answers the pending status then.
 */
export function retryRefused(idempotencyKey: string): Promise<PendingStatus> {
  return invoke<PendingStatus>(COMMANDS.retryRefused, { idempotencyKey });
}

/**
 * Removes the signed-in account's refused charge with that key from the record (the user has seen
 * it; it stays unpaid); answers the pending status then.
 */
export function dismissRefused(idempotencyKey: string): Promise<PendingStatus> {
  return invoke<PendingStatus>(COMMANDS.dismissRefused, { idempotencyKey });
}
