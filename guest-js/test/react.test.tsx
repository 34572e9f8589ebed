import { act, cleanup, render, screen, waitFor } from "@testing-library/react";
import { emit } from "@tauri-apps/api/event";
import { clearMocks, mockWindows } from "@tauri-apps/api/mocks";
import { StrictMode } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createPointStore, getPointStore, localizedOffline, resetMessages, type PointStore } from "../src";
import { setLocale, useLocale, useLowBalance, useOffline, usePointStore, usePoints, useRecharged } from "../src/react";
import { BALANCE, INSUFFICIENT, OTHER_BALANCE, mockPlugin, pending, refusedCharge } from "./ipc";

let stores: PointStore[] = [];
function newStore(): PointStore {
  const store = createPointStore();
  stores.push(store);
  return store;
}

afterEach(() => {
  cleanup();
  for (const store of stores) store.dispose();
  stores = [];
  getPointStore().dispose();
  setLocale(null);
  resetMessages();
  clearMocks();
});

describe("usePointStore", () => {
  it("re-renders when the store changes, and only then", () => {
    const store = newStore();
    let renders = 0;
    function Dialog() {
      renders++;
      const { recharge } = usePointStore(store);
      return <p data-testid="dialog">{recharge.open ? `need ${recharge.required}` : "closed"}</p>;
    }
    render(<Dialog />);
    expect(screen.getByTestId("dialog").textContent).toBe("closed");
    const initial = renders;

    act(() => store.openRecharge({ required: 7 }));
    expect(screen.getByTestId("dialog").textContent).toBe("need 7");
    expect(renders).toBe(initial + 1);

    act(() => store.openRecharge({ required: 7 }));
    expect(renders).toBe(initial + 1);

    act(() => store.closeRecharge());
    expect(screen.getByTestId("dialog").textContent).toBe("closed");
  });

  it("with a selector, re-renders only when the selected part changes", () => {
    const store = newStore();
    let renders = 0;
    function Pending() {
      renders++;
      const pending = usePointStore(store, (s) => s.pendingCharges);
      return <p data-testid="pending">{pending}</p>;
    }
    render(<Pending />);
    const initial = renders;
    act(() => store.openRecharge());
    expect(renders).toBe(initial);
    expect(screen.getByTestId("pending").textContent).toBe("0");
  });
});

