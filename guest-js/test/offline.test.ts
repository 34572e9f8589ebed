// The store's offline state: read at start and at every session, followed by its event, of the
// session shown only; and the offline refusals, which are no lack of points.
import { emit } from "@tauri-apps/api/event";
import { clearMocks } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createPointStore, type OfflineAllowance, type OfflineStatus, type PointStore } from "../src";
import { BALANCE, ONE_OFFLINE_ERROR_OF_EACH_KIND, deferred, mockPlugin, pending } from "./ipc";

let stores: PointStore[] = [];
function newStore(): PointStore {
  const store = createPointStore({ webviewLabel: "main" });
  stores.push(store);
  return store;
}

afterEach(() => {
  for (const store of stores) store.dispose();
  stores = [];
  clearMocks();
});

const CLOSED = { open: false, satisfied: false, service: null, required: null, balance: null, texts: null };
const AWAY: OfflineAllowance = { remaining: 40, until: "2026-03-01T12:05:00Z" };

const offlineChanged = (offline: OfflineAllowance | null, session = 1) =>
  emit("points://offline-changed", { offline, session } satisfies OfflineStatus);

describe("the store's offline state", () => {
  it("is read at start and shown, without calling the offline listeners", async () => {
    const calls = mockPlugin({
      "plugin:points|get_pending": () => pending(0, 1),
      "plugin:points|get_offline": () => ({ offline: AWAY, session: 1 }),
    });
    const store = newStore();
    const heard = vi.fn();
    store.onOffline(heard);
    expect(store.getSnapshot().offline).toBeNull();
    await store.start();
    await vi.waitFor(() => expect(store.getSnapshot().offline).toEqual(AWAY));
    expect(Object.isFrozen(store.getSnapshot().offline)).toBe(true);
    expect(heard).not.toHaveBeenCalled();
    expect(calls.filter((c) => c.cmd === "plugin:points|get_offline")).toEqual([{ cmd: "plugin:points|get_offline", args: {} }]);
  });

  it("follows points://offline-changed, telling its listeners, until the ledger is back", async () => {
    mockPlugin({
      "plugin:points|get_pending": () => pending(0, 1),
      "plugin:points|get_offline": () => ({ offline: null, session: 1 }),
    });
    const store = newStore();
    await store.start();
    const heard = vi.fn();
    const stop = store.onOffline(heard);

    await offlineChanged(AWAY);
    const shown = store.getSnapshot().offline;
    expect(shown).toEqual(AWAY);
    // The same figures again: the same object (no new render), the listeners told all the same.
    await offlineChanged({ ...AWAY });
    expect(store.getSnapshot().offline).toBe(shown);
    // A job spent some of it; then no usable allowance; then the ledger is reachable again.
    await offlineChanged({ remaining: 35, until: AWAY.until });
    expect(store.getSnapshot().offline).toEqual({ remaining: 35, until: AWAY.until });
    await offlineChanged({ remaining: 35, until: null });
    expect(store.getSnapshot().offline).toEqual({ remaining: 35, until: null });
    await offlineChanged(null);
    expect(store.getSnapshot().offline).toBeNull();
    expect(heard.mock.calls).toEqual([[AWAY], [AWAY], [{ remaining: 35, until: AWAY.until }], [{ remaining: 35, until: null }], [null]]);

    stop();
    await offlineChanged(AWAY);
    expect(heard).toHaveBeenCalledTimes(5);
    expect(store.getSnapshot().offline).toEqual(AWAY);
  });

  it("drops the payload of another session; one of a newer session empties the store first", async () => {
    mockPlugin({
      "plugin:points|get_balance": () => BALANCE,
      "plugin:points|get_pending": () => pending(0, 2),
      "plugin:points|get_offline": () => ({ offline: null, session: 2 }),
    });
    const store = newStore();
    await store.start();
    await store.fetchBalance();
    expect(store.getSnapshot().session).toBe(2);
    const heard = vi.fn();
    store.onOffline(heard);

    await offlineChanged(AWAY, 1);
    expect(store.getSnapshot().offline).toBeNull();
    expect(heard).not.toHaveBeenCalled();

    await offlineChanged(AWAY, 2);
    expect(store.getSnapshot().offline).toEqual(AWAY);
    await offlineChanged(null, 1);
    expect(store.getSnapshot().offline).toEqual(AWAY);

    // A newer session's payload: the old session's figures go, its own offline state is shown.
    await offlineChanged({ remaining: 9, until: null }, 3);
    expect(store.getSnapshot()).toMatchObject({ session: 3, balance: null, offline: { remaining: 9, until: null } });
    expect(heard.mock.calls).toEqual([[AWAY], [{ remaining: 9, until: null }]]);
  });

  it("is forgotten and read again at every change of session (not while signed out)", async () => {
    const answers: Record<number, OfflineStatus> = {
      1: { offline: AWAY, session: 1 },
      3: { offline: { remaining: 7, until: null }, session: 3 },
    };
    let session = 1;
    const calls = mockPlugin({
      "plugin:points|get_balance": () => BALANCE,
      "plugin:points|get_pending": () => pending(0, session, [], session !== 2),
      "plugin:points|get_offline": () => answers[session],
    });
    const store = newStore();
    await store.start();
    await vi.waitFor(() => expect(store.getSnapshot().offline).toEqual(AWAY));

    session = 2;
    await emit("points://session-changed", { signedIn: false, session: 2 });
    expect(store.getSnapshot()).toMatchObject({ session: 2, offline: null });

    session = 3;
    await emit("points://session-changed", { signedIn: true, session: 3 });
    await vi.waitFor(() => expect(store.getSnapshot().offline).toEqual({ remaining: 7, until: null }));
    // At start, then at the sign-in only: none while signed out.
    expect(calls.filter((c) => c.cmd === "plugin:points|get_offline")).toHaveLength(2);
  });

  it("a read answered after an event does not replace what the event said; one of an old session is dropped", async () => {
    const first = deferred<OfflineStatus>();
    const second = deferred<OfflineStatus>();
    const third = deferred<OfflineStatus>();
    const reads = [first.promise, second.promise, third.promise];
    mockPlugin({
      "plugin:points|get_pending": () => pending(0, 1),
      "plugin:points|get_offline": () => reads.shift(),
    });
    const store = newStore();
    await store.start();
    await offlineChanged({ remaining: 30, until: AWAY.until });
    first.resolve({ offline: AWAY, session: 1 });
    await first.promise;
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(store.getSnapshot().offline).toEqual({ remaining: 30, until: AWAY.until });

    // The read sent at the change to session 2, answered by the plugin still of session 1.
    await emit("points://session-changed", { signedIn: true, session: 2 });
    second.resolve({ offline: AWAY, session: 1 });
    await second.promise;
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(store.getSnapshot()).toMatchObject({ session: 2, offline: null });

    // An event of an old session, dropped, does not void the read of the session shown.
    await emit("points://session-changed", { signedIn: true, session: 3 });
    await offlineChanged(AWAY, 2);
    third.resolve({ offline: { remaining: 5, until: null }, session: 3 });
    await vi.waitFor(() => expect(store.getSnapshot()).toMatchObject({ session: 3, offline: { remaining: 5, until: null } }));
  });
});

describe("the offline refusals", () => {
  it("are kept in error and never open the recharge dialog, from a charge or handed over", async () => {
    let refusal: unknown = null;
    mockPlugin({
      "plugin:points|get_pending": () => pending(0, 1),
      "plugin:points|charge": () => {
        throw refusal;
      },
    });
    const store = newStore();
    await store.start();
    for (const error of ONE_OFFLINE_ERROR_OF_EACH_KIND) {
      refusal = error;
      await expect(store.charge("compose"), error.kind).rejects.toEqual(error);
      expect(store.getSnapshot().error, error.kind).toEqual(error);
      expect(store.getSnapshot().recharge, error.kind).toEqual(CLOSED);
      store.clearError();

      expect(store.handleError(error), error.kind).toBe(false);
      expect(store.getSnapshot().recharge, error.kind).toEqual(CLOSED);
    }
  });
});
