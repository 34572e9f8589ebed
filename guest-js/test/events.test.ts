import { emit } from "@tauri-apps/api/event";
import { clearMocks } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  EVENTS,
  onBalanceChanged,
  onChargeRefused,
  onInsufficientPoints,
  onLowBalance,
  onOfflineChanged,
  onPendingChanged,
  onSessionChanged,
  type BalanceChanged,
  type InsufficientPoints,
  type LowBalance,
  type OfflineStatus,
  type PendingCharges,
  type RefusedCharge,
  type SessionChanged,
} from "../src";
import { BALANCE, mockPlugin, refusedCharge } from "./ipc";

afterEach(() => clearMocks());

describe("event listeners", () => {
  it("use the documented event names", () => {
    expect(EVENTS).toEqual({
      balanceChanged: "points://balance-changed",
      lowBalance: "points://low-balance",
      insufficient: "points://insufficient",
      pendingChanged: "points://pending-changed",
      sessionChanged: "points://session-changed",
      chargeRefused: "points://charge-refused",
      offlineChanged: "points://offline-changed",
    });
  });

  it("onBalanceChanged hands over the payload, until unlistened", async () => {
    mockPlugin();
    const handler = vi.fn();
    const unlisten = await onBalanceChanged(handler);
    const payload: BalanceChanged = { balance: 120, summary: BALANCE, seq: 7, session: 1 };
    await emit("points://balance-changed", payload);
    await emit("points://insufficient", { service: null, required: null, balance: null, window: "main" });
    expect(handler.mock.calls).toEqual([[payload]]);
    unlisten();
    await emit("points://balance-changed", { balance: 1, summary: { ...BALANCE, balance: 1, seq: 8 }, seq: 8, session: 1 });
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it("onInsufficientPoints hands over the payload, until unlistened", async () => {
    mockPlugin();
    const handler = vi.fn();
    const unlisten = await onInsufficientPoints(handler);
    const payload: InsufficientPoints = { service: "compose", required: 5, balance: 2, window: "main" };
    await emit("points://insufficient", payload);
    expect(handler.mock.calls).toEqual([[payload]]);
    unlisten();
    await emit("points://insufficient", payload);
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it("onLowBalance hands over the payload, until unlistened", async () => {
    mockPlugin();
    const handler = vi.fn();
    const unlisten = await onLowBalance(handler);
    const payload: LowBalance = { threshold: 50, balance: 42, session: 1 };
    await emit("points://low-balance", payload);
    await emit("points://balance-changed", { balance: 42, summary: { ...BALANCE, balance: 42 }, seq: 9, session: 1 });
    expect(handler.mock.calls).toEqual([[payload]]);
    unlisten();
    await emit("points://low-balance", payload);
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it("onOfflineChanged hands over the payload, until unlistened", async () => {
    mockPlugin();
    const handler = vi.fn();
    const unlisten = await onOfflineChanged(handler);
    const payload: OfflineStatus = { offline: { remaining: 30, until: "2026-03-01T12:00:00Z" }, session: 1 };
    await emit("points://offline-changed", payload);
    await emit("points://pending-changed", { count: 0, session: 1 });
    await emit("points://offline-changed", { offline: null, session: 1 });
    expect(handler.mock.calls).toEqual([[payload], [{ offline: null, session: 1 }]]);
    unlisten();
    await emit("points://offline-changed", payload);
    expect(handler).toHaveBeenCalledTimes(2);
  });

  it("onPendingChanged hands over the payload, until unlistened", async () => {
    mockPlugin();
    const handler = vi.fn();
    const unlisten = await onPendingChanged(handler);
    const payload: PendingCharges = { count: 2, session: 1 };
    await emit("points://pending-changed", payload);
    expect(handler.mock.calls).toEqual([[payload]]);
    unlisten();
    await emit("points://pending-changed", { count: 0, session: 1 });
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it("onSessionChanged hands over the payload, until unlistened", async () => {
    mockPlugin();
    const handler = vi.fn();
    const unlisten = await onSessionChanged(handler);
    const payload: SessionChanged = { signedIn: false, session: 4 };
    await emit("points://session-changed", payload);
    await emit("points://pending-changed", { count: 0, session: 1 });
    expect(handler.mock.calls).toEqual([[payload]]);
    unlisten();
    await emit("points://session-changed", { signedIn: true, session: 5 });
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it("onChargeRefused hands over the payload, until unlistened", async () => {
    mockPlugin();
    const handler = vi.fn();
    const unlisten = await onChargeRefused(handler);
    const payload: RefusedCharge = refusedCharge("compose:job-7", 1_700_000_000);
    await emit("points://charge-refused", payload);
    expect(handler.mock.calls).toEqual([[payload]]);
    unlisten();
    await emit("points://charge-refused", payload);
    expect(handler).toHaveBeenCalledTimes(1);
  });
});
