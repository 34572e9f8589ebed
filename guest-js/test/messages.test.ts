import { clearMocks } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  DEFAULT_MESSAGES,
  LOCALES,
  POINTS_ERROR_KINDS,
  createPointStore,
  formatMessage,
  getLocale,
  getMessages,
  localeOf,
  localizeError,
  localizedLowBalance,
  localizedOffline,
  localizedRecharge,
  localizedRecharged,
  overrideMessages,
  resetMessages,
  setLocale,
  type Locale,
  type PointsError,
  type PointStore,
} from "../src";
import { ONE_ERROR_OF_EACH_KIND as SAMPLES } from "./ipc";

const HAN = /[\u4e00-\u9fff]/;


let stores: PointStore[] = [];
afterEach(() => {
  for (const store of stores) store.dispose();
  stores = [];
  setLocale(null);
  resetMessages();
  vi.unstubAllEnvs();
  clearMocks();
});

/** Makes the browser ask for `languages` (navigator.languages and navigator.language). */
function browserAsks(...languages: string[]): void {
  vi.spyOn(navigator, "languages", "get").mockReturnValue(languages);
  vi.spyOn(navigator, "language", "get").mockReturnValue(languages[0] ?? "");
}

describe("the message table", () => {
  it("has a non-empty text for every error kind, service and history kind, in both languages", () => {
    expect([...LOCALES].sort()).toEqual(["en", "zh-CN"]);
    for (const locale of LOCALES) {
      const table = DEFAULT_MESSAGES[locale];
      expect(Object.keys(table.errors).sort()).toEqual([...POINTS_ERROR_KINDS].sort());
      const texts = [
        ...Object.values(table.errors),
        ...Object.values(table.recharge),
        ...Object.values(table.lowBalance),
        ...Object.values(table.offline),
        ...Object.values(table.services),
        ...Object.values(table.transactionKinds),
        table.unexpected,
      ];
      for (const text of texts) {
        expect(text.trim()).not.toBe("");
        // Chinese texts are Chinese, English ones are not.
        expect(HAN.test(text), `${locale}: ${text}`).toBe(locale === "zh-CN");
      }
    }
  });

  it("gives every kind its own text, with the error's fields filled in", () => {
    for (const locale of LOCALES) {
      const texts = SAMPLES.map((error) => localizeError(error, locale));
      expect(new Set(texts).size).toBe(SAMPLES.length);
      for (const text of texts) expect(text, text).not.toMatch(/[{}]/);
    }
    expect(localizeError({ kind: "network", message: "connection refused" }, "zh-CN")).toBe("网络连接失败，请稍后重试。");
    expect(localizeError({ kind: "insufficientPoints", service: null, required: null, balance: null, message: "m" }, "zh-CN")).toBe(
      "积分不足，请充值后再试。",
    );
    expect(localizeError({ kind: "backend", status: 503, code: "overloaded", message: "m" }, "zh-CN")).toBe(
      "服务器出错（503），请稍后重试。",
    );
    expect(localizeError({ kind: "notChargeableHere", service: "video", message: "m" }, "zh-CN")).toBe(
      "视频生成由服务器计费，不能在本机扣费。",
    );
    expect(localizeError({ kind: "unknownService", service: "lipsync", message: "m" }, "en")).toBe(
      "This service is not available: lipsync.",
    );
    expect(localizeError({ kind: "timeout", message: "m" }, "en")).toBe(
      "The server took too long to answer. Please try again later.",
    );
  });

  it("words the offline refusals, with the service's name, the figures and the moment in the locale", () => {
    vi.stubEnv("TZ", "Asia/Shanghai");
    const exhausted = { kind: "offlineAllowanceExhausted", service: "compose", required: 1200, remaining: 3, message: "m" } as const;
    const expired = { kind: "offlineAllowanceExpired", until: "2026-03-01T12:05:00Z", message: "m" } as const;
    expect(localizeError(exhausted, "zh-CN")).toBe("视频合成需要 1,200 积分，离线额度仅剩 3 积分，请恢复连接后再试。");
    expect(localizeError(exhausted, "en")).toBe(
      "Video composition needs 1,200 points, but the offline allowance has only 3 left. Try again once the connection is back.",
    );
    expect(localizeError(expired, "zh-CN")).toBe("离线额度已于 2026年3月1日 20:05 到期，恢复连接后才能运行桌面任务。");
    expect(localizeError(expired, "en")).toMatch(
      /^The offline allowance ended on Mar 1, 2026, 8:05\sPM: desktop jobs can run once the connection is back\.$/,
    );
    expect(localizeError({ kind: "offlineClockTurnedBack", message: "m" }, "zh-CN")).toBe(
      "本机时间早于之前记录的时间，恢复连接前无法运行离线任务，请检查系统时间。",
    );
  });

  it("words a rejection that is not a PointsError as unexpected, with its own text", () => {
    expect(localizeError("command charge not allowed by ACL", "zh-CN")).toBe("操作失败：command charge not allowed by ACL");
    expect(localizeError(new Error("boom"), "en")).toBe("Something went wrong: boom");
    expect(localizeError({ kind: "jobFailed", message: "it failed" }, "en")).toBe("Something went wrong: it failed");
    expect(localizeError(null, "en")).toBe("Something went wrong: null");
  });
});

