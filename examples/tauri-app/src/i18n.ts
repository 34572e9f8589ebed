// The app's own texts in both languages of the plugin's table, the user's choice of language
// (kept in localStorage, shared by every window), and the wording of any failure.
import {
  getLocale,
  isPointsError,
  localizeError,
  serviceName,
  setLocale,
  type DesktopService,
  type Locale,
} from "tauri-plugin-points-api";

/** The kinds of the app's own failures (src-tauri/src/commands.rs). */
type AppErrorKind = "signedOut" | "jobFailed" | "backendUnreachable" | "topUpUnavailable" | "topUpRefused" | "window" | "forbidden";

export interface AppTexts {
  title: string;
  yourPoints: string;
  /** The unit after a number of points. */
  points: (n: number) => string;
  expires: (n: number, day: Date) => string;
  nothingExpires: string;
  /** The totals of the summary shown. */
  totals: (recharged: number, consumed: number, expired: number) => string;
  signedInAs: (user: string) => string;
  signedOut: string;
  signOut: string;
  signInOther: string;
  signInAgain: string;
  openWindow: string;
  pendingTitle: string;
  pending: string;
  jobs: string;
  jobButtons: Record<DesktopService, string>;
  failToggle: string;
  jobCharged: (service: string, points: number) => string;
  jobPending: (service: string) => string;
  jobRefused: (service: string, why: string) => string;
  jobNotCharged: (service: string) => string;
  video: string;
  duration: string;
  cost: string;
  generate: string;
  videoAccepted: (points: number | null) => string;
  backendAnswered: (status: number) => string;
  transactions: string;
  topUp: string;
  toppingUp: string;
  language: string;
  appErrors: Record<AppErrorKind, string>;
}

const en = (n: number) => (n === 1 || n === -1 ? "point" : "points");
const EN_DAY = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short" });
const ZH_DAY = new Intl.DateTimeFormat("zh-CN", { day: "numeric", month: "long" });

