import { clearMocks } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, expectTypeOf, it } from "vitest";
import {
  OFFLINE_ERROR_KINDS,
  POINTS_ERROR_KINDS,
  charge,
  errorMessage,
  isInsufficientPoints,
  isOfflineError,
  isPointsError,
  isPointsErrorKind,
} from "../src";
import { INSUFFICIENT, ONE_ERROR_OF_EACH_KIND as SAMPLES, ONE_OFFLINE_ERROR_OF_EACH_KIND as OFFLINE, mockPlugin } from "./ipc";

afterEach(() => clearMocks());

describe("error guards", () => {
  it("know every kind of the binding", () => {
    expect([...POINTS_ERROR_KINDS].sort()).toEqual(SAMPLES.map((e) => e.kind).sort());
    for (const error of SAMPLES) expect(isPointsError(error)).toBe(true);
  });

  it("reject what is not a PointsError: Tauri's string refusals, Errors, other shapes", () => {
    for (const value of [
      "command charge not allowed by ACL",
      "invalid args `service` for command `charge`",
      new Error("boom"),
      null,
      undefined,
      42,
      [],
      { kind: "somethingElse", message: "m" },
      { kind: 3 },
      { message: "no kind" },
      { kind: "toString" },
    ]) {
      expect(isPointsError(value)).toBe(false);
      expect(isInsufficientPoints(value)).toBe(false);
    }
  });

  it("isInsufficientPoints picks only that kind and narrows it", () => {
    expect(SAMPLES.filter(isInsufficientPoints)).toEqual([INSUFFICIENT]);
    const error: unknown = INSUFFICIENT;
    if (!isInsufficientPoints(error)) throw new Error("not narrowed");
    expectTypeOf(error.required).toEqualTypeOf<number | null>();
    expect([error.service, error.required, error.balance]).toEqual(["compose", 5, 2]);
  });

  it("isPointsErrorKind narrows to the asked kind", () => {
    const error: unknown = { kind: "backend", status: 503, code: "maintenance", message: "m" };
    expect(isPointsErrorKind(error, "network")).toBe(false);
    if (!isPointsErrorKind(error, "backend")) throw new Error("not narrowed");
    expectTypeOf(error.status).toEqualTypeOf<number>();
    expect(error.status).toBe(503);
  });

  it("know the offline kinds: PointsErrors, none of them a lack of points", () => {
    expect([...OFFLINE_ERROR_KINDS].sort()).toEqual(OFFLINE.map((e) => e.kind).sort());
    expect(SAMPLES.filter(isOfflineError)).toEqual(OFFLINE);
    for (const error of OFFLINE) {
      expect(isPointsError(error)).toBe(true);
      expect(isInsufficientPoints(error)).toBe(false);
    }
    expect(isOfflineError({ kind: "network", message: "m" })).toBe(false);
    expect(isOfflineError("offlineAllowanceNone")).toBe(false);
    const error: unknown = OFFLINE[3];
    if (!isPointsErrorKind(error, "offlineAllowanceExhausted")) throw new Error("not narrowed");
    expectTypeOf(error.remaining).toEqualTypeOf<number>();
    expect([error.service, error.required, error.remaining]).toEqual(["compose", 5, 3]);
  });

  it("narrows a real rejection of a command", async () => {
    mockPlugin({
      "plugin:points|charge": () => {
        throw INSUFFICIENT;
      },
    });
    const caught: unknown = await charge("compose").catch((e: unknown) => e);
    expect(isInsufficientPoints(caught)).toBe(true);
  });

  it("errorMessage reads each kind of rejection", () => {
    expect(errorMessage(INSUFFICIENT)).toBe(INSUFFICIENT.message);
    expect(errorMessage("not allowed")).toBe("not allowed");
    expect(errorMessage(new Error("boom"))).toBe("boom");
    expect(errorMessage({ kind: "timeout", message: "" })).toBe("timeout");
    expect(errorMessage(undefined)).toBe("undefined");
  });
});
