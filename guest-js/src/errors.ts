import type { PointsError } from "./bindings";

/**
 * The refusals of offline work (the ledger unreachable), by their `kind`. The plugin's
 * `PointsError` has them; they are spelled here too, so that this package knows them by name with
 * any binding. None is a lack of points: none opens the recharge dialog.
 */
export type OfflineError =
  /** Offline, and no allowance held for this account on this machine. */
  | { kind: "offlineAllowanceNone"; message: string }
  /** The allowance held was refused (a changed file, another account's or device's, an unknown key): `message` says which. */
  | { kind: "offlineAllowanceInvalid"; message: string }
  /** The allowance is past its last moment, `until` (RFC 3339). */
  | { kind: "offlineAllowanceExpired"; message: string; until: string }
  /** The allowance left does not cover the job. */
  | { kind: "offlineAllowanceExhausted"; message: string; service: string; required: number; remaining: number }
  /** The computer's clock is earlier than a time already seen: no offline job until the ledger is reached again. */
  | { kind: "offlineClockTurnedBack"; message: string };

/** The `kind` of an {@link OfflineError}. */
export type OfflineErrorKind = OfflineError["kind"];

/** The `kind` of a {@link PointsError} (the {@link OfflineError} kinds included). */
export type PointsErrorKind = PointsError["kind"] | OfflineErrorKind;

/** The {@link PointsError} of one kind. */
export type PointsErrorOf<K extends PointsErrorKind> = Extract<PointsError | OfflineError, { kind: K }>;

/** The error of a charge or check refused for lack of points (any 402 from the ledger). */
export type InsufficientPointsError = PointsErrorOf<"insufficientPoints">;

// Keyed by the binding's kinds (and the offline ones): a kind added to the Rust enum, or one of the
// binding's removed from it, fails to compile here.
const KINDS: { readonly [K in PointsErrorKind]: true } = {
  insufficientPoints: true,
  unauthorized: true,
  unknownService: true,
  invalidDuration: true,
  notChargeableHere: true,
  invalidArgument: true,
  network: true,
  timeout: true,
  backend: true,
  protocol: true,
  storage: true,
  notConfigured: true,
  offlineAllowanceNone: true,
  offlineAllowanceInvalid: true,
  offlineAllowanceExpired: true,
  offlineAllowanceExhausted: true,
  offlineClockTurnedBack: true,
};

const OFFLINE_KINDS: { readonly [K in OfflineErrorKind]: true } = {
  offlineAllowanceNone: true,
  offlineAllowanceInvalid: true,
  offlineAllowanceExpired: true,
  offlineAllowanceExhausted: true,
  offlineClockTurnedBack: true,
};

/** Every kind of {@link PointsError}. */
export const POINTS_ERROR_KINDS: readonly PointsErrorKind[] = Object.keys(KINDS) as PointsErrorKind[];

/** Every kind of {@link OfflineError}. */
export const OFFLINE_ERROR_KINDS: readonly OfflineErrorKind[] = Object.keys(OFFLINE_KINDS) as OfflineErrorKind[];

/**
 * Whether a rejection of a plugin command is the plugin's own error. Tauri's own refusals (a
 * command the capability does not allow, an unknown command) are plain strings: not these.
 */
export function isPointsError(error: unknown): error is PointsError {
  if (typeof error !== "object" || error === null || Array.isArray(error)) return false;
  const kind = (error as { kind?: unknown }).kind;
  return typeof kind === "string" && Object.prototype.hasOwnProperty.call(KINDS, kind);
}

/** Whether `error` is a {@link PointsError} of the given kind. */
export function isPointsErrorKind<K extends PointsErrorKind>(
  error: unknown,
  kind: K,
): error is PointsErrorOf<K> {
  return isPointsError(error) && error.kind === kind;
}

/** Whether `error` says the user has too few points (the app should offer a recharge). */
export function isInsufficientPoints(error: unknown): error is InsufficientPointsError {
  return isPointsErrorKind(error, "insufficientPoints");
}

/**
 * Whether `error` is a refusal of offline work for want of a usable allowance, or for a clock set
 * back (the job can run once the ledger is reached again). Never a lack of points.
 */
export function isOfflineError(error: unknown): error is PointsErrorOf<OfflineErrorKind> {
  return isPointsError(error) && Object.prototype.hasOwnProperty.call(OFFLINE_KINDS, error.kind);
}

/** A human-readable text for any rejection: a PointsError, a Tauri refusal, an Error. */
export function errorMessage(error: unknown): string {
  if (typeof error === "string") return error;
  if (typeof error === "object" && error !== null) {
    const message = (error as { message?: unknown }).message;
    if (typeof message === "string" && message !== "") return message;
    if (isPointsError(error)) return error.kind;
  }
  return String(error);
}
