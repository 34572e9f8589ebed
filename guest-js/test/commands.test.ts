import { clearMocks } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  COMMANDS,
  charge,
  checkCost,
  clearSessionToken,
  dismissRefused,
  getBalance,
  getOffline,
  getPending,
  getPrices,
  idempotencyKeyOf,
  listBatches,
  listTransactions,
  newIdempotencyKey,
  retryRefused,
  setSessionToken,
  syncPending,
  type Batch,
  type ChargeOutcome,
  type ChargeReceipt,
  type CostCheck,
  type OfflineStatus,
  type PriceList,
  type TransactionPage,
} from "../src";
import { BALANCE, mockPlugin, pending, refusedCharge } from "./ipc";

afterEach(() => {
  vi.unstubAllGlobals();
  clearMocks();
});

const COST: CostCheck = { service: "video", mode: "duration", required: 300, balance: 120, sufficient: false, seq: 7 };
const RECEIPT: ChargeReceipt = {
  transactionId: "t-1",
  service: "compose",
  points: 5,
  balance: 115,
  replayed: false,
  idempotencyKey: "job-42",
  seq: 8,
};
const OUTCOME: ChargeOutcome = { status: "acknowledged", receipt: RECEIPT };
const PRICES: PriceList = {
  services: [{ service: "tts", mode: "duration", points: null, pointsPerSecond: 1 }],
};
const PAGE: TransactionPage = {
  items: [
    {
      id: "t-1",
      kind: "consume",
      points: -5,
      balanceAfter: 115,
      service: "compose",
      idempotencyKey: "job-42",
      reference: null,
      createdAt: "2026-01-01T00:00:00Z",
    },
  ],
  nextCursor: "c-2",
};
const BATCHES: Batch[] = [{ id: "b-1", points: 200, remaining: 115, expiresAt: "2026-05-03T00:00:00Z", createdAt: "2026-01-01T00:00:00Z" }];

