import { emit } from "@tauri-apps/api/event";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createPointStore, getPointStore, type ChargeReceipt, type PointBalance, type PointStore } from "../src";
import { BALANCE, INSUFFICIENT, deferred, mockPlugin } from "./ipc";

let stores: PointStore[] = [];
function newStore(...args: Parameters<typeof createPointStore>): PointStore {
  const store = createPointStore(...args);
  stores.push(store);
  return store;
}

afterEach(() => {
  for (const store of stores) store.dispose();
  stores = [];
  clearMocks();
});

const CLOSED = { open: false, service: null, required: null, balance: null };

function receipt(balance: number): ChargeReceipt {
  return { transactionId: "t-1", service: "compose", points: 5, balance, replayed: false, idempotencyKey: "k-1" };
}

/** Counts the store's notifications. */
function watch(store: PointStore): { count: () => number } {
  let n = 0;
  store.subscribe(() => n++);
  return { count: () => n };
}

/** The event-plugin commands sent (listen/unlisten), by spying on the mocked IPC. */
function spyEventPlugin(): () => string[] {
  const internals = (window as unknown as { __TAURI_INTERNALS__: { invoke: (cmd: string, ...rest: unknown[]) => unknown } })
    .__TAURI_INTERNALS__;
  const spy = vi.spyOn(internals, "invoke");
  return () => spy.mock.calls.map((c) => c[0]).filter((cmd) => cmd.startsWith("plugin:event|") && cmd !== "plugin:event|emit");
}

describe("createPointStore: snapshots", () => {
  it("starts empty, frozen, and returns the same snapshot while nothing changes", () => {
    mockPlugin();
    const store = newStore();
    const first = store.getSnapshot();
    expect(first).toEqual({ balance: null, loading: false, error: null, pendingCharges: 0, recharge: CLOSED });
    expect(Object.isFrozen(first)).toBe(true);
    expect(store.getSnapshot()).toBe(first);
    store.closeRecharge();
    store.clearError();
    expect(store.getSnapshot()).toBe(first);
  });

  it("takes an initial balance", () => {
    const store = newStore({ initialBalance: BALANCE });
    expect(store.getSnapshot().balance).toEqual(BALANCE);
    expect(store.getSnapshot().balance).not.toBe(BALANCE);
  });

  it("notifies subscribers on change only, and stops after unsubscribe", () => {
    const store = newStore();
    const listener = vi.fn();
    const unsubscribe = store.subscribe(listener);
    store.openRecharge({ service: "compose", required: 5, balance: 1 });
    store.openRecharge({ service: "compose", required: 5, balance: 1 });
    expect(listener).toHaveBeenCalledTimes(1);
    unsubscribe();
    store.closeRecharge();
    expect(listener).toHaveBeenCalledTimes(1);
    expect(store.getSnapshot().recharge).toEqual(CLOSED);
  });
});

