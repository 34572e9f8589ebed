// Human texts of the plugin's errors and of the recharge dialog, in Simplified Chinese and
// English: a small table the host app can override entry by entry, and the language it shows.
import type { KnownService, OfflineAllowance, PointsError, TransactionKind } from "./bindings";
import type { RefusalFigures } from "./backend";
import { isPointsError, type PointsErrorKind } from "./errors";

/** The languages of the message table. */
export type Locale = "zh-CN" | "en";

/** Every {@link Locale}, the default (fallback) one last. */
export const LOCALES: readonly Locale[] = Object.freeze(["zh-CN", "en"]);

/** The language used when neither the host nor the browser names one of {@link LOCALES}. */
export const FALLBACK_LOCALE: Locale = "en";

/** The texts of the recharge dialog. `{service}`, `{required}` and `{balance}` are filled in. */
export interface RechargeMessages {
  /** The dialog's title. */
  readonly title: string;
  /** The body when the service and both figures are known. */
  readonly message: string;
  /** The body when both figures are known but not the service. */
  readonly messageWithoutService: string;
  /** The body when a figure is unknown. */
  readonly messageWithoutFigures: string;
  /** The button that leads to the top-up. */
  readonly confirm: string;
  /** The button that closes the dialog. */
  readonly cancel: string;
  /** The notice once a balance covered the refusal and the dialog closed itself: `{balance}`. */
  readonly satisfied: string;
}

/** The texts of the low-balance banner. `{balance}` and `{threshold}` are filled in. */
export interface LowBalanceMessages {
  /** The banner's text. */
  readonly message: string;
  /** The button that leads to the top-up. */
  readonly action: string;
  /** The button that hides the banner. */
  readonly dismiss: string;
}

/** The texts of the offline banner. `{remaining}` and `{until}` are filled in. */
export interface OfflineMessages {
  /** While an allowance covers new jobs: the points it has left and its last moment. */
  readonly message: string;
  /** While no usable allowance is held. */
  readonly messageWithoutAllowance: string;
}

/**
 * The message table of one language. Error texts may use the error's fields as placeholders
 * (`{service}`, `{field}`, `{status}`, `{code}`, `{required}`, `{remaining}`, `{until}` as a date
 * and time); `unexpected` is for a rejection that is not a
 * `PointsError` (a Tauri refusal, an `Error`), with its own text in `{detail}`.
 */
export interface PointsMessages {
  /** One text per `kind` of `PointsError`: a kind missing here is a compile error. */
  readonly errors: { readonly [K in PointsErrorKind]: string };
  /** A rejection that is not a `PointsError`; `{detail}` is its own text. */
  readonly unexpected: string;
  readonly recharge: RechargeMessages;
  readonly lowBalance: LowBalanceMessages;
  readonly offline: OfflineMessages;
  /** The services' names, put into `{service}` (a service not named here shows its id). */
  readonly services: { readonly [S in KnownService]: string };
  /** The names of the history entries' kinds. */
  readonly transactionKinds: { readonly [K in TransactionKind]: string };
}

