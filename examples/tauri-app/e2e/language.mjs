// The language an e2e run shows (POINTS_E2E_LANG: "en" or "zh-CN"; .ci/e2e runs the suites once
// in each), and what the user must read in it. Written out here, not taken from the app's
// tables: a text changed in the app or in the plugin's table fails the run.

/** The language of this run. */
export const LANG = process.env.POINTS_E2E_LANG ?? "en";

/** A number as the plugin's texts write it in `lang` (1,050). */
const n = (lang, value) => new Intl.NumberFormat(lang).format(value);

const TEXTS = {
  en: {
    title: "Points example",
    expiresNext: /^20 points expire on \d{1,2} [A-Z][a-z]{2}$/,
    charged: (service, points) => `${service} done: ${points} points charged`,
    pendingCharge: (service) => `${service} done: its charge will be sent when the ledger is back`,
    jobFailed: "The job failed (as asked): nothing was charged.",
    signedOut: "Signed out",
    signedInAs: (user) => `Signed in as ${user}`,
    services: { compose: "Video composition", cover_design: "Cover design", video: "Video generation" },
    consumed: (service) => new RegExp(`Charge ${service}`),
    recharged: /Top-up/,
    // The plugin's texts: the recharge dialog and its error kinds.
    dialogTitle: "Not enough points",
    dialogMessage: (service, required, balance) => `${service} needs ${required}; your balance is ${balance}.`,
    dialogCancel: "Cancel",
    insufficientPoints: "Not enough points. Top up to continue.",
    lowBalance: (threshold, balance) => `Your balance is below ${n("en", threshold)}: ${n("en", balance)} left. Top up soon.`,
    toppedUp: (balance) => `Your top-up has arrived: your balance is ${n("en", balance)}.`,
    totals: (recharged, consumed, expired) => `Topped up ${recharged} · used ${consumed} · expired ${expired}`,
    network: "Could not connect to the server. Please try again later.",
    /** What may be shown in the other script: the other language's name in the switch. */
    otherScript: /[\u4e00-\u9fff]/,
    allowed: ["中文"],
  },
  "zh-CN": {
    title: "积分示例",
    expiresNext: /^20 积分将于\d{1,2}月\d{1,2}日过期$/,
    charged: (service, points) => `${service}已完成：扣除 ${points} 积分`,
    pendingCharge: (service) => `${service}已完成：扣费将在账本恢复后自动发送`,
    jobFailed: "任务失败（按要求模拟）：未扣除积分。",
    signedOut: "未登录",
    signedInAs: (user) => `当前用户：${user}`,
    services: { compose: "视频合成", cover_design: "封面设计", video: "视频生成" },
    consumed: (service) => new RegExp(`消费 ${service}`),
    recharged: /充值/,
    dialogTitle: "积分不足",
    dialogMessage: (service, required, balance) => `${service}需要 ${required} 积分，当前余额 ${balance} 积分。`,
    dialogCancel: "取消",
    insufficientPoints: "积分不足，请充值后再试。",
    lowBalance: (threshold, balance) => `积分余额不足 ${n("zh-CN", threshold)}，当前仅剩 ${n("zh-CN", balance)} 积分，请及时充值。`,
    toppedUp: (balance) => `充值已到账，当前余额 ${n("zh-CN", balance)} 积分。`,
    totals: (recharged, consumed, expired) => `累计充值 ${recharged} · 累计消费 ${consumed} · 已过期 ${expired}`,
    network: "网络连接失败，请稍后重试。",
    // Latin words a Chinese page may show: the demo users, window labels, the switch's "English".
    otherScript: /[A-Za-z]{2,}/,
    allowed: ["English", "Ada", "Grace", "main", /window-\d+/g],
  },
};

if (!(LANG in TEXTS)) throw new Error(`POINTS_E2E_LANG=${LANG}: expected one of ${Object.keys(TEXTS).join(", ")}`);

/** The texts of this run's language. */
export const T = TEXTS[LANG];

/** The language the switch does not show in this run. */
export const OTHER_LANG = LANG === "en" ? "zh-CN" : "en";

/** The texts of `lang`. */
export const textsOf = (lang) => TEXTS[lang];

/**
 * What of `pageText` is in the other language's script (besides what `lang` allows): an empty
 * list when every text shown is in `lang`.
 */
export function foreignWords(pageText, lang = LANG) {
  const texts = TEXTS[lang];
  let rest = pageText;
  for (const allowed of texts.allowed) rest = rest.replaceAll(allowed, " ");
  return rest.match(new RegExp(texts.otherScript.source, "g")) ?? [];
}