describe("usePoints", () => {
  function Balance({ store }: { store?: PointStore }) {
    const points = usePoints({ store });
    return (
      <div>
        <p data-testid="balance">{points.loading ? "loading" : (points.balance?.balance ?? "none")}</p>
        <p data-testid="recharge">{points.recharge.open ? `recharge ${points.recharge.service}` : "no dialog"}</p>
        <button onClick={() => points.charge("compose").catch(() => undefined)}>compose</button>
      </div>
    );
  }

  it("fetches the balance once on mount (StrictMode too) and follows the plugin's events", async () => {
    mockWindows("main");
    const calls = mockPlugin({ "plugin:points|get_balance": () => BALANCE });
    const store = newStore();
    render(
      <StrictMode>
        <Balance store={store} />
      </StrictMode>,
    );
    await waitFor(() => expect(screen.getByTestId("balance").textContent).toBe("120"));
    expect(calls.filter((c) => c.cmd === "plugin:points|get_balance")).toHaveLength(1);

    // the hook attached the store's listeners itself
    await waitFor(async () => {
      await act(() => emit("points://balance-changed", { balance: 95, summary: { ...BALANCE, balance: 95, totalConsumed: 95, seq: 8 }, seq: 8, session: 1 }));
      expect(screen.getByTestId("balance").textContent).toBe("95");
    });

    await act(() => emit("points://insufficient", { service: "subtitle_burn", required: 2, balance: 0, window: "main" }));
    expect(screen.getByTestId("recharge").textContent).toBe("recharge subtitle_burn");
  });

  it("opens the dialog when a charge made through the hook is refused", async () => {
    mockPlugin({
      "plugin:points|get_balance": () => BALANCE,
      "plugin:points|charge": () => {
        throw INSUFFICIENT;
      },
    });
    render(<Balance store={newStore()} />);
    await waitFor(() => expect(screen.getByTestId("balance").textContent).toBe("120"));
    await act(async () => screen.getByText("compose").click());
    await waitFor(() => expect(screen.getByTestId("recharge").textContent).toBe("recharge compose"));
  });

  it("lists the refused charges and retries or dismisses them through the hook", async () => {
    const first = refusedCharge("compose:job-1", 1_700_000_000);
    const second = refusedCharge("webview:k-2", 1_700_000_100);
    const calls = mockPlugin({
      "plugin:points|get_balance": () => BALANCE,
      "plugin:points|get_pending": () => pending(0, 1, [first, second], true, 2),
      "plugin:points|retry_refused": () => pending(1, 1, [second], true, 2),
      "plugin:points|dismiss_refused": () => pending(1, 1, [], true, 2),
    });
    function Unpaid({ store }: { store: PointStore }) {
      const points = usePoints({ store });
      return (
        <div>
          <p data-testid="others">{points.pendingOtherAccounts}</p>
          <ul>
            {points.refusedCharges.map((r) => (
              <li key={r.idempotencyKey}>
                {r.idempotencyKey}
                <button onClick={() => points.retryRefused(r.idempotencyKey).catch(() => undefined)}>retry {r.idempotencyKey}</button>
                <button onClick={() => points.dismissRefused(r.idempotencyKey).catch(() => undefined)}>dismiss {r.idempotencyKey}</button>
              </li>
            ))}
          </ul>
        </div>
      );
    }
    render(<Unpaid store={newStore()} />);
    await waitFor(() => expect(screen.getAllByRole("listitem")).toHaveLength(2));
    expect(screen.getByTestId("others").textContent).toBe("2");
    await act(async () => screen.getByText("retry compose:job-1").click());
    await waitFor(() => expect(screen.getAllByRole("listitem")).toHaveLength(1));
    await act(async () => screen.getByText("dismiss webview:k-2").click());
    await waitFor(() => expect(screen.queryAllByRole("listitem")).toHaveLength(0));
    expect(calls.filter((c) => c.cmd.endsWith("_refused"))).toEqual([
      { cmd: "plugin:points|retry_refused", args: { idempotencyKey: "compose:job-1" } },
      { cmd: "plugin:points|dismiss_refused", args: { idempotencyKey: "webview:k-2" } },
    ]);
  });

  it("uses the shared store by default", async () => {
    mockPlugin({ "plugin:points|get_balance": () => BALANCE });
    render(<Balance />);
    await waitFor(() => expect(screen.getByTestId("balance").textContent).toBe("120"));
    expect(getPointStore().getSnapshot().balance).toEqual(BALANCE);
    act(() => getPointStore().openRecharge({ service: "cover_design" }));
    expect(screen.getByTestId("recharge").textContent).toBe("recharge cover_design");
  });

  it("after a sign-out shows no balance, and after another account's sign-in shows that account's", async () => {
    let balance = BALANCE;
    const calls = mockPlugin({
      "plugin:points|get_balance": () => balance,
      "plugin:points|get_pending": () => pending(0, 1),
    });
    const store = newStore();
    render(<Balance store={store} />);
    await waitFor(() => expect(screen.getByTestId("balance").textContent).toBe("120"));
    await act(() => store.start());

    await act(() => emit("points://session-changed", { signedIn: false, session: 2 }));
    expect(screen.getByTestId("balance").textContent).toBe("none");
    expect(calls.filter((c) => c.cmd === "plugin:points|get_balance")).toHaveLength(1);

    balance = OTHER_BALANCE;
    await act(() => emit("points://session-changed", { signedIn: true, session: 3 }));
    await waitFor(() => expect(screen.getByTestId("balance").textContent).toBe("3"));
    expect(calls.filter((c) => c.cmd === "plugin:points|get_balance")).toHaveLength(2);
  });

  it("fetches again when the store learns of a new session from an answer, before its announcement", async () => {
    let session = 1;
    mockPlugin({
      "plugin:points|get_balance": () => (session === 1 ? BALANCE : OTHER_BALANCE),
      "plugin:points|get_pending": () => pending(0, session),
      "plugin:points|sync_pending": () => pending(0, session),
    });
    const store = newStore();
    render(<Balance store={store} />);
    await waitFor(() => expect(screen.getByTestId("balance").textContent).toBe("120"));
    await act(() => store.start());

    session = 2;
    await act(() => store.syncPending());
    await waitFor(() => expect(screen.getByTestId("balance").textContent).toBe("3"));
  });
});