const ZH_CN: PointsMessages = {
  errors: {
    insufficientPoints: "积分不足，请充值后再试。",
    unauthorized: "登录已失效，请重新登录。",
    unknownService: "暂不支持该服务：{service}。",
    invalidDuration: "时长无效，请输入大于 0 秒且不超过 24 小时的时长。",
    notChargeableHere: "{service}由服务器计费，不能在本机扣费。",
    invalidArgument: "参数无效：{field}。",
    network: "网络连接失败，请稍后重试。",
    timeout: "请求超时，请稍后重试。",
    backend: "服务器出错（{status}），请稍后重试。",
    protocol: "无法识别服务器返回的数据，请稍后重试。",
    storage: "无法保存本机的扣费记录，请检查磁盘空间后重试。",
    notConfigured: "尚未连接积分服务，请稍后再试。",
    offlineAllowanceNone: "当前离线，本机没有该账户的离线额度，恢复连接后才能运行桌面任务。",
    offlineAllowanceInvalid: "本机的离线额度无效，恢复连接后才能运行桌面任务。",
    offlineAllowanceExpired: "离线额度已于 {until} 到期，恢复连接后才能运行桌面任务。",
    offlineAllowanceExhausted: "{service}需要 {required} 积分，离线额度仅剩 {remaining} 积分，请恢复连接后再试。",
    offlineClockTurnedBack: "本机时间早于之前记录的时间，恢复连接前无法运行离线任务，请检查系统时间。",
  },
  unexpected: "操作失败：{detail}",
  recharge: {
    title: "积分不足",
    message: "{service}需要 {required} 积分，当前余额 {balance} 积分。",
    messageWithoutService: "本次操作需要 {required} 积分，当前余额 {balance} 积分。",
    messageWithoutFigures: "当前积分不足以完成本次操作。",
    confirm: "去充值",
    cancel: "取消",
    satisfied: "充值已到账，当前余额 {balance} 积分。",
  },
  lowBalance: {
    message: "积分余额不足 {threshold}，当前仅剩 {balance} 积分，请及时充值。",
    action: "去充值",
    dismiss: "知道了",
  },
  offline: {
    message: "离线中 — 可用 {remaining} 积分，截至 {until}",
    messageWithoutAllowance: "离线中 — 恢复连接前无法运行桌面任务",
  },
  services: {
    script: "脚本生成",
    polish: "文案润色",
    title: "标题生成",
    voice_clone: "声音克隆",
    tts: "语音合成",
    video: "视频生成",
    compose: "视频合成",
    subtitle_burn: "字幕压制",
    cover_design: "封面设计",
    caption: "字幕识别",
    auto_align: "字幕打轴",
  },
  transactionKinds: {
    recharge: "充值",
    consume: "消费",
    expire: "过期",
  },
};

const EN: PointsMessages = {
  errors: {
    insufficientPoints: "Not enough points. Top up to continue.",
    unauthorized: "Your sign-in has expired. Please sign in again.",
    unknownService: "This service is not available: {service}.",
    invalidDuration: "The duration is not valid: it must be above 0 seconds and at most 24 hours.",
    notChargeableHere: "{service} is charged by the server, not by this app.",
    invalidArgument: "Invalid value: {field}.",
    network: "Could not connect to the server. Please try again later.",
    timeout: "The server took too long to answer. Please try again later.",
    backend: "The server ran into a problem ({status}). Please try again later.",
    protocol: "The server's answer could not be read. Please try again later.",
    storage: "The charge record on this computer could not be saved. Check the free disk space and try again.",
    notConfigured: "The points service is not connected yet. Please try again in a moment.",
    offlineAllowanceNone: "You are offline and this computer holds no offline allowance for your account: desktop jobs can run once the connection is back.",
    offlineAllowanceInvalid: "The offline allowance on this computer is not valid: desktop jobs can run once the connection is back.",
    offlineAllowanceExpired: "The offline allowance ended on {until}: desktop jobs can run once the connection is back.",
    offlineAllowanceExhausted: "{service} needs {required} points, but the offline allowance has only {remaining} left. Try again once the connection is back.",
    offlineClockTurnedBack: "This computer's clock is earlier than a time already seen: offline jobs cannot run until the connection is back. Check the system clock.",
  },
  unexpected: "Something went wrong: {detail}",
  recharge: {
    title: "Not enough points",
    message: "{service} needs {required}; your balance is {balance}.",
    messageWithoutService: "This needs {required}; your balance is {balance}.",
    messageWithoutFigures: "Your balance is too low for this.",
    confirm: "Top up",
    cancel: "Cancel",
    satisfied: "Your top-up has arrived: your balance is {balance}.",
  },
  lowBalance: {
    message: "Your balance is below {threshold}: {balance} left. Top up soon.",
    action: "Top up",
    dismiss: "Dismiss",
  },
  offline: {
    message: "Offline — {remaining} points available until {until}",
    messageWithoutAllowance: "Offline — desktop jobs cannot run until the connection is back",
  },
  services: {
    script: "Script writing",
    polish: "Polishing",
    title: "Title writing",
    voice_clone: "Voice cloning",
    tts: "Text to speech",
    video: "Video generation",
    compose: "Video composition",
    subtitle_burn: "Subtitle burning",
    cover_design: "Cover design",
    caption: "Captions",
    auto_align: "Subtitle alignment",
  },
  transactionKinds: {
    recharge: "Top-up",
    consume: "Charge",
    expire: "Expired",
  },
};

/** The plugin's own texts, before any override. */
export const DEFAULT_MESSAGES: { readonly [L in Locale]: PointsMessages } = deepFreeze({ "zh-CN": ZH_CN, en: EN });

/** Entries of a {@link PointsMessages} to replace; the others stay as they are. */
export type MessageOverrides = {
  readonly [P in keyof PointsMessages]?: PointsMessages[P] extends string ? string : Partial<PointsMessages[P]>;
};