describe("createPointStore: fetchBalance", () => {
  it("shares one request between concurrent calls", async () => {
    const answer = deferred<PointBalance>();
    const calls = mockPlugin({ "plugin:points|get_balance": () => answer.promise });
    const store = newStore();
    const a = store.fetchBalance();
    const b = store.fetchBalance();
    const c = store.fetchBalance();
    expect(store.getSnapshot().loading).toBe(true);
    answer.resolve(BALANCE);
    await expect(Promise.all([a, b, c])).resolves.toEqual([BALANCE, BALANCE, BALANCE]);
    expect(calls).toHaveLength(1);
    expect(store.getSnapshot()).toMatchObject({ balance: BALANCE, loading: false, error: null });

    await store.fetchBalance();
    expect(calls).toHaveLength(2);
  });

  it("keeps the same snapshot when the balance did not change", async () => {
    mockPlugin({ "plugin:points|get_balance": () => ({ ...BALANCE }) });
    const store = newStore();
    await store.fetchBalance();
    const before = store.getSnapshot();
    const seen = watch(store);
    await store.fetchBalance();
    // loading went true then false (two notifications), but the balance object is the same one
    expect(seen.count()).toBe(2);
    expect(store.getSnapshot().balance).toBe(before.balance);
    expect(store.getSnapshot()).toEqual(before);

    // an event repeating the same figures changes nothing at all
    await store.start();
    const settled = store.getSnapshot();
    await emit("points://balance-changed", { balance: BALANCE.balance, details: { ...BALANCE } });
    await emit("points://balance-changed", { balance: BALANCE.balance, details: null });
    expect(store.getSnapshot()).toBe(settled);
    expect(seen.count()).toBe(2);
  });

  it("keeps the failure in error, rejects every waiting caller, and clears the error on success", async () => {
    let fail = true;
    const calls = mockPlugin({
      "plugin:points|get_balance": () => {
        if (fail) throw { kind: "network", message: "unreachable" };
        return BALANCE;
      },
    });
    const store = newStore();
    const seen = watch(store);
    const results = await Promise.allSettled([store.fetchBalance(), store.fetchBalance()]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(calls).toHaveLength(1);
    expect(seen.count()).toBe(2); // loading, then the failure and the end of loading at once
    expect(store.getSnapshot()).toMatchObject({ loading: false, error: { kind: "network" }, balance: null, recharge: CLOSED });

    fail = false;
    await store.fetchBalance();
    expect(store.getSnapshot()).toMatchObject({ error: null, balance: BALANCE });
  });
});

describe("createPointStore: charge and checkCost", () => {
  it("a successful charge updates balance.balance only", async () => {
    const calls = mockPlugin({
      "plugin:points|get_balance": () => BALANCE,
      "plugin:points|charge": () => receipt(115),
    });
    const store = newStore();
    await store.fetchBalance();
    await expect(store.charge("compose", { idempotencyKey: "k-1" })).resolves.toEqual(receipt(115));
    expect(calls[1]).toEqual({ cmd: "plugin:points|charge", args: { service: "compose", idempotencyKey: "k-1" } });
    expect(store.getSnapshot().balance).toEqual({ ...BALANCE, balance: 115 });
  });

  it("a charge refused for lack of points opens the dialog with its figures", async () => {
    mockPlugin({
      "plugin:points|charge": () => {
        throw INSUFFICIENT;
      },
    });
    const store = newStore();
    await expect(store.charge("compose")).rejects.toBe(INSUFFICIENT);
    const state = store.getSnapshot();
    expect(state.recharge).toEqual({ open: true, service: "compose", required: 5, balance: 2 });
    expect(state.error).toBe(INSUFFICIENT);
  });

  it("other failures are kept in error without opening the dialog (Tauri refusals included)", async () => {
    let error: unknown = { kind: "unauthorized", message: "no session token" };
    mockPlugin({
      "plugin:points|charge": () => {
        throw error;
      },
    });
    const store = newStore();
    await expect(store.charge("compose")).rejects.toBe(error);
    expect(store.getSnapshot()).toMatchObject({ error: { kind: "unauthorized" }, recharge: CLOSED });

    error = "command charge not allowed by ACL";
    await expect(store.charge("compose")).rejects.toBe(error);
    expect(store.getSnapshot()).toMatchObject({ error: "command charge not allowed by ACL", recharge: CLOSED });
  });

  it("checkCost returns the check and refreshes balance.balance", async () => {
    const cost = { service: "video", mode: "duration", required: 300, balance: 90, sufficient: false };
    const calls = mockPlugin({
      "plugin:points|get_balance": () => BALANCE,
      "plugin:points|check_cost": () => cost,
    });
    const store = newStore();
    await store.fetchBalance();
    await expect(store.checkCost("video", 30)).resolves.toEqual(cost);
    expect(calls[1]).toEqual({ cmd: "plugin:points|check_cost", args: { service: "video", duration: 30 } });
    expect(store.getSnapshot().balance).toEqual({ ...BALANCE, balance: 90 });
    expect(store.getSnapshot().recharge.open).toBe(false);
  });

  it("handleError opens the dialog for insufficient points only, and keeps the error", () => {
    const store = newStore();
    expect(store.handleError({ kind: "timeout", message: "slow" })).toBe(false);
    expect(store.getSnapshot()).toMatchObject({ error: { kind: "timeout" }, recharge: CLOSED });
    expect(store.handleError(INSUFFICIENT)).toBe(true);
    expect(store.getSnapshot().recharge).toEqual({ open: true, service: "compose", required: 5, balance: 2 });
    store.handleError(42);
    expect(store.getSnapshot().error).toBeInstanceOf(Error);
  });
});

describe("createPointStore: plugin events", () => {
  it("follows balance-changed, insufficient and pending-changed once started", async () => {
    mockPlugin({ "plugin:points|get_balance": () => BALANCE });
    const store = newStore();
    await store.start();

    await emit("points://balance-changed", { balance: 50, details: null });
    expect(store.getSnapshot().balance).toBeNull();

    const details = { balance: 80, totalRecharged: 300, totalConsumed: 210, totalExpired: 10 };
    await emit("points://balance-changed", { balance: 80, details });
    expect(store.getSnapshot().balance).toEqual(details);

    await emit("points://balance-changed", { balance: 75, details: null });
    expect(store.getSnapshot().balance).toEqual({ ...details, balance: 75 });

    await emit("points://pending-changed", { count: 2 });
    expect(store.getSnapshot().pendingCharges).toBe(2);

    await emit("points://insufficient", { service: "cover_design", required: 2, balance: 1 });
    expect(store.getSnapshot().recharge).toEqual({ open: true, service: "cover_design", required: 2, balance: 1 });
    store.closeRecharge();
    await emit("points://insufficient", { service: null, required: null, balance: null });
    expect(store.getSnapshot().recharge).toEqual({ open: true, service: null, required: null, balance: null });
  });

  it("attaches its listeners once however often start() is called, and dispose() detaches them", async () => {
    mockPlugin();
    const eventCommands = spyEventPlugin();
    const store = newStore();
    await Promise.all([store.start(), store.start()]);
    await store.start();
    expect(eventCommands().filter((c) => c === "plugin:event|listen")).toHaveLength(3);

    store.dispose();
    await emit("points://pending-changed", { count: 4 });
    expect(store.getSnapshot().pendingCharges).toBe(0);
    await vi.waitFor(() => expect(eventCommands().filter((c) => c === "plugin:event|unlisten")).toHaveLength(3));

    await store.start();
    await emit("points://pending-changed", { count: 4 });
    expect(store.getSnapshot().pendingCharges).toBe(4);
  });

  it("dispose() right after start() leaves nothing attached", async () => {
    mockPlugin();
    const store = newStore();
    const starting = store.start();
    store.dispose();
    await starting;
    await emit("points://pending-changed", { count: 3 });
    expect(store.getSnapshot().pendingCharges).toBe(0);
  });

  it("start() rejects when the listeners cannot be attached, and can be tried again", async () => {
    mockIPC(() => {
      throw "event plugin not available";
    });
    const store = newStore();
    await expect(store.start()).rejects.toBe("event plugin not available");
    mockPlugin();
    await store.start();
    await emit("points://pending-changed", { count: 5 });
    expect(store.getSnapshot().pendingCharges).toBe(5);
  });

  it("the start option attaches the listeners at once", async () => {
    mockPlugin();
    const store = newStore({ start: true });
    await store.start();
    await emit("points://pending-changed", { count: 1 });
    expect(store.getSnapshot().pendingCharges).toBe(1);
  });

  it("a store that is not started ignores the events", async () => {
    mockPlugin();
    const store = newStore();
    await emit("points://insufficient", { service: "compose", required: 5, balance: 0 });
    expect(store.getSnapshot().recharge).toEqual(CLOSED);
  });
});

describe("createPointStore: 402 answers of the app's own backend", () => {
  const json = (body: unknown, status: number, type = "application/json") =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": type } });

  it("opens the dialog from a problem+json Response", async () => {
    const store = newStore();
    const response = json(
      { type: "about:blank", title: "Insufficient points", status: 402, code: "insufficient_points", service: "video", required: 300, balance: 120 },
      402,
      "application/problem+json",
    );
    await expect(store.handleBackendResponse(response)).resolves.toBe(true);
    expect(store.getSnapshot().recharge).toEqual({ open: true, service: "video", required: 300, balance: 120 });
    await expect(response.json()).resolves.toMatchObject({ code: "insufficient_points" });
  });

  it("opens the dialog from a FastAPI detail object or string, and from an empty body", async () => {
    const store = newStore();
    await expect(store.handleBackendResponse(json({ detail: { service: "tts", required: 12, balance: 3 } }, 402))).resolves.toBe(true);
    expect(store.getSnapshot().recharge).toEqual({ open: true, service: "tts", required: 12, balance: 3 });

    store.closeRecharge();
    await expect(store.handleBackendResponse(json({ detail: "Insufficient points" }, 402))).resolves.toBe(true);
    expect(store.getSnapshot().recharge).toEqual({ open: true, service: null, required: null, balance: null });

    store.closeRecharge();
    await expect(store.handleBackendResponse(new Response(null, { status: 402 }))).resolves.toBe(true);
    expect(store.getSnapshot().recharge).toEqual({ open: true, service: null, required: null, balance: null });
  });

  it("leaves other statuses alone", async () => {
    const store = newStore();
    const before = store.getSnapshot();
    await expect(store.handleBackendResponse(json({ detail: "forbidden" }, 403))).resolves.toBe(false);
    await expect(store.handleBackendResponse(json({ id: 1 }, 200))).resolves.toBe(false);
    expect(store.handleBackendBody({ required: 5 }, 500)).toBe(false);
    expect(store.getSnapshot()).toBe(before);
  });

  it("takes a parsed body and its status", () => {
    const store = newStore();
    expect(store.handleBackendBody({ code: "insufficient_points", service: "video", required: 40, balance: 2 }, 402)).toBe(true);
    expect(store.getSnapshot().recharge).toEqual({ open: true, service: "video", required: 40, balance: 2 });
    expect(store.handleBackendBody({ detail: { required: 9, balance: 1 } }, 402)).toBe(true);
    expect(store.getSnapshot().recharge).toEqual({ open: true, service: null, required: 9, balance: 1 });
    expect(store.handleBackendBody(undefined, 402)).toBe(true);
    expect(store.getSnapshot().recharge).toEqual({ open: true, service: null, required: null, balance: null });
  });
});

describe("getPointStore", () => {
  it("is one store for the whole app", () => {
    expect(getPointStore()).toBe(getPointStore());
    expect(getPointStore()).not.toBe(newStore());
  });
});