export const TEXTS: Record<Locale, AppTexts> = {
  en: {
    title: "Points example",
    yourPoints: "Your points",
    points: en,
    expires: (n, day) => `${n} ${en(n)} ${n === 1 ? "expires" : "expire"} on ${EN_DAY.format(day)}`,
    nothingExpires: "No points to expire",
    totals: (recharged, consumed, expired) => `Topped up ${recharged} · used ${consumed} · expired ${expired}`,
    signedInAs: (user) => `Signed in as ${user}`,
    signedOut: "Signed out",
    signOut: "Sign out",
    signInOther: "Sign in as another demo user",
    signInAgain: "Sign in again",
    openWindow: "Open another window",
    pendingTitle: "Charges waiting for the ledger",
    pending: "Pending sync:",
    jobs: "Desktop jobs",
    jobButtons: { compose: "Compose video", subtitle_burn: "Burn subtitles", cover_design: "Design cover" },
    failToggle: "make this job fail",
    jobCharged: (service, points) => `${service} done: ${points} ${en(points)} charged`,
    jobPending: (service) => `${service} done: its charge will be sent when the ledger is back`,
    jobRefused: (service, why) => `${service} done, but the ledger refused its charge: ${why}`,
    jobNotCharged: (service) => `${service} done: not charged`,
    video: "Generate video",
    duration: "Duration (s)",
    cost: "Cost:",
    generate: "Generate video",
    videoAccepted: (points) => `Video accepted by the backend: ${points ?? "?"} ${en(points ?? 0)} charged`,
    backendAnswered: (status) => `The backend answered ${status}`,
    transactions: "Transactions",
    topUp: "Top up 50",
    toppingUp: "Topping up…",
    language: "Language",
    appErrors: {
      signedOut: "Sign in first.",
      jobFailed: "The job failed (as asked): nothing was charged.",
      backendUnreachable: "Could not reach the app's backend. Please try again later.",
      topUpUnavailable: "Top-up is not available here.",
      topUpRefused: "The top-up was refused.",
      window: "Could not open another window.",
      forbidden: "Not allowed.",
    },
  },
  "zh-CN": {
    title: "积分示例",
    yourPoints: "我的积分",
    points: () => "积分",
    expires: (n, day) => `${n} 积分将于${ZH_DAY.format(day)}过期`,
    nothingExpires: "暂无即将过期的积分",
    totals: (recharged, consumed, expired) => `累计充值 ${recharged} · 累计消费 ${consumed} · 已过期 ${expired}`,
    signedInAs: (user) => `当前用户：${user}`,
    signedOut: "未登录",
    signOut: "退出登录",
    signInOther: "切换到另一个演示用户",
    signInAgain: "重新登录",
    openWindow: "打开新窗口",
    pendingTitle: "等待同步到账本的扣费",
    pending: "待同步：",
    jobs: "桌面任务",
    jobButtons: { compose: "合成视频", subtitle_burn: "压制字幕", cover_design: "设计封面" },
    failToggle: "让这个任务失败",
    jobCharged: (service, points) => `${service}已完成：扣除 ${points} 积分`,
    jobPending: (service) => `${service}已完成：扣费将在账本恢复后自动发送`,
    jobRefused: (service, why) => `${service}已完成，但扣费被拒绝：${why}`,
    jobNotCharged: (service) => `${service}已完成：未扣费`,
    video: "生成视频",
    duration: "时长（秒）",
    cost: "费用：",
    generate: "生成视频",
    videoAccepted: (points) => `视频任务已提交：扣除 ${points ?? "?"} 积分`,
    backendAnswered: (status) => `服务器返回 ${status}`,
    transactions: "积分明细",
    topUp: "充值 50 积分",
    toppingUp: "充值中…",
    language: "语言",
    appErrors: {
      signedOut: "请先登录。",
      jobFailed: "任务失败（按要求模拟）：未扣除积分。",
      backendUnreachable: "无法连接到应用服务器，请稍后重试。",
      topUpUnavailable: "当前无法充值。",
      topUpRefused: "充值被拒绝。",
      window: "无法打开新窗口。",
      forbidden: "无权执行此操作。",
    },
  },
};

/** Where the user's choice of language is kept. */
const LOCALE_KEY = "points-example.locale";

/** The names of the languages, each in its own language (as language menus show them). */
export const LANGUAGE_NAMES: Record<Locale, string> = { "zh-CN": "中文", en: "English" };

function showLocale(locale: Locale): void {
  document.documentElement.lang = locale;
  document.title = TEXTS[locale].title;
}

/**
 * Takes the language kept from an earlier run (else the browser's, through the plugin's
 * default), and follows a choice made in another window.
 */
export function restoreLocale(): void {
  const saved = localStorage.getItem(LOCALE_KEY);
  showLocale(saved ? setLocale(saved) : getLocale());
  window.addEventListener("storage", (event) => {
    if (event.key === LOCALE_KEY) showLocale(setLocale(event.newValue));
  });
}

/** The user's choice: for the plugin's texts and the app's, kept for the next run and every window. */
export function chooseLocale(locale: Locale): void {
  localStorage.setItem(LOCALE_KEY, locale);
  showLocale(setLocale(locale));
}

/** The name of a service in the current language. */
export const nameOf = (service: string) => serviceName(service);

/** The user's words for any failure: the plugin's table, the app's own kinds, or "unexpected". */
export function describeError(error: unknown, locale: Locale = getLocale()): string {
  if (isPointsError(error)) return localizeError(error, locale);
  const kind = (error as { kind?: unknown } | null)?.kind;
  const own = TEXTS[locale].appErrors;
  if (typeof kind === "string" && Object.prototype.hasOwnProperty.call(own, kind)) return own[kind as AppErrorKind];
  return localizeError(error, locale);
}