/** What {@link localizedRecharge} gives: the dialog's texts with the figures filled in. */
export interface RechargeTexts {
  readonly title: string;
  readonly message: string;
  readonly confirm: string;
  readonly cancel: string;
}

/** What {@link localizedLowBalance} gives: the banner's texts with the figures filled in. */
export interface LowBalanceTexts {
  readonly message: string;
  readonly action: string;
  readonly dismiss: string;
}

let chosen: Locale | null = null;
let tables: { [L in Locale]: PointsMessages } = { ...DEFAULT_MESSAGES };
let version = 0;
const listeners = new Set<() => void>();

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

function changed(): void {
  version++;
  for (const listener of [...listeners]) listener();
}

/**
 * The {@link Locale} of a BCP 47 language tag (`zh`, `zh-CN`, `zh-Hans-SG`, `en-GB`, ...), or
 * `null` when it is none of them. Every Chinese tag gives `zh-CN`, the only Chinese table.
 */
export function localeOf(tag: string | null | undefined): Locale | null {
  if (typeof tag !== "string") return null;
  const language = tag.trim().toLowerCase().split(/[-_]/)[0];
  if (language === "zh") return "zh-CN";
  if (language === "en") return "en";
  return null;
}

/** The language the browser asks for (`navigator.languages`, then `navigator.language`), or the fallback. */
export function browserLocale(): Locale {
  const nav = (globalThis as { navigator?: { languages?: readonly string[]; language?: string } }).navigator;
  const tags = [...(nav?.languages ?? []), nav?.language];
  for (const tag of tags) {
    const locale = localeOf(tag);
    if (locale !== null) return locale;
  }
  return FALLBACK_LOCALE;
}

/** The language of the texts: the host's choice ({@link setLocale}), else the browser's. */
export function getLocale(): Locale {
  return chosen ?? browserLocale();
}

/**
 * Chooses the language of the texts (any tag {@link localeOf} knows; a tag it does not know
 * gives the fallback); `null` goes back to the browser's. Returns the language now used.
 */
export function setLocale(locale: string | null): Locale {
  const next = locale === null ? null : (localeOf(locale) ?? FALLBACK_LOCALE);
  if (next !== chosen) {
    chosen = next;
    changed();
  }
  return getLocale();
}

/**
 * Replaces entries of the table of `locale` (e.g. the host app's own wording of an error).
 * Later calls add to earlier ones; {@link resetMessages} removes them.
 */
export function overrideMessages(locale: Locale, overrides: MessageOverrides): void {
  const base = tables[locale];
  const next = { ...base } as Record<keyof PointsMessages, unknown>;
  for (const key of Object.keys(overrides) as (keyof PointsMessages)[]) {
    const value = overrides[key];
    if (value === undefined) continue;
    next[key] = typeof value === "string" ? value : { ...(base[key] as object), ...definedEntries(value) };
  }
  tables = { ...tables, [locale]: deepFreeze(next as unknown as PointsMessages) };
  changed();
}

/** Removes every override (of `locale`, or of all languages). */
export function resetMessages(locale?: Locale): void {
  tables = locale ? { ...tables, [locale]: DEFAULT_MESSAGES[locale] } : { ...DEFAULT_MESSAGES };
  changed();
}

function definedEntries(value: object): object {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => typeof v === "string"));
}

/** The table of `locale` (default: {@link getLocale}), with the host's overrides. */
export function getMessages(locale: Locale = getLocale()): PointsMessages {
  return tables[locale];
}

/**
 * Calls `listener` when the language or an entry of the table changes; returns the function
 * that stops it.
 */
export function onMessagesChanged(listener: () => void): () => void {
  followBrowserLanguage();
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

let followingBrowser = false;

/** A change of the browser's language is a change of the texts while the host chose none. */
function followBrowserLanguage(): void {
  if (followingBrowser) return;
  const target = globalThis as { addEventListener?: (type: string, listener: () => void) => void };
  if (typeof target.addEventListener !== "function") return;
  followingBrowser = true;
  target.addEventListener("languagechange", () => {
    if (chosen === null) changed();
  });
}

/** A number that grows at every change of language or table (to tell a text made before one). */
export function messagesVersion(): number {
  return version;
}

/**
 * `template` with each `{name}` replaced by `values[name]` (numbers written for `locale`); a
 * placeholder without a value stays as it is.
 */
export function formatMessage(
  template: string,
  values: Readonly<Record<string, string | number | null | undefined>>,
  locale: Locale = getLocale(),
): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const value = Object.prototype.hasOwnProperty.call(values, name) ? values[name] : undefined;
    if (typeof value === "number") return new Intl.NumberFormat(locale).format(value);
    return typeof value === "string" ? value : whole;
  });
}