describe("the recharge dialog's texts", () => {
  it("fill the service's name and the figures", () => {
    const figures = { service: "cover_design", required: 2, balance: 1 };
    expect(localizedRecharge(figures, "zh-CN")).toEqual({
      title: "积分不足",
      message: "封面设计需要 2 积分，当前余额 1 积分。",
      confirm: "去充值",
      cancel: "取消",
    });
    expect(localizedRecharge(figures, "en")).toEqual({
      title: "Not enough points",
      message: "Cover design needs 2; your balance is 1.",
      confirm: "Top up",
      cancel: "Cancel",
    });
  });

  it("word a refusal without its service or its figures, and an unknown service by its id", () => {
    expect(localizedRecharge({ service: null, required: 1200, balance: -3 }, "zh-CN").message).toBe(
      "本次操作需要 1,200 积分，当前余额 -3 积分。",
    );
    expect(localizedRecharge({ service: "video", required: null, balance: 4 }, "zh-CN").message).toBe("当前积分不足以完成本次操作。");
    expect(localizedRecharge({}, "en").message).toBe("Your balance is too low for this.");
    expect(localizedRecharge({ service: "lipsync", required: 9, balance: 0 }, "en").message).toBe("lipsync needs 9; your balance is 0.");
  });

  it("the notice of a paid refusal and the low-balance banner fill their figures", () => {
    expect(localizedRecharged({ balance: 1050 }, "zh-CN")).toBe("充值已到账，当前余额 1,050 积分。");
    expect(localizedRecharged({ balance: 52 }, "en")).toBe("Your top-up has arrived: your balance is 52.");
    expect(localizedLowBalance({ threshold: 10, balance: 8 }, "zh-CN")).toEqual({
      message: "积分余额不足 10，当前仅剩 8 积分，请及时充值。",
      action: "去充值",
      dismiss: "知道了",
    });
    expect(localizedLowBalance({ threshold: 50, balance: -2 }, "en")).toEqual({
      message: "Your balance is below 50: -2 left. Top up soon.",
      action: "Top up",
      dismiss: "Dismiss",
    });
    overrideMessages("en", { lowBalance: { dismiss: "Hide" } });
    expect(localizedLowBalance({ threshold: 50, balance: 3 }, "en").dismiss).toBe("Hide");
  });

  it("the offline banner says the points left and the last moment in the locale, or that jobs wait", () => {
    vi.stubEnv("TZ", "Asia/Shanghai");
    const allowance = { remaining: 1500, until: "2026-03-01T12:05:00Z" };
    expect(localizedOffline(allowance, "zh-CN")).toBe("离线中 — 可用 1,500 积分，截至 2026年3月1日 20:05");
    expect(localizedOffline(allowance, "en")).toMatch(/^Offline — 1,500 points available until Mar 1, 2026, 8:05\sPM$/);
    expect(localizedOffline({ remaining: 0, until: null }, "zh-CN")).toBe("离线中 — 恢复连接前无法运行桌面任务");
    expect(localizedOffline({ remaining: 40, until: null }, "en")).toBe("Offline — desktop jobs cannot run until the connection is back");
    // The language of the moment by default, and the host's wording.
    setLocale("zh-CN");
    expect(localizedOffline({ remaining: 2, until: "2026-12-31T15:59:00Z" })).toBe("离线中 — 可用 2 积分，截至 2026年12月31日 23:59");
    overrideMessages("en", { offline: { messageWithoutAllowance: "Offline" } });
    expect(localizedOffline({ remaining: 0, until: null }, "en")).toBe("Offline");
    // An unreadable moment is shown as it came.
    expect(localizedOffline({ remaining: 2, until: "soon" }, "en")).toBe("Offline — 2 points available until soon");
  });

  it("formatMessage fills known placeholders and leaves the others", () => {
    expect(formatMessage("{a} / {b} / {c}", { a: "x", b: 12345 }, "en")).toBe("x / 12,345 / {c}");
    expect(formatMessage("{a}", { a: null }, "en")).toBe("{a}");
  });
});

