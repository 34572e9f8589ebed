// The store with the plugin's live figures: whole summaries, low-balance crossings, and the
// recharge dialog that knows it was paid.
import { emit } from "@tauri-apps/api/event";
import { clearMocks } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createPointStore, type LowBalance, type PointBalance, type PointStore, type Recharged } from "../src";
import { BALANCE, INSUFFICIENT, acknowledged, mockPlugin, pending, receiptOf } from "./ipc";

let stores: PointStore[] = [];
afterEach(() => {
  for (const store of stores) store.dispose();
  stores = [];
  clearMocks();
});

/** A started store of session 1 showing `initial` (fetched), in the window `main`. */
async function started(initial: PointBalance = BALANCE, label = "main"): Promise<PointStore> {
  mockPlugin({
    "plugin:points|get_balance": () => initial,
    "plugin:points|get_pending": () => pending(0, 1),
    "plugin:points|charge": (args) => acknowledged(receiptOf(String(args.idempotencyKey), 1, 99)),
  });
  const store = createPointStore({ webviewLabel: label });
  stores.push(store);
  await store.start();
  await store.fetchBalance();
  return store;
}

/** A whole summary: `recharged` in, `expired` gone, the rest consumed down to `balance`. */
function summary(balance: number, seq: number, recharged = 200, expired = 10): PointBalance {
  return { balance, totalRecharged: recharged, totalConsumed: recharged - expired - balance, totalExpired: expired, seq };
}

const changed = (s: PointBalance, session = 1) =>
  emit("points://balance-changed", { balance: s.balance, summary: s, seq: s.seq ?? null, session });
const low = (threshold: number, balance: number, session = 1) =>
  emit("points://low-balance", { threshold, balance, session } satisfies LowBalance);

describe("every figure whole", () => {
  it("after any change the balance and every total are of one summary", async () => {
    const store = await started(summary(120, 7));
    const seen: PointBalance[] = [];
    store.subscribe(() => {
      const shown = store.getSnapshot().balance;
      if (shown !== null && seen.at(-1) !== shown) seen.push(shown);
    });
    // A charge here (its receipt says 1: never shown), a consume by a backend, a top-up elsewhere, an expiry.
    await store.charge("compose");
    await changed(summary(115, 8));
    await changed(summary(112, 9));
    await changed(summary(162, 10, 250));
    await changed(summary(150, 11, 250, 22));
    expect(seen.map((s) => s.seq)).toEqual([8, 9, 10, 11]);
    for (const shown of seen) {
      expect(shown.balance).toBe(shown.totalRecharged - shown.totalConsumed - shown.totalExpired);
      expect(Object.isFrozen(shown)).toBe(true);
    }
    expect(store.getSnapshot().balance).toEqual(summary(150, 11, 250, 22));
  });
});

