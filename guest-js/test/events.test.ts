import { emit } from "@tauri-apps/api/event";
import { clearMocks } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  EVENTS,
  onBalanceChanged,
  onInsufficientPoints,
  onPendingChanged,
  type BalanceChanged,
  type InsufficientPoints,
  type PendingCharges,
} from "../src";
import { BALANCE, mockPlugin } from "./ipc";

afterEach(() => clearMocks());

describe("event listeners", () => {
  it("use the documented event names", () => {
    expect(EVENTS).toEqual({
      balanceChanged: "points://balance-changed",
      insufficient: "points://insufficient",
      pendingChanged: "points://pending-changed",
    });
  });

  it("onBalanceChanged hands over the payload, until unlistened", async () => {
    mockPlugin();
    const handler = vi.fn();
    const unlisten = await onBalanceChanged(handler);
    const payload: BalanceChanged = { balance: 120, details: BALANCE };
    await emit("points://balance-changed", payload);
    await emit("points://insufficient", { service: null, required: null, balance: null });
    expect(handler.mock.calls).toEqual([[payload]]);
    unlisten();
    await emit("points://balance-changed", { balance: 1, details: null });
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it("onInsufficientPoints hands over the payload, until unlistened", async () => {
    mockPlugin();
    const handler = vi.fn();
    const unlisten = await onInsufficientPoints(handler);
    const payload: InsufficientPoints = { service: "compose", required: 5, balance: 2 };
    await emit("points://insufficient", payload);
    expect(handler.mock.calls).toEqual([[payload]]);
    unlisten();
    await emit("points://insufficient", payload);
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it("onPendingChanged hands over the payload, until unlistened", async () => {
    mockPlugin();
    const handler = vi.fn();
    const unlisten = await onPendingChanged(handler);
    const payload: PendingCharges = { count: 2 };
    await emit("points://pending-changed", payload);
    expect(handler.mock.calls).toEqual([[payload]]);
    unlisten();
    await emit("points://pending-changed", { count: 0 });
    expect(handler).toHaveBeenCalledTimes(1);
  });
});
