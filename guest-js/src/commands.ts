import { invoke } from "@tauri-apps/api/core";
import type {
  Batch,
  ChargeReceipt,
  CostCheck,
  DesktopService,
  KnownService,
  PendingStatus,
  PointBalance,
  PriceList,
  TransactionPage,
} from "./bindings";

/** The plugin's name: its commands are invoked as `plugin:points|<command>`. */
export const PLUGIN_NAME = "points";

/** Every command of the plugin, as the webview invokes it. */
export const COMMANDS = {
  getBalance: "plugin:points|get_balance",
  checkCost: "plugin:points|check_cost",
  charge: "plugin:points|charge",
  getPrices: "plugin:points|get_prices",
  listTransactions: "plugin:points|list_transactions",
  listBatches: "plugin:points|list_batches",
  setSessionToken: "plugin:points|set_session_token",
  clearSessionToken: "plugin:points|clear_session_token",
  getPending: "plugin:points|get_pending",
  syncPending: "plugin:points|sync_pending",
} as const;

/** A service name: one the ledger prices today, or any other string it may price later. */
export type ServiceName = KnownService | (string & {});

/** Options of {@link charge}. */
export interface ChargeOptions {
  /**
   * Identifies one use: the same key sent again returns the first receipt (`replayed: true`) and
   * charges nothing more. Printable ASCII without spaces, 1 to 255 characters. When missing, the
   * plugin makes one for this call.
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
 * The price of one use of `service` and whether the balance covers it. `duration` (seconds) is
 * needed by the services priced per second (`tts`, `video`).
 */
export function checkCost(service: ServiceName, duration?: number): Promise<CostCheck> {
  return invoke<CostCheck>(COMMANDS.checkCost, args({ service, duration }));
}

/**
 * Charges one use of a service the desktop app performs itself. Never goes into debt: with too few
 * points it rejects with an `insufficientPoints` error and nothing is charged. Needs the opt-in
 * permission `points:allow-charge` (not in the plugin's default set).
 */
export function charge(service: DesktopService, options: ChargeOptions = {}): Promise<ChargeReceipt> {
  return invoke<ChargeReceipt>(
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
 * good (count 0 and no refusals while signed out).
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