describe("low-balance crossings", () => {
  it("keeps the latest crossing, tells its listeners once per event, and clears it at a newer figure at or above it", async () => {
    const store = await started(summary(60, 7));
    const heard = vi.fn();
    const stop = store.onLowBalance(heard);

    // The crossing is announced before its summary. A figure answered then, of the moment shown
    // when it crossed (seq 7, 60), is not newer: still low. The summary below the threshold keeps it.
    await low(50, 45);
    expect(store.getSnapshot().lowBalance).toEqual({ threshold: 50, balance: 45, session: 1 });
    await changed(summary(60, 7));
    expect(store.getSnapshot().lowBalance).toEqual({ threshold: 50, balance: 45, session: 1 });
    await changed(summary(45, 8));
    expect(store.getSnapshot().lowBalance).toEqual({ threshold: 50, balance: 45, session: 1 });
    expect(heard.mock.calls).toEqual([[{ threshold: 50, balance: 45, session: 1 }]]);

    // Below the second threshold too: the latest (lowest) is shown; back above it, the first again.
    await changed(summary(8, 9));
    await low(10, 8);
    expect(store.getSnapshot().lowBalance).toEqual({ threshold: 10, balance: 8, session: 1 });
    await changed(summary(30, 10, 222));
    expect(store.getSnapshot().lowBalance).toEqual({ threshold: 50, balance: 45, session: 1 });
    await changed(summary(50, 11, 242));
    expect(store.getSnapshot().lowBalance).toBeNull();
    expect(heard).toHaveBeenCalledTimes(2);

    stop();
    await low(50, 40);
    expect(heard).toHaveBeenCalledTimes(2);
    expect(store.getSnapshot().lowBalance).toEqual({ threshold: 50, balance: 40, session: 1 });
  });

  it("is forgotten at a change of session, and one of an older session is ignored", async () => {
    const store = await started(summary(60, 7));
    const heard = vi.fn();
    store.onLowBalance(heard);
    await low(50, 45);
    await emit("points://session-changed", { signedIn: true, session: 2 });
    expect(store.getSnapshot()).toMatchObject({ session: 2, lowBalance: null });
    await low(50, 3, 1);
    expect(store.getSnapshot().lowBalance).toBeNull();
    expect(heard).toHaveBeenCalledTimes(1);
    // The new account's own crossing, then a figure above it: nothing of the first account is left.
    await changed(summary(8, 20), 2);
    await low(10, 8, 2);
    await changed(summary(30, 21, 222), 2);
    expect(store.getSnapshot().lowBalance).toBeNull();
  });

  it("a listener that throws does not stop the others nor the store", async () => {
    const store = await started(summary(60, 7));
    vi.useFakeTimers();
    try {
      const second = vi.fn();
      store.onLowBalance(() => {
        throw new Error("host bug");
      });
      store.onLowBalance(second);
      await low(50, 45);
      expect(second).toHaveBeenCalledTimes(1);
      expect(store.getSnapshot().lowBalance).not.toBeNull();
      // Thrown again apart, where the host sees it.
      expect(() => vi.runAllTimers()).toThrow("host bug");
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("the recharge dialog knows it was paid", () => {
  it("a newer summary covering `required` marks it satisfied, closes it and calls onRecharged", async () => {
    const store = await started(summary(2, 7));
    const paid: Recharged[] = [];
    store.onRecharged((r) => paid.push(r));
    await expect(store.charge("compose")).resolves.toBeDefined(); // answered by the mock: not a refusal
    store.handleError(INSUFFICIENT); // compose needs 5, balance 2
    expect(store.getSnapshot().recharge).toMatchObject({ open: true, satisfied: false, required: 5 });

    // Not enough yet: still open. The same figure again: still open.
    await changed(summary(4, 8, 202));
    await changed(summary(4, 8, 202));
    expect(store.getSnapshot().recharge.open).toBe(true);
    expect(paid).toEqual([]);

    // A top-up made in another window (or on the ledger's side) arrives by the stream.
    const covering = summary(54, 9, 252);
    await changed(covering);
    expect(store.getSnapshot().recharge).toEqual({
      open: false,
      satisfied: true,
      service: "compose",
      required: 5,
      balance: 54,
      texts: null,
    });
    expect(paid).toEqual([{ service: "compose", required: 5, summary: covering }]);

    // Once closed, nothing more: another figure calls nobody; the next close or open resets it.
    await changed(summary(60, 10, 258));
    expect(paid).toHaveLength(1);
    store.closeRecharge();
    expect(store.getSnapshot().recharge.satisfied).toBe(false);
  });

  it("a fetch's summary pays for it too; a figure not newer than the one shown at the refusal does not", async () => {
    let fetched = summary(30, 7);
    mockPlugin({ "plugin:points|get_balance": () => fetched, "plugin:points|get_pending": () => pending(0, 1) });
    const store = createPointStore({ webviewLabel: "main" });
    stores.push(store);
    await store.start();
    await store.fetchBalance();
    // The app's backend refused a video of 60 while this window still showed 30 (seq 7).
    store.handleBackendBody({ required: 60, balance: 3 }, 402);
    const paid = vi.fn();
    store.onRecharged(paid);
    await changed(summary(30, 7));
    await store.fetchBalance();
    expect(store.getSnapshot().recharge.open).toBe(true);
    fetched = summary(103, 9, 283);
    await store.fetchBalance();
    expect(store.getSnapshot().recharge).toMatchObject({ open: false, satisfied: true, required: 60, balance: 103 });
    expect(paid).toHaveBeenCalledTimes(1);
  });

  it("a dialog without `required` is left to the host; a closed one is never reopened by a figure", async () => {
    const store = await started(summary(1, 7));
    const paid = vi.fn();
    store.onRecharged(paid);
    store.openRecharge();
    await changed(summary(500, 8, 699));
    expect(store.getSnapshot().recharge).toMatchObject({ open: true, satisfied: false });
    store.closeRecharge();
    await changed(summary(600, 9, 799));
    expect(store.getSnapshot().recharge).toMatchObject({ open: false, satisfied: false });
    expect(paid).not.toHaveBeenCalled();
  });

  it("in every window's store: only the window whose dialog is open closes one", async () => {
    const main = await started(summary(0, 7), "main");
    const second = createPointStore({ webviewLabel: "second" });
    stores.push(second);
    await second.start();
    await second.fetchBalance();
    await emit("points://insufficient", { service: "cover_design", required: 2, balance: 0, window: "second" });
    expect([main.getSnapshot().recharge.open, second.getSnapshot().recharge.open]).toEqual([false, true]);
    const paid = { main: vi.fn(), second: vi.fn() };
    main.onRecharged(paid.main);
    second.onRecharged(paid.second);
    await changed(summary(50, 8, 250));
    expect(second.getSnapshot().recharge).toMatchObject({ open: false, satisfied: true });
    expect(main.getSnapshot().recharge.satisfied).toBe(false);
    expect([paid.main.mock.calls.length, paid.second.mock.calls.length]).toEqual([0, 1]);
    // Both windows show the same whole summary.
    expect(main.getSnapshot().balance).toEqual(second.getSnapshot().balance);
  });
});

describe("a crossing in force before the window listened", () => {
  it("is read at start and shown, without calling the crossing listeners", async () => {
    mockPlugin({
      "plugin:points|get_balance": () => summary(7, 30),
      "plugin:points|get_pending": () => pending(0, 1),
      "plugin:points|get_low_balance": () => ({ threshold: 10, balance: 7, session: 1 }),
    });
    const store = createPointStore({ webviewLabel: "second" });
    stores.push(store);
    const heard = vi.fn();
    store.onLowBalance(heard);
    await store.start();
    await store.fetchBalance();
    await vi.waitFor(() => expect(store.getSnapshot().lowBalance).toEqual({ threshold: 10, balance: 7, session: 1 }));
    expect(heard).not.toHaveBeenCalled();
    await changed(summary(40, 31));
    expect(store.getSnapshot().lowBalance).toBeNull();
  });

  it("is not shown when the summary already shown is above it", async () => {
    mockPlugin({
      "plugin:points|get_balance": () => summary(70, 30),
      "plugin:points|get_pending": () => pending(0, 1),
      "plugin:points|get_low_balance": () => new Promise((resolve) => setTimeout(() => resolve({ threshold: 10, balance: 7, session: 1 }), 20)),
    });
    const store = createPointStore({ webviewLabel: "second" });
    stores.push(store);
    await store.start();
    await store.fetchBalance();
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(store.getSnapshot().lowBalance).toBeNull();
  });
});
