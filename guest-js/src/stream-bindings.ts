// The payloads of contract v1.2 as the plugin will send them, written by hand until the types
// generated from the Rust crate (bindings/BalanceChanged.ts, bindings/LowBalance.ts) carry them.
import type { PointBalance } from "../bindings/PointBalance";

/** Payload of `points://balance-changed`: always about the account signed in now. */
export type BalanceChanged = {
  /** The new balance (the same as `summary.balance`). */
  balance: number;
  /** The whole summary this figure belongs to: balance, totals and `seq`, all of one moment. */
  summary: PointBalance;
  /** The ledger's ordering number of the figure; `null` when the backend does not send it. */
  seq: number | null;
  /** The session the figure belongs to (see `SessionChanged.session`). */
  session: number;
};

/** Payload of `points://low-balance`: the balance went below a configured threshold. */
export type LowBalance = {
  /** The threshold crossed (the balance is below it). */
  threshold: number;
  /** The balance that crossed it. */
  balance: number;
  /** The session the crossing belongs to. */
  session: number;
};
