import { mockIPC } from "@tauri-apps/api/mocks";
import type {
  ChargeOutcome,
  ChargeReceipt,
  OfflineErrorKind,
  PendingStatus,
  PointBalance,
  PointsErrorKind,
  PointsErrorOf,
  RefusedCharge,
} from "../src";

export interface Call {
  cmd: string;
  args: Record<string, unknown>;
}

type Handler = (args: Record<string, unknown>) => unknown;

/**
 * Mocks the plugin's commands (events are mocked too, so `emit` reaches `listen`). Returns the
 * list of plugin commands invoked, in order. A command without a handler rejects, as Tauri would.
 */
export function mockPlugin(handlers: Record<string, Handler> = {}): Call[] {
  const calls: Call[] = [];
  mockIPC(
    (cmd, payload) => {
      const args = (payload ?? {}) as Record<string, unknown>;
      // The store asks which low-balance crossing is in force at start and at every session: a
      // test that gives no handler for it is not about it (no crossing, not recorded).
      if (cmd === "plugin:points|get_low_balance" && !handlers[cmd]) return null;
      // The same for the offline state: unanswered (the store ignores the failure), not recorded.
      if (cmd === "plugin:points|get_offline" && !handlers[cmd]) throw `command ${cmd} not found`;
      if (cmd.startsWith("plugin:points|")) calls.push({ cmd, args: { ...args } });
      const handler = handlers[cmd];
      if (!handler) throw `command ${cmd} not found`;
      return handler(args);
    },
    { shouldMockEvents: true },
  );
  return calls;
}

/** A promise settled from outside. */
export function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export const BALANCE: PointBalance = { balance: 120, totalRecharged: 200, totalConsumed: 70, totalExpired: 10, seq: 7 };

/** A balance of another account. */
export const OTHER_BALANCE: PointBalance = { balance: 3, totalRecharged: 10, totalConsumed: 7, totalExpired: 0, seq: 2 };

/** An answer of get_pending / sync_pending. */
export function pending(
  count: number,
  session: number,
  refused: RefusedCharge[] = [],
  signedIn = true,
  otherAccounts = 0,
): PendingStatus {
  return { count, oldestAgeSeconds: count > 0 ? 42 : null, refused, signedIn, session, otherAccounts };
}

/** A charge the ledger refused for good. */
export function refusedCharge(key: string, refusedAt: number): RefusedCharge {
  return {
    idempotencyKey: key,
    service: "compose",
    recordedAt: refusedAt - 60,
    refusedAt,
    error: { kind: "backend", message: "key reused", status: 422, code: "idempotency_conflict" },
  };
}

export const INSUFFICIENT = {
  kind: "insufficientPoints",
  service: "compose",
  required: 5,
  balance: 2,
  message: "insufficient points: compose needs 5, balance is 2",
} as const;

/** A receipt of the ledger for a charge under `key`. */
export function receiptOf(key: string, balance: number, seq: number | null = 8, replayed = false): ChargeReceipt {
  return { transactionId: "t-1", service: "compose", points: 5, balance, replayed, idempotencyKey: key, seq };
}

/** The answer of `charge` for an acknowledged charge. */
export function acknowledged(receipt: ChargeReceipt): ChargeOutcome {
  return { status: "acknowledged", receipt };
}

/** One refusal of offline work of every kind, with the fields the plugin sends. */
export const ONE_OFFLINE_ERROR_OF_EACH_KIND: PointsErrorOf<OfflineErrorKind>[] = [
  { kind: "offlineAllowanceNone", message: "no offline allowance held" },
  { kind: "offlineAllowanceInvalid", message: "the offline allowance was signed for another device" },
  { kind: "offlineAllowanceExpired", until: "2026-03-01T12:05:00Z", message: "the offline allowance expired" },
  { kind: "offlineAllowanceExhausted", service: "compose", required: 5, remaining: 3, message: "compose needs 5, 3 left" },
  { kind: "offlineClockTurnedBack", message: "the clock is earlier than a time already seen" },
];

/** One error of every kind, with fields an app would meet. */
export const ONE_ERROR_OF_EACH_KIND: PointsErrorOf<PointsErrorKind>[] = [
  INSUFFICIENT,
  { kind: "unauthorized", message: "m" },
  { kind: "unknownService", service: "x", message: "m" },
  { kind: "invalidDuration", message: "m" },
  { kind: "notChargeableHere", service: "video", message: "m" },
  { kind: "invalidArgument", field: "idempotencyKey", message: "m" },
  { kind: "network", message: "m" },
  { kind: "timeout", message: "m" },
  { kind: "backend", status: 500, code: null, message: "m" },
  { kind: "protocol", message: "m" },
  { kind: "storage", message: "m" },
  { kind: "notConfigured", message: "m" },
  ...ONE_OFFLINE_ERROR_OF_EACH_KIND,
];
