import type { PointsError } from "./bindings";

/** The `kind` of a {@link PointsError}. */
export type PointsErrorKind = PointsError["kind"];

/** The {@link PointsError} of one kind. */
export type PointsErrorOf<K extends PointsErrorKind> = Extract<PointsError, { kind: K }>;

/** The error of a charge or check refused for lack of points (any 402 from the ledger). */
export type InsufficientPointsError = PointsErrorOf<"insufficientPoints">;

// Keyed by the binding's kinds: a kind added to or removed from the Rust enum fails to compile here.
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
};

/** Every kind of {@link PointsError}. */
export const POINTS_ERROR_KINDS: readonly PointsErrorKind[] = Object.keys(KINDS) as PointsErrorKind[];

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