describe("command wrappers", () => {
  it("get_balance: no arguments, returns the balance", async () => {
    const calls = mockPlugin({ "plugin:points|get_balance": () => BALANCE });
    await expect(getBalance()).resolves.toEqual(BALANCE);
    expect(calls).toEqual([{ cmd: "plugin:points|get_balance", args: {} }]);
  });

  it("get_offline: no arguments, returns the offline state of the session", async () => {
    expect(COMMANDS.getOffline).toBe("plugin:points|get_offline");
    const away: OfflineStatus = { offline: { remaining: 40, until: "2026-03-01T12:00:00Z" }, session: 2 };
    const answers: OfflineStatus[] = [away, { offline: null, session: 2 }];
    const calls = mockPlugin({ "plugin:points|get_offline": () => answers.shift() });
    await expect(getOffline()).resolves.toEqual(away);
    await expect(getOffline()).resolves.toEqual({ offline: null, session: 2 });
    expect(calls).toEqual([
      { cmd: "plugin:points|get_offline", args: {} },
      { cmd: "plugin:points|get_offline", args: {} },
    ]);
  });

  it("check_cost: service, and duration only when given", async () => {
    const calls = mockPlugin({ "plugin:points|check_cost": () => COST });
    await expect(checkCost("video", 30)).resolves.toEqual(COST);
    await checkCost("compose");
    expect(calls).toEqual([
      { cmd: "plugin:points|check_cost", args: { service: "video", duration: 30 } },
      { cmd: "plugin:points|check_cost", args: { service: "compose" } },
    ]);
  });

  it("charge: service, idempotencyKey and reference in camelCase", async () => {
    const calls = mockPlugin({ "plugin:points|charge": () => OUTCOME });
    await expect(charge("compose", { idempotencyKey: "job-42", reference: "clip.mp4" })).resolves.toEqual(OUTCOME);
    await charge("cover_design");
    await charge("subtitle_burn", { reference: "r", idempotencyKey: undefined });
    expect(calls).toEqual([
      { cmd: "plugin:points|charge", args: { service: "compose", idempotencyKey: "job-42", reference: "clip.mp4" } },
      { cmd: "plugin:points|charge", args: { service: "cover_design" } },
      { cmd: "plugin:points|charge", args: { service: "subtitle_burn", reference: "r" } },
    ]);
  });

  it("charge: resolves with every outcome as the plugin answers it; pending and refused are not rejections", async () => {
    const outcomes: ChargeOutcome[] = [
      OUTCOME,
      { status: "pending", idempotencyKey: "job-43" },
      { status: "refused", idempotencyKey: "job-44", error: { kind: "backend", message: "key reused", status: 422, code: "idempotency_conflict" } },
    ];
    const answers = [...outcomes];
    mockPlugin({ "plugin:points|charge": () => answers.shift() });
    for (const outcome of outcomes) await expect(charge("compose", { idempotencyKey: "k" })).resolves.toEqual(outcome);
    expect(outcomes.map(idempotencyKeyOf)).toEqual(["job-42", "job-43", "job-44"]);
  });

  it("retry_refused and dismiss_refused: the idempotencyKey, and return the pending status", async () => {
    expect(COMMANDS).toMatchObject({
      retryRefused: "plugin:points|retry_refused",
      dismissRefused: "plugin:points|dismiss_refused",
    });
    const calls = mockPlugin({
      "plugin:points|retry_refused": () => pending(1, 3),
      "plugin:points|dismiss_refused": () => pending(0, 3, [], true, 2),
    });
    await expect(retryRefused("compose:job-1")).resolves.toEqual(pending(1, 3));
    await expect(dismissRefused("webview:k-2")).resolves.toEqual(pending(0, 3, [], true, 2));
    expect(calls).toEqual([
      { cmd: "plugin:points|retry_refused", args: { idempotencyKey: "compose:job-1" } },
      { cmd: "plugin:points|dismiss_refused", args: { idempotencyKey: "webview:k-2" } },
    ]);
  });

  it("newIdempotencyKey: a new webview key each time, random hex where crypto.randomUUID is missing", () => {
    const a = newIdempotencyKey();
    const b = newIdempotencyKey();
    expect(a).toMatch(/^webview:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(b).not.toBe(a);

    const getRandomValues = globalThis.crypto.getRandomValues.bind(globalThis.crypto);
    vi.stubGlobal("crypto", { getRandomValues });
    const c = newIdempotencyKey();
    expect(c).toMatch(/^webview:[0-9a-f]{32}$/);
    expect(newIdempotencyKey()).not.toBe(c);
    vi.stubGlobal("crypto", undefined);
    expect(newIdempotencyKey()).toMatch(/^webview:[0-9a-f]{32}$/);
  });

  it("get_prices and list_batches: no arguments", async () => {
    const calls = mockPlugin({
      "plugin:points|get_prices": () => PRICES,
      "plugin:points|list_batches": () => BATCHES,
    });
    await expect(getPrices()).resolves.toEqual(PRICES);
    await expect(listBatches()).resolves.toEqual(BATCHES);
    expect(calls).toEqual([
      { cmd: "plugin:points|get_prices", args: {} },
      { cmd: "plugin:points|list_batches", args: {} },
    ]);
  });

  it("list_transactions: limit and before only when given", async () => {
    const calls = mockPlugin({ "plugin:points|list_transactions": () => PAGE });
    await expect(listTransactions({ limit: 20, before: "c-1" })).resolves.toEqual(PAGE);
    await listTransactions();
    await listTransactions({ limit: 5 });
    expect(calls).toEqual([
      { cmd: "plugin:points|list_transactions", args: { limit: 20, before: "c-1" } },
      { cmd: "plugin:points|list_transactions", args: {} },
      { cmd: "plugin:points|list_transactions", args: { limit: 5 } },
    ]);
  });

  it("set_session_token (accountId only when given) / clear_session_token resolve to undefined", async () => {
    const calls = mockPlugin({
      "plugin:points|set_session_token": () => null,
      "plugin:points|clear_session_token": () => null,
    });
    await expect(setSessionToken("tok-1")).resolves.toBeUndefined();
    await expect(setSessionToken("tok-2", { accountId: "acct-9" })).resolves.toBeUndefined();
    await expect(clearSessionToken()).resolves.toBeUndefined();
    expect(calls).toEqual([
      { cmd: "plugin:points|set_session_token", args: { token: "tok-1" } },
      { cmd: "plugin:points|set_session_token", args: { token: "tok-2", accountId: "acct-9" } },
      { cmd: "plugin:points|clear_session_token", args: {} },
    ]);
  });

  it("get_pending and sync_pending: no arguments, return the pending status", async () => {
    const status = pending(2, 3, [refusedCharge("compose:job-1", 1_700_000_000)]);
    const calls = mockPlugin({
      "plugin:points|get_pending": () => status,
      "plugin:points|sync_pending": () => pending(0, 3),
    });
    await expect(getPending()).resolves.toEqual(status);
    await expect(syncPending()).resolves.toEqual(pending(0, 3));
    expect(calls).toEqual([
      { cmd: "plugin:points|get_pending", args: {} },
      { cmd: "plugin:points|sync_pending", args: {} },
    ]);
  });

  it("passes the plugin's rejection through unchanged", async () => {
    const error = { kind: "unauthorized", message: "no session token" };
    mockPlugin({
      "plugin:points|get_balance": () => {
        throw error;
      },
    });
    await expect(getBalance()).rejects.toBe(error);
  });
});