describe("the language", () => {
  it("is the browser's when the host chose none, falling back to English", () => {
    browserAsks("zh-CN", "en-US");
    expect(getLocale()).toBe("zh-CN");
    browserAsks("fr-FR", "zh-Hans-SG");
    expect(getLocale()).toBe("zh-CN");
    browserAsks("fr-FR", "de");
    expect(getLocale()).toBe("en");
    browserAsks("en-GB");
    expect(getLocale()).toBe("en");
  });

  it("is the host's choice once made, and the browser's again after setLocale(null)", () => {
    browserAsks("en-US");
    expect(setLocale("zh-CN")).toBe("zh-CN");
    expect(getLocale()).toBe("zh-CN");
    expect(localizeError({ kind: "timeout", message: "m" })).toBe("请求超时，请稍后重试。");
    expect(setLocale("zh-TW")).toBe("zh-CN");
    expect(setLocale("fr")).toBe("en");
    browserAsks("zh");
    expect(setLocale(null)).toBe("zh-CN");
  });

  it("reads language tags", () => {
    const cases: [string | null, Locale | null][] = [
      ["zh", "zh-CN"],
      ["zh_CN", "zh-CN"],
      ["ZH-hans", "zh-CN"],
      ["en-US", "en"],
      ["fr", null],
      ["", null],
      [null, null],
    ];
    for (const [tag, locale] of cases) expect(localeOf(tag)).toBe(locale);
  });
});

describe("the host's overrides", () => {
  it("replace the entries given, in that language only, until reset", () => {
    overrideMessages("zh-CN", { errors: { network: "网络不太稳定，请检查网络后重试。" }, recharge: { confirm: "立即充值" } });
    expect(localizeError({ kind: "network", message: "m" }, "zh-CN")).toBe("网络不太稳定，请检查网络后重试。");
    expect(localizeError({ kind: "timeout", message: "m" }, "zh-CN")).toBe("请求超时，请稍后重试。");
    expect(localizeError({ kind: "network", message: "m" }, "en")).toBe("Could not connect to the server. Please try again later.");
    expect(localizedRecharge({}, "zh-CN")).toMatchObject({ title: "积分不足", confirm: "立即充值" });

    overrideMessages("zh-CN", { services: { compose: "成片合成" }, unexpected: "出错了：{detail}" });
    expect(getMessages("zh-CN").errors.network).toBe("网络不太稳定，请检查网络后重试。");
    expect(localizedRecharge({ service: "compose", required: 5, balance: 2 }, "zh-CN").message).toBe("成片合成需要 5 积分，当前余额 2 积分。");
    expect(localizeError("nope", "zh-CN")).toBe("出错了：nope");

    resetMessages();
    expect(getMessages("zh-CN")).toBe(DEFAULT_MESSAGES["zh-CN"]);
    expect(localizeError({ kind: "network", message: "m" }, "zh-CN")).toBe("网络连接失败，请稍后重试。");
  });
});

describe("the store's recharge dialog", () => {
  function newStore(): PointStore {
    const store = createPointStore({ webviewLabel: "main" });
    stores.push(store);
    return store;
  }
  const SHORT: PointsError = { kind: "insufficientPoints", service: "compose", required: 5, balance: 2, message: "m" };

  it("carries its texts in the current language, and none when closed", () => {
    setLocale("zh-CN");
    const store = newStore();
    expect(store.getSnapshot().recharge.texts).toBeNull();
    store.handleError(SHORT);
    expect(store.getSnapshot().recharge).toEqual({
      open: true,
      satisfied: false,
      service: "compose",
      required: 5,
      balance: 2,
      texts: { title: "积分不足", message: "视频合成需要 5 积分，当前余额 2 积分。", confirm: "去充值", cancel: "取消" },
    });
    store.closeRecharge();
    expect(store.getSnapshot().recharge.texts).toBeNull();
  });

  it("gets new texts when the language or an entry changes, telling its subscribers", () => {
    setLocale("en");
    const store = newStore();
    store.openRecharge({ service: "cover_design", required: 2, balance: 1 });
    const before = store.getSnapshot();
    expect(before.recharge.texts?.message).toBe("Cover design needs 2; your balance is 1.");
    const listener = vi.fn();
    const unsubscribe = store.subscribe(listener);

    setLocale("zh-CN");
    expect(listener).toHaveBeenCalledTimes(1);
    const after = store.getSnapshot();
    expect(after).not.toBe(before);
    expect(after.recharge).toMatchObject({ open: true, service: "cover_design", required: 2, balance: 1 });
    expect(after.recharge.texts?.message).toBe("封面设计需要 2 积分，当前余额 1 积分。");
    expect(store.getSnapshot()).toBe(after);

    overrideMessages("zh-CN", { recharge: { title: "余额不足" } });
    expect(listener).toHaveBeenCalledTimes(2);
    expect(store.getSnapshot().recharge.texts?.title).toBe("余额不足");

    // A store nobody subscribes to still shows the language of the moment it is read.
    unsubscribe();
    setLocale("en");
    expect(listener).toHaveBeenCalledTimes(2);
    expect(store.getSnapshot().recharge.texts?.title).toBe("Not enough points");
  });

  it("does not change its snapshot when the language changes while closed", () => {
    const store = newStore();
    const listener = vi.fn();
    store.subscribe(listener);
    const before = store.getSnapshot();
    setLocale("zh-CN");
    setLocale("en");
    expect(listener).not.toHaveBeenCalled();
    expect(store.getSnapshot()).toBe(before);
  });
});