describe("useLocale", () => {
  it("re-renders the host's texts and the dialog's when the language changes", () => {
    setLocale("en");
    const store = newStore();
    store.openRecharge({ service: "compose", required: 5, balance: 1 });
    function Dialog() {
      const locale = useLocale();
      const { recharge } = usePointStore(store);
      return (
        <p data-testid="dialog">
          {locale}: {recharge.texts?.title} / {recharge.texts?.message}
        </p>
      );
    }
    render(<Dialog />);
    expect(screen.getByTestId("dialog").textContent).toBe("en: Not enough points / Video composition needs 5; your balance is 1.");
    act(() => {
      setLocale("zh-CN");
    });
    expect(screen.getByTestId("dialog").textContent).toBe("zh-CN: 积分不足 / 视频合成需要 5 积分，当前余额 1 积分。");
  });
});

describe("useRecharged and useLowBalance", () => {
  it("call the latest handler rendered while mounted, and stop at unmount", async () => {
    mockWindows("main");
    mockPlugin({ "plugin:points|get_balance": () => ({ ...BALANCE, balance: 1 }), "plugin:points|get_pending": () => pending(0, 1) });
    const store = newStore();
    const calls: string[] = [];
    function Banner({ name }: { name: string }) {
      const { lowBalance } = usePoints({ store });
      useRecharged((r) => calls.push(`${name} paid ${r.required} with ${r.summary.balance}`), store);
      useLowBalance((low) => calls.push(`${name} below ${low.threshold}`), store);
      return <p data-testid="low">{lowBalance ? `below ${lowBalance.threshold}` : "fine"}</p>;
    }
    const view = render(<Banner name="first" />);
    await waitFor(() => expect(store.getSnapshot().balance?.balance).toBe(1));
    view.rerender(<Banner name="second" />);

    await act(() => emit("points://low-balance", { threshold: 10, balance: 1, session: 1 }));
    expect(screen.getByTestId("low").textContent).toBe("below 10");
    act(() => store.openRecharge({ service: "compose", required: 5, balance: 1 }));
    const paid = { balance: 51, totalRecharged: 250, totalConsumed: 189, totalExpired: 10, seq: 9 };
    await act(() => emit("points://balance-changed", { balance: 51, summary: paid, seq: 9, session: 1 }));
    expect(screen.getByTestId("low").textContent).toBe("fine");
    expect(calls).toEqual(["second below 10", "second paid 5 with 51"]);

    view.unmount();
    const heard = vi.fn();
    store.onLowBalance(heard);
    await emit("points://low-balance", { threshold: 10, balance: 2, session: 1 });
    expect(heard).toHaveBeenCalledTimes(1);
    expect(calls).toHaveLength(2);
  });
});

describe("useOffline", () => {
  it("starts the store, shows its offline state read and followed, and re-renders only when it changes", async () => {
    mockWindows("main");
    const until = "2026-03-01T12:05:00Z";
    mockPlugin({
      "plugin:points|get_pending": () => pending(0, 1),
      "plugin:points|get_offline": () => ({ offline: { remaining: 40, until }, session: 1 }),
    });
    const store = newStore();
    let renders = 0;
    function Banner() {
      renders++;
      const offline = useOffline(store);
      return <p data-testid="offline">{offline ? localizedOffline(offline, "en") : "online"}</p>;
    }
    render(
      <StrictMode>
        <Banner />
      </StrictMode>,
    );
    await waitFor(() => expect(screen.getByTestId("offline").textContent).toMatch(/^Offline — 40 points available until /));

    await act(() => emit("points://offline-changed", { offline: { remaining: 40, until: null }, session: 1 }));
    expect(screen.getByTestId("offline").textContent).toBe("Offline — desktop jobs cannot run until the connection is back");
    const before = renders;
    await act(() => emit("points://pending-changed", { count: 1, session: 1 }));
    expect(renders).toBe(before);
    await act(() => emit("points://offline-changed", { offline: null, session: 1 }));
    expect(screen.getByTestId("offline").textContent).toBe("online");
  });
});
