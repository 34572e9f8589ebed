import type { InsufficientPoints } from "./bindings";

/** The HTTP status of "insufficient points". */
export const PAYMENT_REQUIRED = 402;

/**
 * The figures of a refusal for lack of points: those of {@link InsufficientPoints} without the
 * window (a 402 of the app's own backend is met by the window that made the request).
 */
export type RefusalFigures = Pick<InsufficientPoints, "service" | "required" | "balance">;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function text(value: unknown): string | null {
  return typeof value === "string" && value !== "" ? value : null;
}

function count(value: unknown): number | null {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  // Some backends send decimals as strings ("12" or "12.0").
  if (typeof value === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(value)) return Number(value);
  return null;
}

function fields(source: Json): RefusalFigures {
  return { service: text(source.service), required: count(source.required), balance: count(source.balance) };
}

/**
 * The figures of a 402 body from the app's own backend, whatever its shape:
 * - `application/problem+json`: `{type, title, status, code: "insufficient_points", service, required, balance}`;
 * - FastAPI: `{"detail": {service, required, balance, ...}}` or `{"detail": "a message"}`;
 * - an empty or unreadable body.
 *
 * A figure the body does not give is `null`. A string is parsed as JSON first.
 */
export function insufficientPointsFromBody(body: unknown): RefusalFigures {
  let value = body;
  if (typeof value === "string") {
    try {
      value = value.trim() === "" ? null : (JSON.parse(value) as unknown);
    } catch {
      value = null;
    }
  }
  if (!isObject(value)) return { service: null, required: null, balance: null };
  if ("detail" in value) {
    const detail = value.detail;
    if (isObject(detail)) return fields(detail);
    // A plain message (or a validation list): only the top level can still hold figures.
  }
  return fields(value);
}

/**
 * The figures of a 402 `Response` from the app's own backend (see
 * {@link insufficientPointsFromBody}), or `null` when its status is not 402. The body is read from
 * a clone when it has not been read yet, so the caller can still read it.
 */
export async function insufficientPointsFromResponse(
  response: Response,
): Promise<RefusalFigures | null> {
  if (response.status !== PAYMENT_REQUIRED) return null;
  let body: unknown = null;
  if (!response.bodyUsed) {
    try {
      body = await response.clone().text();
    } catch {
      body = null;
    }
  }
  return insufficientPointsFromBody(body);
}
