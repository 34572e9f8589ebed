import { emit } from "@tauri-apps/api/event";
import { clearMocks, mockIPC, mockWindows } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  createPointStore,
  getPointStore,
  idempotencyKeyOf,
  type ChargeOutcome,
  type PendingStatus,
  type PointBalance,
  type PointState,
  type PointStore,
} from "../src";
import { BALANCE, INSUFFICIENT, OTHER_BALANCE, acknowledged, deferred, mockPlugin, pending, receiptOf, refusedCharge } from "./ipc";

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

const CLOSED = { open: false, satisfied: false, service: null, required: null, balance: null, texts: null };

/** The open dialog with these figures (its texts are tested in messages.test.ts). */
function opened(figures: { service: string | null; required: number | null; balance: number | null }) {
  return { open: true, satisfied: false, ...figures, texts: expect.objectContaining({ title: expect.any(String), message: expect.any(String) }) };
}

/** The payload of points://insufficient for INSUFFICIENT, without its window. */
const INSUFFICIENT_EVENT = { service: INSUFFICIENT.service, required: INSUFFICIENT.required, balance: INSUFFICIENT.balance };

/** The answer of `charge` for an acknowledged charge under "k-1". */
function receipt(balance: number, seq: number | null = 8, replayed = false): ChargeOutcome {
  return acknowledged(receiptOf("k-1", balance, seq, replayed));
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
    expect(first).toEqual({
      balance: null,
      lowBalance: null,
      offline: null,
      loading: false,
      error: null,
      pendingCharges: 0,
      pendingOtherAccounts: 0,
      refusedCharges: [],
      session: null,
      signedIn: null,
      recharge: CLOSED,
    });
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
    mockPlugin({ "plugin:points|get_balance": () => ({ ...BALANCE }), "plugin:points|get_pending": () => pending(0, 1) });
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
    const counted = seen.count();
    await emit("points://balance-changed", { balance: BALANCE.balance, summary: { ...BALANCE }, seq: 7, session: 1 });
    await emit("points://balance-changed", { balance: BALANCE.balance, summary: { ...BALANCE }, seq: 7, session: 1 });
    expect(store.getSnapshot()).toBe(settled);
    expect(seen.count()).toBe(counted);
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
  it("a successful charge never mixes its receipt's balance with the old totals: the event's summary shows it", async () => {
    const calls = mockPlugin({
      "plugin:points|get_balance": () => BALANCE,
      "plugin:points|get_pending": () => pending(0, 1),
      "plugin:points|charge": () => receipt(115),
    });
    const store = newStore();
    await store.start();
    await store.fetchBalance();
    await expect(store.charge("compose", { idempotencyKey: "k-1" })).resolves.toEqual(receipt(115));
    expect(calls.find((c) => c.cmd === "plugin:points|charge")).toEqual({
      cmd: "plugin:points|charge",
      args: { service: "compose", idempotencyKey: "k-1" },
    });
    // Until the plugin's summary of the charge arrives, the one shown is whole and unchanged.
    expect(store.getSnapshot().balance).toEqual(BALANCE);
    const after = { balance: 115, totalRecharged: 200, totalConsumed: 75, totalExpired: 10, seq: 8 };
    await emit("points://balance-changed", { balance: 115, summary: after, seq: 8, session: 1 });
    expect(store.getSnapshot().balance).toEqual(after);
  });

  it("a replayed charge leaves the balance alone (its figure is the first charge's)", async () => {
    mockPlugin({
      "plugin:points|get_balance": () => ({ ...BALANCE, seq: null }),
      "plugin:points|charge": () => receipt(60, null, true),
    });
    const store = newStore();
    await store.fetchBalance();
    await store.charge("compose", { idempotencyKey: "k-1" });
    expect(store.getSnapshot().balance).toEqual({ ...BALANCE, seq: null });
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
    expect(state.recharge).toEqual(opened({ service: "compose", required: 5, balance: 2 }));
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

  it("checkCost returns the check; a newer balance in it has the store fetch the whole summary", async () => {
    const cost = { service: "video", mode: "duration", required: 300, balance: 90, sufficient: false, seq: 9 };
    const newer = { balance: 90, totalRecharged: 200, totalConsumed: 100, totalExpired: 10, seq: 9 };
    let summary: PointBalance = BALANCE;
    const calls = mockPlugin({
      "plugin:points|get_balance": () => summary,
      "plugin:points|check_cost": () => cost,
    });
    const store = newStore();
    await store.fetchBalance();
    summary = newer;
    await expect(store.checkCost("video", 30)).resolves.toEqual(cost);
    expect(calls[1]).toEqual({ cmd: "plugin:points|check_cost", args: { service: "video", duration: 30 } });
    await vi.waitFor(() => expect(store.getSnapshot().balance).toEqual(newer));
    expect(calls.map((c) => c.cmd)).toEqual([
      "plugin:points|get_balance",
      "plugin:points|check_cost",
      "plugin:points|get_balance",
    ]);
    expect(store.getSnapshot().recharge.open).toBe(false);

    // A check of the same figure, or an older one, asks for nothing.
    await store.checkCost("video", 30);
    await store.checkCost("video", 30).catch(() => undefined);
    expect(calls.filter((c) => c.cmd === "plugin:points|get_balance")).toHaveLength(2);
  });

  it("handleError opens the dialog for insufficient points only, and keeps the error", () => {
    const store = newStore();
    expect(store.handleError({ kind: "timeout", message: "slow" })).toBe(false);
    expect(store.getSnapshot()).toMatchObject({ error: { kind: "timeout" }, recharge: CLOSED });
    expect(store.handleError(INSUFFICIENT)).toBe(true);
    expect(store.getSnapshot().recharge).toEqual(opened({ service: "compose", required: 5, balance: 2 }));
    store.handleError(42);
    expect(store.getSnapshot().error).toBeInstanceOf(Error);
  });
});

describe("createPointStore: a charge is a job with one key per user action", () => {
  const KEY = /^webview:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  const LOST = { kind: "backend", message: "key reused", status: 422, code: "idempotency_conflict" } as const;

  /** charge answers an acknowledged receipt under the key it was given. */
  const echo = (args: Record<string, unknown>) => acknowledged(receiptOf(String(args.idempotencyKey), 115));

  it("makes a key before the call when none is given, a new one per call; a key given is passed as it is", async () => {
    const calls = mockPlugin({ "plugin:points|charge": echo });
    const store = newStore();
    const first = await store.charge("compose");
    const second = await store.charge("compose", { reference: "clip.mp4" });
    const given = await store.charge("cover_design", { idempotencyKey: "job-7" });

    const keys = calls.map((c) => c.args.idempotencyKey);
    expect(keys[0]).toMatch(KEY);
    expect(keys[1]).toMatch(KEY);
    expect(keys[1]).not.toBe(keys[0]);
    expect(calls).toEqual([
      { cmd: "plugin:points|charge", args: { service: "compose", idempotencyKey: keys[0] } },
      { cmd: "plugin:points|charge", args: { service: "compose", idempotencyKey: keys[1], reference: "clip.mp4" } },
      { cmd: "plugin:points|charge", args: { service: "cover_design", idempotencyKey: "job-7" } },
    ]);
    // The outcome names the key, for a retry of the same action.
    expect([first, second, given].map(idempotencyKeyOf)).toEqual(keys);
  });

  it("an acknowledged charge, replayed or not, leaves the summary to the plugin's event", async () => {
    // A backend without seq: the summary that arrives last is shown.
    let replayed = false;
    mockPlugin({
      "plugin:points|get_balance": () => ({ ...BALANCE, seq: undefined }),
      "plugin:points|get_pending": () => pending(0, 1),
      "plugin:points|charge": (args) => acknowledged(receiptOf(String(args.idempotencyKey), 115, null, replayed)),
    });
    const store = newStore();
    await store.start();
    await store.fetchBalance();
    store.handleError({ kind: "timeout", message: "slow" });
    const outcome = await store.charge("compose");
    expect(outcome).toMatchObject({ status: "acknowledged", receipt: { balance: 115 } });
    expect(store.getSnapshot().balance).toEqual({ ...BALANCE, seq: undefined });
    expect(store.getSnapshot().error).toBeNull();

    // Another charge since; then the same action again, under its key: the ledger replays the receipt.
    const since = { balance: 100, totalRecharged: 200, totalConsumed: 90, totalExpired: 10 };
    await emit("points://balance-changed", { balance: 100, summary: since, seq: null, session: 1 });
    replayed = true;
    await expect(store.charge("compose", { idempotencyKey: idempotencyKeyOf(outcome) })).resolves.toMatchObject({
      receipt: { replayed: true, balance: 115 },
    });
    expect(store.getSnapshot().balance).toEqual(since);
  });

  it("a pending charge resolves without error or dialog, and the pending count is read again", async () => {
    let count = 0;
    const calls = mockPlugin({
      "plugin:points|get_balance": () => BALANCE,
      "plugin:points|get_pending": () => pending(count, 1),
      "plugin:points|charge": (args) => {
        count = 1; // journaled, its answer lost
        return { status: "pending", idempotencyKey: args.idempotencyKey };
      },
    });
    const store = newStore({ webviewLabel: "main" });
    await store.start();
    await store.fetchBalance();
    store.handleError({ kind: "timeout", message: "slow" });

    const outcome = await store.charge("compose");
    expect(outcome).toEqual({ status: "pending", idempotencyKey: calls.find((c) => c.cmd === "plugin:points|charge")?.args.idempotencyKey });
    expect(outcome.status === "pending" && outcome.idempotencyKey).toMatch(KEY);
    expect(store.getSnapshot()).toMatchObject({ error: null, recharge: CLOSED, pendingCharges: 1, balance: BALANCE });
    expect(calls.map((c) => c.cmd).slice(-2)).toEqual(["plugin:points|charge", "plugin:points|get_pending"]);
  });

  it("a refused charge resolves, and the refused charges are read again", async () => {
    let record: ReturnType<typeof refusedCharge>[] = [];
    const calls = mockPlugin({
      "plugin:points|get_pending": () => pending(0, 1, record),
      "plugin:points|charge": (args) => {
        const key = String(args.idempotencyKey);
        record = [{ ...refusedCharge(key, 1_700_000_000), error: LOST }];
        return { status: "refused", idempotencyKey: key, error: LOST };
      },
    });
    const store = newStore({ webviewLabel: "main" });
    await store.start();
    const outcome = await store.charge("compose", { idempotencyKey: "webview:job-9" });
    expect(outcome).toEqual({ status: "refused", idempotencyKey: "webview:job-9", error: LOST });
    expect(store.getSnapshot()).toMatchObject({ error: null, recharge: CLOSED, refusedCharges: record });
    expect(store.getSnapshot().refusedCharges.map((r) => r.idempotencyKey)).toEqual(["webview:job-9"]);
    expect(calls.map((c) => c.cmd)).toEqual(["plugin:points|get_pending", "plugin:points|charge", "plugin:points|get_pending"]);
  });

  it("a charge answered after a sign-out changes nothing, whatever its outcome", async () => {
    const answer = deferred<ChargeOutcome>();
    const calls = mockPlugin({
      "plugin:points|get_pending": () => pending(0, 2, [], false),
      "plugin:points|charge": () => answer.promise,
    });
    const store = newStore();
    await store.start();
    const charging = store.charge("compose");
    await emit("points://session-changed", { signedIn: false, session: 3 });
    await vi.waitFor(() => expect(store.getSnapshot().session).toBe(3));
    const readsBefore = calls.filter((c) => c.cmd === "plugin:points|get_pending").length;
    const signedOut = store.getSnapshot();
    answer.resolve({ status: "pending", idempotencyKey: "k" });
    await charging;
    expect(store.getSnapshot()).toBe(signedOut);
    expect(calls.filter((c) => c.cmd === "plugin:points|get_pending")).toHaveLength(readsBefore);
  });
});

describe("createPointStore: retrying and dismissing refused charges", () => {
  const first = refusedCharge("compose:job-1", 1_700_000_000);
  const second = refusedCharge("webview:k-2", 1_700_000_100);

  it("retryRefused and dismissRefused send the key and show the pending status answered", async () => {
    const calls = mockPlugin({
      "plugin:points|get_pending": () => pending(0, 1, [first, second], true, 3),
      "plugin:points|dismiss_refused": () => pending(0, 1, [second], true, 3),
      "plugin:points|retry_refused": () => pending(1, 1, [], true, 2),
    });
    const store = newStore();
    await store.start();
    expect(store.getSnapshot()).toMatchObject({ pendingCharges: 0, pendingOtherAccounts: 3, refusedCharges: [first, second] });

    await expect(store.dismissRefused("compose:job-1")).resolves.toEqual(pending(0, 1, [second], true, 3));
    expect(store.getSnapshot().refusedCharges).toEqual([second]);

    await store.retryRefused("webview:k-2");
    expect(store.getSnapshot()).toMatchObject({ pendingCharges: 1, pendingOtherAccounts: 2, refusedCharges: [], error: null });
    expect(calls.slice(1)).toEqual([
      { cmd: "plugin:points|dismiss_refused", args: { idempotencyKey: "compose:job-1" } },
      { cmd: "plugin:points|retry_refused", args: { idempotencyKey: "webview:k-2" } },
    ]);
  });

  it("their failure is kept in error; an answer after a change of session is not shown", async () => {
    const late = deferred<PendingStatus>();
    let fail = true;
    mockPlugin({
      "plugin:points|get_pending": () => pending(0, 1, [first]),
      "plugin:points|dismiss_refused": () => {
        if (fail) throw { kind: "invalidArgument", message: "bad key", field: "idempotencyKey" };
        return late.promise;
      },
    });
    const store = newStore();
    await store.start();
    await expect(store.dismissRefused("bad key")).rejects.toMatchObject({ kind: "invalidArgument" });
    expect(store.getSnapshot()).toMatchObject({ error: { kind: "invalidArgument" }, refusedCharges: [first] });

    fail = false;
    const dismissing = store.dismissRefused("compose:job-1");
    await emit("points://session-changed", { signedIn: true, session: 2 });
    await vi.waitFor(() => expect(store.getSnapshot().session).toBe(2));
    const switched = store.getSnapshot();
    late.resolve(pending(4, 1, [], true, 1));
    await dismissing;
    expect(store.getSnapshot()).toBe(switched);
  });

  it("a read sent before a dismissal and answered after it does not bring the refusal back", async () => {
    const stale = deferred<PendingStatus>();
    let slow = false;
    mockPlugin({
      "plugin:points|get_pending": () => (slow ? stale.promise : pending(0, 1, [first, second])),
      "plugin:points|dismiss_refused": () => pending(0, 1, [second]),
    });
    const store = newStore();
    await store.start();
    slow = true;
    const reading = store.fetchPending();
    await store.dismissRefused("compose:job-1");
    stale.resolve(pending(0, 1, [first, second]));
    await reading;
    expect(store.getSnapshot().refusedCharges).toEqual([second]);
  });

  it("a refusal heard while a read is under way stays listed when the read answers without it", async () => {
    const third = refusedCharge("cover_design:job-3", 1_700_000_200);
    const answer = deferred<PendingStatus>();
    let slow = false;
    mockPlugin({ "plugin:points|get_pending": () => (slow ? answer.promise : pending(0, 1, [first])) });
    const store = newStore();
    await store.start();
    slow = true;
    const reading = store.fetchPending();
    await emit("points://charge-refused", third);
    answer.resolve(pending(0, 1, [first]));
    await reading;
    expect(store.getSnapshot().refusedCharges).toEqual([first, third]);
  });

  it("a change of session forgets the other accounts' figure until it is read again", async () => {
    // Signed out, the three charges on this machine are all other accounts'; once one of those
    // accounts signs in, its two are its own.
    let status = pending(0, 1, [], false, 3);
    mockPlugin({ "plugin:points|get_pending": () => status });
    const store = newStore();
    await store.start();
    expect(store.getSnapshot()).toMatchObject({ pendingCharges: 0, pendingOtherAccounts: 3 });

    status = pending(2, 2, [], true, 1);
    const seen: PointState[] = [];
    store.subscribe(() => seen.push(store.getSnapshot()));
    await emit("points://session-changed", { signedIn: true, session: 2 });
    await vi.waitFor(() => expect(store.getSnapshot()).toMatchObject({ pendingCharges: 2, pendingOtherAccounts: 1 }));
    expect(seen[0]).toMatchObject({ session: 2, pendingCharges: 0, pendingOtherAccounts: 0 });
  });
});

describe("createPointStore: plugin events", () => {
  it("follows balance-changed, insufficient and pending-changed once started", async () => {
    mockPlugin({ "plugin:points|get_balance": () => BALANCE, "plugin:points|get_pending": () => pending(0, 1) });
    const store = newStore({ webviewLabel: "main" });
    await store.start();
    expect(store.getSnapshot().session).toBe(1);

    const first = { balance: 50, totalRecharged: 300, totalConsumed: 240, totalExpired: 10, seq: 3 };
    await emit("points://balance-changed", { balance: 50, summary: first, seq: 3, session: 1 });
    expect(store.getSnapshot().balance).toEqual(first);

    // A top-up made elsewhere, then a charge: each summary replaces the whole figure.
    const recharged = { balance: 80, totalRecharged: 330, totalConsumed: 240, totalExpired: 10, seq: 4 };
    await emit("points://balance-changed", { balance: 80, summary: recharged, seq: 4, session: 1 });
    expect(store.getSnapshot().balance).toEqual(recharged);
    const charged = { balance: 75, totalRecharged: 330, totalConsumed: 245, totalExpired: 10, seq: 5 };
    await emit("points://balance-changed", { balance: 75, summary: charged, seq: 5, session: 1 });
    expect(store.getSnapshot().balance).toEqual(charged);
    const { balance, totalRecharged, totalConsumed, totalExpired } = store.getSnapshot().balance!;
    expect(balance).toBe(totalRecharged - totalConsumed - totalExpired);

    await emit("points://pending-changed", { count: 2, session: 1 });
    expect(store.getSnapshot().pendingCharges).toBe(2);

    await emit("points://insufficient", { service: "cover_design", required: 2, balance: 1, window: "main" });
    expect(store.getSnapshot().recharge).toEqual(opened({ service: "cover_design", required: 2, balance: 1 }));
    store.closeRecharge();
    await emit("points://insufficient", { service: null, required: null, balance: null, window: "main" });
    expect(store.getSnapshot().recharge).toEqual(opened({ service: null, required: null, balance: null }));
  });

  it("attaches its listeners once however often start() is called, and dispose() detaches them", async () => {
    mockPlugin();
    const eventCommands = spyEventPlugin();
    const store = newStore();
    await Promise.all([store.start(), store.start()]);
    await store.start();
    expect(eventCommands().filter((c) => c === "plugin:event|listen")).toHaveLength(7);

    store.dispose();
    await emit("points://pending-changed", { count: 4, session: 1 });
    expect(store.getSnapshot().pendingCharges).toBe(0);
    await vi.waitFor(() => expect(eventCommands().filter((c) => c === "plugin:event|unlisten")).toHaveLength(7));

    await store.start();
    await emit("points://pending-changed", { count: 4, session: 1 });
    expect(store.getSnapshot().pendingCharges).toBe(4);
  });

  it("dispose() right after start() leaves nothing attached", async () => {
    mockPlugin();
    const store = newStore();
    const starting = store.start();
    store.dispose();
    await starting;
    await emit("points://pending-changed", { count: 3, session: 1 });
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
    await emit("points://pending-changed", { count: 5, session: 1 });
    expect(store.getSnapshot().pendingCharges).toBe(5);
  });

  it("the start option attaches the listeners at once", async () => {
    mockPlugin();
    const store = newStore({ start: true });
    await store.start();
    await emit("points://pending-changed", { count: 1, session: 1 });
    expect(store.getSnapshot().pendingCharges).toBe(1);
  });

  it("a store that is not started ignores the events", async () => {
    mockPlugin();
    const store = newStore({ webviewLabel: "main" });
    await emit("points://insufficient", { service: "compose", required: 5, balance: 0, window: "main" });
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
    expect(store.getSnapshot().recharge).toEqual(opened({ service: "video", required: 300, balance: 120 }));
    await expect(response.json()).resolves.toMatchObject({ code: "insufficient_points" });
  });

  it("opens the dialog from a FastAPI detail object or string, and from an empty body", async () => {
    const store = newStore();
    await expect(store.handleBackendResponse(json({ detail: { service: "tts", required: 12, balance: 3 } }, 402))).resolves.toBe(true);
    expect(store.getSnapshot().recharge).toEqual(opened({ service: "tts", required: 12, balance: 3 }));

    store.closeRecharge();
    await expect(store.handleBackendResponse(json({ detail: "Insufficient points" }, 402))).resolves.toBe(true);
    expect(store.getSnapshot().recharge).toEqual(opened({ service: null, required: null, balance: null }));

    store.closeRecharge();
    await expect(store.handleBackendResponse(new Response(null, { status: 402 }))).resolves.toBe(true);
    expect(store.getSnapshot().recharge).toEqual(opened({ service: null, required: null, balance: null }));
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
    expect(store.getSnapshot().recharge).toEqual(opened({ service: "video", required: 40, balance: 2 }));
    expect(store.handleBackendBody({ detail: { required: 9, balance: 1 } }, 402)).toBe(true);
    expect(store.getSnapshot().recharge).toEqual(opened({ service: null, required: 9, balance: 1 }));
    expect(store.handleBackendBody(undefined, 402)).toBe(true);
    expect(store.getSnapshot().recharge).toEqual(opened({ service: null, required: null, balance: null }));
  });
});

describe("createPointStore: sessions", () => {
  it("a sign-out empties every store, and a late answer or event of the old session is ignored", async () => {
    let session = 1;
    let late: ReturnType<typeof deferred<PointBalance>> | null = null;
    let latePending: ReturnType<typeof deferred<PendingStatus>> | null = null;
    const calls = mockPlugin({
      "plugin:points|get_balance": () => (late ? late.promise : BALANCE),
      "plugin:points|get_pending": () => {
        if (latePending) {
          const answer = latePending.promise;
          latePending = null;
          return answer;
        }
        return session === 1
          ? pending(2, 1, [refusedCharge("compose:job-1", 1_700_000_000)])
          : pending(0, session, [], false);
      },
    });
    const main = newStore({ webviewLabel: "main" });
    const second = newStore({ webviewLabel: "second" });
    for (const store of [main, second]) {
      await store.start();
      await store.fetchBalance();
      store.openRecharge({ service: "compose", required: 5, balance: 2 });
      store.handleError({ kind: "timeout", message: "slow" });
      expect(store.getSnapshot()).toMatchObject({ balance: BALANCE, pendingCharges: 2, session: 1, recharge: { open: true } });
      expect(store.getSnapshot().refusedCharges).toHaveLength(1);
    }

    // A fetch of the old account is under way when the user signs out.
    late = deferred<PointBalance>();
    const stalePending = deferred<PendingStatus>();
    latePending = stalePending;
    const stale = main.fetchBalance();
    const pendingRead = main.fetchPending();
    session = 2;
    await emit("points://session-changed", { signedIn: false, session: 2 });

    for (const store of [main, second]) {
      await vi.waitFor(() => expect(store.getSnapshot().session).toBe(2));
      expect(store.getSnapshot()).toEqual({
        balance: null,
        lowBalance: null,
        offline: null,
        loading: false,
        error: null,
        pendingCharges: 0,
        pendingOtherAccounts: 0,
        refusedCharges: [],
        session: 2,
        signedIn: false,
        recharge: CLOSED,
      });
    }
    const settled = main.getSnapshot();

    // The old account's answers and events come in late: nothing of them is shown.
    late.resolve(BALANCE);
    await expect(stale).resolves.toEqual(BALANCE);
    stalePending.resolve(pending(2, 1, [refusedCharge("compose:job-1", 1_700_000_000)]));
    await pendingRead;
    await emit("points://balance-changed", { balance: 115, summary: { ...BALANCE, balance: 115, seq: 9 }, seq: 9, session: 1 });
    await emit("points://session-changed", { signedIn: true, session: 1 });
    expect(main.getSnapshot()).toBe(settled);
    expect(second.getSnapshot().balance).toBeNull();
    // Signed out: the balance is not read again (it could only fail).
    expect(calls.filter((c) => c.cmd === "plugin:points|get_balance")).toHaveLength(3);
  });

  it("a call of the old session that fails after the sign-out leaves the new state alone", async () => {
    const refusal = deferred<ChargeOutcome>();
    mockPlugin({
      "plugin:points|get_pending": () => pending(0, 1),
      "plugin:points|charge": () => refusal.promise,
    });
    const store = newStore({ webviewLabel: "main" });
    await store.start();
    const charging = store.charge("compose");
    await emit("points://session-changed", { signedIn: false, session: 2 });
    const signedOut = store.getSnapshot();
    refusal.reject(INSUFFICIENT);
    await expect(charging).rejects.toBe(INSUFFICIENT);
    expect(store.getSnapshot()).toBe(signedOut);
    expect(signedOut).toMatchObject({ error: null, recharge: CLOSED, session: 2 });
  });

  it("a sign-in of another account reads its balance and pending charges", async () => {
    let balance = BALANCE;
    let status = pending(1, 1);
    const calls = mockPlugin({
      "plugin:points|get_balance": () => balance,
      "plugin:points|get_pending": () => status,
    });
    const store = newStore();
    await store.start();
    await store.fetchBalance();
    expect(store.getSnapshot()).toMatchObject({ balance: BALANCE, pendingCharges: 1, session: 1 });

    balance = OTHER_BALANCE;
    status = pending(0, 2);
    const seen: PointState[] = [];
    store.subscribe(() => seen.push(store.getSnapshot()));
    await emit("points://session-changed", { signedIn: true, session: 2 });
    await vi.waitFor(() => expect(store.getSnapshot().balance).toEqual(OTHER_BALANCE));
    // The old account's figures were never shown with the new session.
    expect(seen[0]).toMatchObject({ balance: null, pendingCharges: 0, session: 2, signedIn: true });
    expect(seen.filter((state) => state.balance === store.getSnapshot().balance || state.balance === null)).toEqual(seen);
    expect(calls.map((c) => c.cmd)).toEqual([
      "plugin:points|get_pending",
      "plugin:points|get_balance",
      "plugin:points|get_balance",
      "plugin:points|get_pending",
    ]);
  });

  it("an answer of a newer session empties the store before it is applied, once", async () => {
    let status = pending(0, 1);
    const calls = mockPlugin({
      "plugin:points|get_balance": () => OTHER_BALANCE,
      "plugin:points|get_pending": () => status,
      "plugin:points|sync_pending": () => status,
    });
    const store = newStore({ initialBalance: BALANCE });
    await store.start();
    expect(store.getSnapshot()).toMatchObject({ balance: BALANCE, session: 1 });

    // The answer tells of session 2 (signed in) before its announcement arrives: the old
    // account's balance goes at once and the new one's is read.
    status = pending(3, 2);
    await expect(store.syncPending()).resolves.toEqual(status);
    expect(store.getSnapshot()).toMatchObject({ pendingCharges: 3, session: 2, signedIn: true });
    expect(store.getSnapshot().balance).not.toEqual(BALANCE);
    await vi.waitFor(() => expect(store.getSnapshot().balance).toEqual(OTHER_BALANCE));

    // The announcement of session 2 empties nothing more.
    await emit("points://session-changed", { signedIn: true, session: 2 });
    expect(store.getSnapshot()).toMatchObject({ pendingCharges: 3, balance: OTHER_BALANCE });
    expect(calls.filter((c) => c.cmd === "plugin:points|get_pending")).toHaveLength(1);
  });
});

describe("createPointStore: ordered balances", () => {
  /** A whole summary of `balance` at `seq` (10 expired, what is left consumed). */
  const summaryOf = (balance: number, seq?: number): PointBalance => ({
    balance,
    totalRecharged: 200,
    totalConsumed: 190 - balance,
    totalExpired: 10,
    ...(seq === undefined ? {} : { seq }),
  });

  it("a summary with an older seq never replaces a newer one, whatever brings it", async () => {
    let fetched: PointBalance = BALANCE; // seq 7
    const cost = { service: "compose", mode: "fixed", required: 5, balance: 130, sufficient: true, seq: 6 };
    const calls = mockPlugin({
      "plugin:points|get_balance": () => fetched,
      "plugin:points|get_pending": () => pending(0, 1),
      "plugin:points|check_cost": () => cost,
    });
    const store = newStore();
    await store.start();
    await store.fetchBalance();
    await emit("points://balance-changed", { balance: 115, summary: summaryOf(115, 9), seq: 9, session: 1 });
    expect(store.getSnapshot().balance).toEqual(summaryOf(115, 9));

    // An event, a fetch and a price check that all predate it.
    await emit("points://balance-changed", { balance: 120, summary: BALANCE, seq: 7, session: 1 });
    fetched = summaryOf(118, 8);
    await store.fetchBalance();
    await store.checkCost("compose");
    expect(store.getSnapshot()).toMatchObject({ balance: summaryOf(115, 9), loading: false, error: null });
    expect(calls.filter((c) => c.cmd === "plugin:points|get_balance")).toHaveLength(2);

    // Newer summaries are shown.
    await emit("points://balance-changed", { balance: 110, summary: summaryOf(110, 10), seq: 10, session: 1 });
    expect(store.getSnapshot().balance).toEqual(summaryOf(110, 10));
    fetched = summaryOf(108, 11);
    await store.fetchBalance();
    expect(store.getSnapshot().balance).toEqual(fetched);
  });

  it("without a seq on either side, the summary that arrives last is shown", async () => {
    mockPlugin({
      "plugin:points|get_balance": () => ({ ...BALANCE, seq: undefined }),
      "plugin:points|get_pending": () => pending(0, 1),
    });
    const store = newStore();
    await store.start();
    await store.fetchBalance();
    await emit("points://balance-changed", { balance: 130, summary: summaryOf(130, 3), seq: 3, session: 1 });
    expect(store.getSnapshot().balance).toEqual(summaryOf(130, 3));
    await emit("points://balance-changed", { balance: 125, summary: summaryOf(125), seq: null, session: 1 });
    expect(store.getSnapshot().balance).toEqual(summaryOf(125));
  });

  it("a figure without its summary (an older plugin's event) is fetched whole, never merged", async () => {
    const newer = summaryOf(95, 8);
    let fetched: PointBalance = BALANCE;
    const calls = mockPlugin({
      "plugin:points|get_balance": () => fetched,
      "plugin:points|get_pending": () => pending(0, 1),
    });
    const store = newStore();
    await store.start();
    await store.fetchBalance();
    fetched = newer;
    await emit("points://balance-changed", { balance: 95, details: null, seq: 8, session: 1 });
    await vi.waitFor(() => expect(store.getSnapshot().balance).toEqual(newer));
    expect(calls.filter((c) => c.cmd === "plugin:points|get_balance")).toHaveLength(2);
    // Its fetch's event carries the summary as `details`: shown as it is.
    await emit("points://balance-changed", { balance: 90, details: summaryOf(90, 9), seq: 9, session: 1 });
    expect(store.getSnapshot().balance).toEqual(summaryOf(90, 9));
    expect(calls.filter((c) => c.cmd === "plugin:points|get_balance")).toHaveLength(2);
  });
});

describe("createPointStore: one recharge dialog per refusal", () => {
  /** Counts the openings of the dialog, closing it at once each time (as a user would). */
  function countOpenings(store: PointStore): () => number {
    let openings = 0;
    store.subscribe(() => {
      if (store.getSnapshot().recharge.open) {
        openings++;
        store.closeRecharge();
      }
    });
    return () => openings;
  }

  const REFUSAL = { service: "compose", required: 5, balance: 2 };

  it("an insufficient event opens the dialog only in the window it names", async () => {
    mockPlugin();
    const main = newStore({ webviewLabel: "main" });
    const second = newStore({ webviewLabel: "second" });
    await Promise.all([main.start(), second.start()]);

    await emit("points://insufficient", { ...REFUSAL, window: "second" });
    expect(main.getSnapshot().recharge).toEqual(CLOSED);
    expect(second.getSnapshot().recharge).toEqual(opened(REFUSAL));

    second.closeRecharge();
    await emit("points://insufficient", { ...REFUSAL, window: null });
    expect(main.getSnapshot().recharge).toEqual(CLOSED);
    expect(second.getSnapshot().recharge).toEqual(CLOSED);
  });

  it("takes its label from the current webview by default", async () => {
    mockWindows("second", "main");
    mockPlugin();
    const store = newStore();
    await store.start();
    await emit("points://insufficient", { ...REFUSAL, window: "main" });
    expect(store.getSnapshot().recharge).toEqual(CLOSED);
    await emit("points://insufficient", { ...REFUSAL, window: "second" });
    expect(store.getSnapshot().recharge).toEqual(opened(REFUSAL));
  });

  it("a refused charge reported by its event first and its rejection then opens the dialog once", async () => {
    mockPlugin({
      "plugin:points|charge": async () => {
        await emit("points://insufficient", { ...INSUFFICIENT_EVENT, window: "main" });
        throw INSUFFICIENT;
      },
    });
    const store = newStore({ webviewLabel: "main" });
    await store.start();
    const openings = countOpenings(store);
    await expect(store.charge("compose")).rejects.toBe(INSUFFICIENT);
    expect(openings()).toBe(1);
    expect(store.getSnapshot().error).toBe(INSUFFICIENT);

    // Another refusal opens it again.
    await expect(store.charge("compose")).rejects.toBe(INSUFFICIENT);
    expect(openings()).toBe(2);
  });

  it("a refusal reported by its rejection first and its event then opens the dialog once", async () => {
    mockPlugin({
      "plugin:points|charge": () => {
        throw INSUFFICIENT;
      },
    });
    const main = newStore({ webviewLabel: "main" });
    const second = newStore({ webviewLabel: "second" });
    await Promise.all([main.start(), second.start()]);
    const openings = countOpenings(main);
    const openingsElsewhere = countOpenings(second);

    await expect(main.charge("compose")).rejects.toBe(INSUFFICIENT);
    await emit("points://insufficient", { ...INSUFFICIENT_EVENT, window: "main" });
    expect(openings()).toBe(1);

    // handleError of a direct command call: the same.
    main.handleError(INSUFFICIENT);
    await emit("points://insufficient", { ...INSUFFICIENT_EVENT, window: "main" });
    expect(openings()).toBe(2);
    expect(openingsElsewhere()).toBe(0);

    // A refusal of the app's own backend has no event: it opens the dialog every time.
    expect(main.handleBackendBody({ required: 5, balance: 2 }, 402)).toBe(true);
    expect(main.handleBackendBody({ required: 5, balance: 2 }, 402)).toBe(true);
    expect(openings()).toBe(4);
  });
});

describe("createPointStore: pending and refused charges", () => {
  it("reads them at start, so a restart with charges pending shows them at once", async () => {
    const refused = refusedCharge("compose:job-1", 1_700_000_000);
    mockPlugin({ "plugin:points|get_pending": () => pending(3, 4, [refused]) });
    const store = newStore();
    await store.start();
    expect(store.getSnapshot()).toMatchObject({ pendingCharges: 3, refusedCharges: [refused], session: 4, error: null });
  });

  it("ignores a pending count of an earlier session", async () => {
    mockPlugin({ "plugin:points|get_pending": () => pending(2, 3) });
    const store = newStore();
    await store.start();
    expect(store.getSnapshot()).toMatchObject({ pendingCharges: 2, session: 3, signedIn: true });

    // Emitted for the last user just before they signed out, heard after.
    await emit("points://pending-changed", { count: 9, session: 2 });
    expect(store.getSnapshot().pendingCharges).toBe(2);
    await emit("points://pending-changed", { count: 1, session: 3 });
    expect(store.getSnapshot().pendingCharges).toBe(1);
  });

  it("follows pending-changed and charge-refused, without listing a refusal twice", async () => {
    const first = refusedCharge("compose:job-1", 1_700_000_000);
    const second = refusedCharge("cover_design:job-2", 1_700_000_100);
    let record = [first];
    mockPlugin({ "plugin:points|get_pending": () => pending(record.length === 1 ? 1 : 0, 1, record) });
    const store = newStore();
    await store.start();

    await emit("points://pending-changed", { count: 0, session: 1 });
    record = [first, second];
    await emit("points://charge-refused", second);
    await emit("points://charge-refused", second);
    expect(store.getSnapshot()).toMatchObject({ pendingCharges: 0, refusedCharges: [first, second] });

    // A read that answers what the store already shows keeps the same list.
    const listed = store.getSnapshot().refusedCharges;
    await store.fetchPending();
    expect(store.getSnapshot().refusedCharges).toBe(listed);
  });

  it("syncPending sends them now and shows what is left; its failure is kept in error", async () => {
    let fail = false;
    const calls = mockPlugin({
      "plugin:points|get_pending": () => pending(2, 1),
      "plugin:points|sync_pending": () => {
        if (fail) throw "command sync_pending not allowed by ACL";
        return pending(0, 1);
      },
    });
    const store = newStore();
    await store.start();
    expect(store.getSnapshot().pendingCharges).toBe(2);
    await expect(store.syncPending()).resolves.toEqual(pending(0, 1));
    expect(store.getSnapshot().pendingCharges).toBe(0);
    expect(calls.map((c) => c.cmd)).toEqual(["plugin:points|get_pending", "plugin:points|sync_pending"]);

    fail = true;
    await expect(store.syncPending()).rejects.toBe("command sync_pending not allowed by ACL");
    expect(store.getSnapshot().error).toBe("command sync_pending not allowed by ACL");
  });
});

describe("getPointStore", () => {
  it("is one store for the whole app", () => {
    expect(getPointStore()).toBe(getPointStore());
    expect(getPointStore()).not.toBe(newStore());
  });
});