/** The name of a service in `locale`, or its id when the table does not name it. */
export function serviceName(service: string, locale: Locale = getLocale()): string {
  const names: Readonly<Record<string, string>> = getMessages(locale).services;
  return Object.prototype.hasOwnProperty.call(names, service) ? names[service]! : service;
}

/** An RFC 3339 moment as a date and time (to the minute) of `locale`, in local time; as it is when unreadable. */
function dateTime(moment: string, locale: Locale): string {
  const at = new Date(moment);
  if (Number.isNaN(at.getTime())) return moment;
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(at);
}

/** The values an error's text can use: its fields, `{service}` by name, `{until}` as a date and time. */
function errorValues(error: PointsError, locale: Locale): Record<string, string | number | null> {
  const values: Record<string, string | number | null> = {};
  for (const [key, value] of Object.entries(error)) {
    if (typeof value === "string" || typeof value === "number") values[key] = value;
  }
  if (typeof values.service === "string") values.service = serviceName(values.service, locale);
  if (typeof values.until === "string") values.until = dateTime(values.until, locale);
  return values;
}

/**
 * The text to show the user for any rejection: a `PointsError` by its `kind` (in `locale`,
 * default {@link getLocale}); anything else (a Tauri refusal, an `Error`) as `unexpected`.
 */
export function localizeError(error: unknown, locale: Locale = getLocale()): string {
  const table = getMessages(locale);
  if (isPointsError(error)) return formatMessage(table.errors[error.kind], errorValues(error, locale), locale);
  let detail: string;
  if (typeof error === "string") detail = error;
  else {
    const message = (error as { message?: unknown } | null)?.message;
    detail = typeof message === "string" && message !== "" ? message : String(error);
  }
  return formatMessage(table.unexpected, { detail }, locale);
}

/** The recharge dialog's texts for a refusal's figures, in `locale` (default {@link getLocale}). */
export function localizedRecharge(figures: Partial<RefusalFigures>, locale: Locale = getLocale()): RechargeTexts {
  const table = getMessages(locale).recharge;
  const { service, required, balance } = figures;
  let template: string;
  if (required == null || balance == null) template = table.messageWithoutFigures;
  else if (service == null || service === "") template = table.messageWithoutService;
  else template = table.message;
  const values = { service: service ? serviceName(service, locale) : null, required, balance };
  return Object.freeze({
    title: table.title,
    message: formatMessage(template, values, locale),
    confirm: table.confirm,
    cancel: table.cancel,
  });
}

/**
 * The notice shown once a balance covered a refusal and the store closed the recharge dialog
 * (`recharge.satisfied`), in `locale` (default {@link getLocale}).
 */
export function localizedRecharged(figures: { readonly balance: number }, locale: Locale = getLocale()): string {
  return formatMessage(getMessages(locale).recharge.satisfied, { balance: figures.balance }, locale);
}

/**
 * The low-balance banner's texts for a crossing (the store's `lowBalance`), in `locale`
 * (default {@link getLocale}). `balance` may be the balance shown now rather than the crossing's.
 */
export function localizedLowBalance(
  figures: { readonly threshold: number; readonly balance: number },
  locale: Locale = getLocale(),
): LowBalanceTexts {
  const table = getMessages(locale).lowBalance;
  return Object.freeze({
    message: formatMessage(table.message, { threshold: figures.threshold, balance: figures.balance }, locale),
    action: table.action,
    dismiss: table.dismiss,
  });
}

/**
 * The offline banner's text for the store's `offline`, in `locale` (default {@link getLocale}):
 * the points left and the allowance's last moment (a date and time of `locale`), or
 * `offline.messageWithoutAllowance` when `until` is `null`.
 */
export function localizedOffline(allowance: OfflineAllowance, locale: Locale = getLocale()): string {
  const table = getMessages(locale).offline;
  if (allowance.until === null) return table.messageWithoutAllowance;
  return formatMessage(table.message, { remaining: allowance.remaining, until: dateTime(allowance.until, locale) }, locale);
}
