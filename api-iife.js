var __TAURI_PLUGIN_POINTS__ = (function (exports, core, event, webview) {
    'use strict';

    /** The plugin's name: its commands are invoked as `plugin:points|<command>`. */
    const PLUGIN_NAME = "points";
    /** Every command of the plugin, as the webview invokes it. */
    const COMMANDS = {
        getBalance: "plugin:points|get_balance",
        getLowBalance: "plugin:points|get_low_balance",
        getOffline: "plugin:points|get_offline",
        checkCost: "plugin:points|check_cost",
        charge: "plugin:points|charge",
        getPrices: "plugin:points|get_prices",
        listTransactions: "plugin:points|list_transactions",
        listBatches: "plugin:points|list_batches",
        setSessionToken: "plugin:points|set_session_token",
        clearSessionToken: "plugin:points|clear_session_token",
        getPending: "plugin:points|get_pending",
        syncPending: "plugin:points|sync_pending",
        retryRefused: "plugin:points|retry_refused",
        dismissRefused: "plugin:points|dismiss_refused",
    };
    /**
     * A new idempotency key for one user action: `webview:` and a random UUID (or 32 random hex
     * digits where `crypto.randomUUID` is missing, as outside a secure context).
     */
    function newIdempotencyKey() {
        const random = globalThis.crypto;
        if (typeof random?.randomUUID === "function")
            return `webview:${random.randomUUID()}`;
        const bytes = new Uint8Array(16);
        if (typeof random?.getRandomValues === "function")
            random.getRandomValues(bytes);
        else
            for (let i = 0; i < bytes.length; i++)
                bytes[i] = Math.floor(Math.random() * 256);
        return `webview:${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
    }
    /** The idempotency key a charge was made under, whatever became of it. */
    function idempotencyKeyOf(outcome) {
        return outcome.status === "acknowledged" ? outcome.receipt.idempotencyKey : outcome.idempotencyKey;
    }
    /** The arguments object, without the keys whose value is `undefined`. */
    function args(values) {
        const out = {};
        for (const [key, value] of Object.entries(values)) {
            if (value !== undefined)
                out[key] = value;
        }
        return out;
    }
    /** The user's balance and totals, read from the ledger. */
    function getBalance() {
        return core.invoke(COMMANDS.getBalance);
    }
    /**
     * The signed-in account's low-balance crossing in force (its lowest threshold the balance is
     * below, with the last balance seen), or `null`: what `points://low-balance` said, for a window
     * that opened after it.
     */
    function getLowBalance() {
        return core.invoke(COMMANDS.getLowBalance);
    }
    /**
     * The offline state of the current session: `offline` is `null` while the ledger is reachable,
     * else what offline work may still spend. What `points://offline-changed` said, for a window that
     * opened after it.
     */
    function getOffline() {
        return core.invoke(COMMANDS.getOffline);
    }
    /**
     * The price of one use of `service` and whether the balance covers it. `duration` (seconds) is
     * needed by the services priced per second (`tts`, `video`).
     */
    function checkCost(service, duration) {
        return core.invoke(COMMANDS.checkCost, args({ service, duration }));
    }
    /**
     * Charges one use of a service the desktop app performs itself, under `options.idempotencyKey`.
     * Never goes into debt. Needs the opt-in permission `points:allow-charge` (not in the plugin's
     * default set).
     *
     * The plugin journals the charge before it sends it. Once sent, it resolves with what became of
     * it, never rejects:
     * - `acknowledged`: the ledger applied it (`receipt.replayed` when that key was charged before);
     * - `pending`: the answer did not come (offline, a timeout, a 5xx): the charge is kept and the
     *   plugin's background sync sends it later under the same key. Not a failure;
     * - `refused`: the ledger refused it for good; it is kept in the refused record
     *   (`getPending().refused`) until {@link retryRefused} or {@link dismissRefused}.
     *
     * It rejects with a `PointsError` only when nothing was charged: `insufficientPoints` (the price
     * check or the ledger's 402; nothing is pending), `unauthorized`, `notChargeableHere`,
     * `invalidArgument`, and `network` / `timeout` when the price check could not reach the ledger
     * (nothing was sent). The same `idempotencyKey` again is never a second charge.
     */
    function charge(service, options = {}) {
        return core.invoke(COMMANDS.charge, args({ service, idempotencyKey: options.idempotencyKey, reference: options.reference }));
    }
    /** The price table, for display. */
    function getPrices() {
        return core.invoke(COMMANDS.getPrices);
    }
    /** The user's transactions, newest first, one page at a time. */
    function listTransactions(options = {}) {
        return core.invoke(COMMANDS.listTransactions, args({ limit: options.limit, before: options.before }));
    }
    /** The live recharge batches, soonest expiry first. */
    function listBatches() {
        return core.invoke(COMMANDS.listBatches);
    }
    /**
     * Signs in: gives the plugin the user's session token for the ledger (up to 8192 characters; it is
     * never readable again), with the host's account id when known. A change of account is announced
     * by `points://session-changed`, and that account's pending charges are sent at once.
     */
    async function setSessionToken(token, options = {}) {
        await core.invoke(COMMANDS.setSessionToken, args({ token, accountId: options.accountId }));
    }
    /**
     * Signs out: forgets the session token. No ledger call is made until the next sign-in; announced by
     * `points://session-changed`. Pending charges stay kept for their own account.
     */
    async function clearSessionToken() {
        await core.invoke(COMMANDS.clearSessionToken);
    }
    /**
     * The signed-in account's charges not yet acknowledged by the ledger, and those it refused for
     * good (count 0 and no refusals while signed out); `otherAccounts` counts the charges pending on
     * this machine for other accounts.
     */
    function getPending() {
        return core.invoke(COMMANDS.getPending);
    }
    /**
     * Sends the pending charges now (after a pass already under way, if any) instead of waiting for
     * the background sync, and answers what is left.
     */
    function syncPending() {
        return core.invoke(COMMANDS.syncPending);
    }
    /**
     * Moves the signed-in account's refused charge with that key back to the pending charges and asks
     * the background sync to send it now (under the same key); answers the pending status then.
     */
    function retryRefused(idempotencyKey) {
        return core.invoke(COMMANDS.retryRefused, { idempotencyKey });
    }
    /**
     * Removes the signed-in account's refused charge with that key from the record (the user has seen
     * it; it stays unpaid); answers the pending status then.
     */
    function dismissRefused(idempotencyKey) {
        return core.invoke(COMMANDS.dismissRefused, { idempotencyKey });
    }

    // Keyed by the binding's kinds (and the offline ones): a kind added to the Rust enum, or one of the
    // binding's removed from it, fails to compile here.
    const KINDS = {
        insufficientPoints: true,
        unauthorized: true,
        unknownService: true,
        invalidDuration: true,
        notChargeableHere: true,
        invalidArgument: true,
        network: true,
        timeout: true,
        backend: true,
        protocol: true,
        storage: true,
        notConfigured: true,
        offlineAllowanceNone: true,
        offlineAllowanceInvalid: true,
        offlineAllowanceExpired: true,
        offlineAllowanceExhausted: true,
        offlineClockTurnedBack: true,
    };
    const OFFLINE_KINDS = {
        offlineAllowanceNone: true,
        offlineAllowanceInvalid: true,
        offlineAllowanceExpired: true,
        offlineAllowanceExhausted: true,
        offlineClockTurnedBack: true,
    };
    /** Every kind of {@link PointsError}. */
    const POINTS_ERROR_KINDS = Object.keys(KINDS);
    /** Every kind of {@link OfflineError}. */
    const OFFLINE_ERROR_KINDS = Object.keys(OFFLINE_KINDS);
    /**
     * Whether a rejection of a plugin command is the plugin's own error. Tauri's own refusals (a
     * command the capability does not allow, an unknown command) are plain strings: not these.
     */
    function isPointsError(error) {
        if (typeof error !== "object" || error === null || Array.isArray(error))
            return false;
        const kind = error.kind;
        return typeof kind === "string" && Object.prototype.hasOwnProperty.call(KINDS, kind);
    }
    /** Whether `error` is a {@link PointsError} of the given kind. */
    function isPointsErrorKind(error, kind) {
        return isPointsError(error) && error.kind === kind;
    }
    /** Whether `error` says the user has too few points (the app should offer a recharge). */
    function isInsufficientPoints(error) {
        return isPointsErrorKind(error, "insufficientPoints");
    }
    /**
     * Whether `error` is a refusal of offline work for want of a usable allowance, or for a clock set
     * back (the job can run once the ledger is reached again). Never a lack of points.
     */
    function isOfflineError(error) {
        return isPointsError(error) && Object.prototype.hasOwnProperty.call(OFFLINE_KINDS, error.kind);
    }
    /** A human-readable text for any rejection: a PointsError, a Tauri refusal, an Error. */
    function errorMessage(error) {
        if (typeof error === "string")
            return error;
        if (typeof error === "object" && error !== null) {
            const message = error.message;
            if (typeof message === "string" && message !== "")
                return message;
            if (isPointsError(error))
                return error.kind;
        }
        return String(error);
    }

    /** Every {@link Locale}, the default (fallback) one last. */
    const LOCALES = Object.freeze(["zh-CN", "en"]);
    /** The language used when neither the host nor the browser names one of {@link LOCALES}. */
    const FALLBACK_LOCALE = "en";
    const ZH_CN = {
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
    const EN = {
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
    const DEFAULT_MESSAGES = deepFreeze({ "zh-CN": ZH_CN, en: EN });
    let chosen = null;
    let tables = { ...DEFAULT_MESSAGES };
    let version = 0;
    const listeners = new Set();
    function deepFreeze(value) {
        if (typeof value === "object" && value !== null) {
            for (const inner of Object.values(value))
                deepFreeze(inner);
            Object.freeze(value);
        }
        return value;
    }
    function changed() {
        version++;
        for (const listener of [...listeners])
            listener();
    }
    /**
     * The {@link Locale} of a BCP 47 language tag (`zh`, `zh-CN`, `zh-Hans-SG`, `en-GB`, ...), or
     * `null` when it is none of them. Every Chinese tag gives `zh-CN`, the only Chinese table.
     */
    function localeOf(tag) {
        if (typeof tag !== "string")
            return null;
        const language = tag.trim().toLowerCase().split(/[-_]/)[0];
        if (language === "zh")
            return "zh-CN";
        if (language === "en")
            return "en";
        return null;
    }
    /** The language the browser asks for (`navigator.languages`, then `navigator.language`), or the fallback. */
    function browserLocale() {
        const nav = globalThis.navigator;
        const tags = [...(nav?.languages ?? []), nav?.language];
        for (const tag of tags) {
            const locale = localeOf(tag);
            if (locale !== null)
                return locale;
        }
        return FALLBACK_LOCALE;
    }
    /** The language of the texts: the host's choice ({@link setLocale}), else the browser's. */
    function getLocale() {
        return chosen ?? browserLocale();
    }
    /**
     * Chooses the language of the texts (any tag {@link localeOf} knows; a tag it does not know
     * gives the fallback); `null` goes back to the browser's. Returns the language now used.
     */
    function setLocale(locale) {
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
    function overrideMessages(locale, overrides) {
        const base = tables[locale];
        const next = { ...base };
        for (const key of Object.keys(overrides)) {
            const value = overrides[key];
            if (value === undefined)
                continue;
            next[key] = typeof value === "string" ? value : { ...base[key], ...definedEntries(value) };
        }
        tables = { ...tables, [locale]: deepFreeze(next) };
        changed();
    }
    /** Removes every override (of `locale`, or of all languages). */
    function resetMessages(locale) {
        tables = locale ? { ...tables, [locale]: DEFAULT_MESSAGES[locale] } : { ...DEFAULT_MESSAGES };
        changed();
    }
    function definedEntries(value) {
        return Object.fromEntries(Object.entries(value).filter(([, v]) => typeof v === "string"));
    }
    /** The table of `locale` (default: {@link getLocale}), with the host's overrides. */
    function getMessages(locale = getLocale()) {
        return tables[locale];
    }
    /**
     * Calls `listener` when the language or an entry of the table changes; returns the function
     * that stops it.
     */
    function onMessagesChanged(listener) {
        followBrowserLanguage();
        listeners.add(listener);
        return () => {
            listeners.delete(listener);
        };
    }
    let followingBrowser = false;
    /** A change of the browser's language is a change of the texts while the host chose none. */
    function followBrowserLanguage() {
        if (followingBrowser)
            return;
        const target = globalThis;
        if (typeof target.addEventListener !== "function")
            return;
        followingBrowser = true;
        target.addEventListener("languagechange", () => {
            if (chosen === null)
                changed();
        });
    }
    /** A number that grows at every change of language or table (to tell a text made before one). */
    function messagesVersion() {
        return version;
    }
    /**
     * `template` with each `{name}` replaced by `values[name]` (numbers written for `locale`); a
     * placeholder without a value stays as it is.
     */
    function formatMessage(template, values, locale = getLocale()) {
        return template.replace(/\{(\w+)\}/g, (whole, name) => {
            const value = Object.prototype.hasOwnProperty.call(values, name) ? values[name] : undefined;
            if (typeof value === "number")
                return new Intl.NumberFormat(locale).format(value);
            return typeof value === "string" ? value : whole;
        });
    }
    /** The name of a service in `locale`, or its id when the table does not name it. */
    function serviceName(service, locale = getLocale()) {
        const names = getMessages(locale).services;
        return Object.prototype.hasOwnProperty.call(names, service) ? names[service] : service;
    }
    /** An RFC 3339 moment as a date and time (to the minute) of `locale`, in local time; as it is when unreadable. */
    function dateTime(moment, locale) {
        const at = new Date(moment);
        if (Number.isNaN(at.getTime()))
            return moment;
        return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(at);
    }
    /** The values an error's text can use: its fields, `{service}` by name, `{until}` as a date and time. */
    function errorValues(error, locale) {
        const values = {};
        for (const [key, value] of Object.entries(error)) {
            if (typeof value === "string" || typeof value === "number")
                values[key] = value;
        }
        if (typeof values.service === "string")
            values.service = serviceName(values.service, locale);
        if (typeof values.until === "string")
            values.until = dateTime(values.until, locale);
        return values;
    }
    /**
     * The text to show the user for any rejection: a `PointsError` by its `kind` (in `locale`,
     * default {@link getLocale}); anything else (a Tauri refusal, an `Error`) as `unexpected`.
     */
    function localizeError(error, locale = getLocale()) {
        const table = getMessages(locale);
        if (isPointsError(error))
            return formatMessage(table.errors[error.kind], errorValues(error, locale), locale);
        let detail;
        if (typeof error === "string")
            detail = error;
        else {
            const message = error?.message;
            detail = typeof message === "string" && message !== "" ? message : String(error);
        }
        return formatMessage(table.unexpected, { detail }, locale);
    }
    /** The recharge dialog's texts for a refusal's figures, in `locale` (default {@link getLocale}). */
    function localizedRecharge(figures, locale = getLocale()) {
        const table = getMessages(locale).recharge;
        const { service, required, balance } = figures;
        let template;
        if (required == null || balance == null)
            template = table.messageWithoutFigures;
        else if (service == null || service === "")
            template = table.messageWithoutService;
        else
            template = table.message;
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
    function localizedRecharged(figures, locale = getLocale()) {
        return formatMessage(getMessages(locale).recharge.satisfied, { balance: figures.balance }, locale);
    }
    /**
     * The low-balance banner's texts for a crossing (the store's `lowBalance`), in `locale`
     * (default {@link getLocale}). `balance` may be the balance shown now rather than the crossing's.
     */
    function localizedLowBalance(figures, locale = getLocale()) {
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
    function localizedOffline(allowance, locale = getLocale()) {
        const table = getMessages(locale).offline;
        if (allowance.until === null)
            return table.messageWithoutAllowance;
        return formatMessage(table.message, { remaining: allowance.remaining, until: dateTime(allowance.until, locale) }, locale);
    }

    /** The events the plugin emits to every window. */
    const EVENTS = {
        /**
         * {@link BalanceChanged}: the signed-in account's whole summary (balance and totals) after a
         * fetch, a charge, a re-sent charge, a change on the ledger (its stream or a poll), with its
         * `seq` and `session`, in `seq` order.
         */
        balanceChanged: "points://balance-changed",
        /**
         * {@link LowBalance}: the balance went below a configured threshold (once per crossing; again
         * only after it was back at or above it).
         */
        lowBalance: "points://low-balance",
        /** {@link InsufficientPoints}: a refusal for lack of points, naming the window refused. */
        insufficient: "points://insufficient",
        /** {@link PendingCharges}: the signed-in account's unacknowledged charges; also at every change of session. */
        pendingChanged: "points://pending-changed",
        /** {@link SessionChanged}: a sign-in, a sign-out or another account. */
        sessionChanged: "points://session-changed",
        /** {@link RefusedCharge}: the ledger refused a finished job's charge for good. */
        chargeRefused: "points://charge-refused",
        /**
         * {@link OfflineStatus}: the offline state of the session changed (the ledger found unreachable
         * or reachable again, an offline job spent some of the allowance, the allowance expired).
         */
        offlineChanged: "points://offline-changed",
    };
    /** Calls `handler` on every balance change; resolves to the function that stops listening. */
    function onBalanceChanged(handler) {
        return event.listen(EVENTS.balanceChanged, (event) => handler(event.payload));
    }
    /** Calls `handler` at every crossing below a low-balance threshold; resolves to the function that stops listening. */
    function onLowBalance(handler) {
        return event.listen(EVENTS.lowBalance, (event) => handler(event.payload));
    }
    /**
     * Calls `handler` on every refusal for lack of points, in any window (`payload.window` says which
     * one was refused); resolves to the function that stops listening.
     */
    function onInsufficientPoints(handler) {
        return event.listen(EVENTS.insufficient, (event) => handler(event.payload));
    }
    /** Calls `handler` when the number of unacknowledged charges changes; resolves to the function that stops listening. */
    function onPendingChanged(handler) {
        return event.listen(EVENTS.pendingChanged, (event) => handler(event.payload));
    }
    /** Calls `handler` at every sign-in, sign-out and change of account; resolves to the function that stops listening. */
    function onSessionChanged(handler) {
        return event.listen(EVENTS.sessionChanged, (event) => handler(event.payload));
    }
    /** Calls `handler` when the ledger refuses a charge for good; resolves to the function that stops listening. */
    function onChargeRefused(handler) {
        return event.listen(EVENTS.chargeRefused, (event) => handler(event.payload));
    }
    /** Calls `handler` at every change of the offline state; resolves to the function that stops listening. */
    function onOfflineChanged(handler) {
        return event.listen(EVENTS.offlineChanged, (event) => handler(event.payload));
    }

    /** The HTTP status of "insufficient points". */
    const PAYMENT_REQUIRED = 402;
    function isObject(value) {
        return typeof value === "object" && value !== null && !Array.isArray(value);
    }
    function text(value) {
        return typeof value === "string" && value !== "" ? value : null;
    }
    function count(value) {
        if (typeof value === "number")
            return Number.isFinite(value) ? value : null;
        // Some backends send decimals as strings ("12" or "12.0").
        if (typeof value === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(value))
            return Number(value);
        return null;
    }
    function fields(source) {
        return { service: text(source.service), required: count(source.required), balance: count(source.balance) };
    }
    /**
     * The figures of a 402 body from the app's own backend, whatever its shape:
     * - `application/problem+json`: `{type, title, status, code: "insufficient_points", service, required, balance}`;
     * - FastAPI: `{"detail": {service, required, balance, ...}}` or `{"detail": "a message"}`;
     * - an empty or unreadable body.
     *
     * A figure the body does not give is `null`. A string is parsed as JSON first.
     */
    function insufficientPointsFromBody(body) {
        let value = body;
        if (typeof value === "string") {
            try {
                value = value.trim() === "" ? null : JSON.parse(value);
            }
            catch {
                value = null;
            }
        }
        if (!isObject(value))
            return { service: null, required: null, balance: null };
        if ("detail" in value) {
            const detail = value.detail;
            if (isObject(detail))
                return fields(detail);
            // A plain message (or a validation list): only the top level can still hold figures.
        }
        return fields(value);
    }
    /**
     * The figures of a 402 `Response` from the app's own backend (see
     * {@link insufficientPointsFromBody}), or `null` when its status is not 402. The body is read from
     * a clone when it has not been read yet, so the caller can still read it.
     */
    async function insufficientPointsFromResponse(response) {
        if (response.status !== PAYMENT_REQUIRED)
            return null;
        let body = null;
        if (!response.bodyUsed) {
            try {
                body = await response.clone().text();
            }
            catch {
                body = null;
            }
        }
        return insufficientPointsFromBody(body);
    }

    const CLOSED = Object.freeze({
        open: false,
        satisfied: false,
        service: null,
        required: null,
        balance: null,
        texts: null,
    });
    const NO_REFUSALS = Object.freeze([]);
    /**
     * How long a refusal seen one way (the rejection of a call, or the plugin's event) waits for the
     * other report of the same refusal, which must not open the dialog a second time.
     */
    const SAME_REFUSAL_MS = 2000;
    function sameFields(a, b) {
        const ka = Object.keys(a);
        if (ka.length !== Object.keys(b).length)
            return false;
        return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && Object.is(a[k], b[k]));
    }
    function toStoreError(error) {
        if (typeof error === "string" || error instanceof Error || isPointsError(error))
            return error;
        const message = error?.message;
        return new Error(typeof message === "string" ? message : String(error), { cause: error });
    }
    function refusalKey(info) {
        return JSON.stringify([info.service ?? null, info.required ?? null, info.balance ?? null]);
    }
    function refusedKey(refused) {
        return `${refused.idempotencyKey}\n${refused.refusedAt}`;
    }
    /** The refusals of `incoming` once each, oldest first: `current` itself when it lists the same. */
    function refusalList(current, incoming) {
        const seen = new Set();
        const list = [];
        for (const refused of incoming) {
            const key = refusedKey(refused);
            if (seen.has(key))
                continue;
            seen.add(key);
            list.push(refused);
        }
        list.sort((a, b) => a.refusedAt - b.refusedAt);
        if (list.length === current.length && list.every((refused, i) => refusedKey(refused) === refusedKey(current[i]))) {
            return current;
        }
        return list.length === 0 ? NO_REFUSALS : Object.freeze(list);
    }
    /** The figure of `otherAccounts`, 0 from a plugin that does not send it. */
    function otherAccounts(status) {
        const figure = status.otherAccounts;
        return typeof figure === "number" ? figure : 0;
    }
    /** `current` with the refusals of `incoming` it lacks, oldest first (the same array when none). */
    function withRefusals(current, incoming) {
        const seen = new Set(current.map(refusedKey));
        const added = [];
        for (const refused of incoming) {
            const key = refusedKey(refused);
            if (seen.has(key))
                continue;
            seen.add(key);
            added.push(refused);
        }
        if (added.length === 0)
            return current;
        return Object.freeze([...current, ...added].sort((a, b) => a.refusedAt - b.refusedAt));
    }
    /** Calls every listener with `value`; one that throws does not stop the others (its error is rethrown apart). */
    function notify(listeners, value) {
        for (const listener of [...listeners]) {
            try {
                listener(value);
            }
            catch (error) {
                setTimeout(() => {
                    throw error;
                });
            }
        }
    }
    /** Whether a figure of `seq` is newer than one of `than` (when either is unknown: yes, it came later). */
    function isNewer(seq, than) {
        return seq == null || than === null || seq > than;
    }
    /** The label of the current webview, or `null` outside Tauri. */
    function currentWebviewLabel() {
        try {
            return webview.getCurrentWebview().label;
        }
        catch {
            return null;
        }
    }
    /**
     * Makes a store of the user's points. It does nothing until an action or {@link PointStore.start}
     * is called.
     *
     * Once started it follows the plugin's session: at every sign-in, sign-out or change of account it
     * empties itself (balance, pending and refused charges, offline state, error, dialog) and reads the
     * balance (when signed in), the pending charges and the offline state again; an answer to a call made before the change, or an
     * event of an older session, is not applied.
     *
     * Balances are whole summaries ordered by the ledger's `seq`: a summary (a fetch's answer, or the
     * plugin's `points://balance-changed`) whose `seq` is lower than the `seq` of the one shown is
     * older and is dropped; when either has no `seq` (a backend that does not send it), the one that
     * arrives last is shown. A figure of a balance alone (a charge's receipt, a price check) is never
     * merged into the totals shown: the plugin emits the whole summary of a charge, and a price check
     * newer than the summary shown has the store fetch the summary.
     *
     * A summary is also what ends a low-balance crossing (`lowBalance`) and what closes an open
     * recharge dialog whose refusal it pays for (`recharge.satisfied`, {@link PointStore.onRecharged}).
     */
    function createPointStore(options = {}) {
        let state = Object.freeze({
            balance: options.initialBalance ? Object.freeze({ ...options.initialBalance }) : null,
            lowBalance: null,
            offline: null,
            loading: false,
            error: null,
            pendingCharges: 0,
            pendingOtherAccounts: 0,
            refusedCharges: NO_REFUSALS,
            session: null,
            signedIn: null,
            recharge: CLOSED,
        });
        const listeners = new Set();
        let inflight = null;
        /** Grows at every change of session: a call made in an older epoch does not touch the state. */
        let epoch = 0;
        /** The session the store last emptied itself for. */
        let emptiedFor = null;
        /** Refusals that opened the dialog, waiting for their other report. */
        let seenRefusals = [];
        /** Reads of the pending status started, and the number of the latest one shown. */
        let reads = 0;
        let shownRead = 0;
        /** Refusals heard by event, with the number of reads started then (a later read lists them). */
        let heard = [];
        let label = options.webviewLabel;
        /** The crossings below a threshold in force, lowest threshold first (`lowBalance` is the first). */
        let crossings = [];
        /** The `seq` shown when the dialog opened: only a newer summary can pay for its refusal. */
        let dialogSeq = null;
        const rechargedListeners = new Set();
        const lowBalanceListeners = new Set();
        const offlineListeners = new Set();
        /** Offline events heard: a read of the offline state sent before the latest one is older than it. */
        let offlineHeard = 0;
        let started = null;
        let attachment = 0;
        let unlisteners = [];
        /** The table version and language the dialog's texts were made with. */
        let textsOf = { version: messagesVersion(), locale: getLocale() };
        /** Follows the language while someone subscribes. */
        let stopFollowingMessages = null;
        function set(patch) {
            let next = null;
            for (const key of Object.keys(patch)) {
                if (!Object.is(patch[key], state[key])) {
                    next = { ...state, ...patch };
                    break;
                }
            }
            if (next === null)
                return;
            state = Object.freeze(next);
            for (const listener of [...listeners])
                listener();
        }
        function ownLabel() {
            if (label === undefined) {
                const found = currentWebviewLabel();
                if (found === null)
                    return null; // not known yet: asked again next time
                label = found;
            }
            return label;
        }
        /** The whole balance, keeping the current object when nothing in it changed. */
        function replaceBalance(balance) {
            const current = state.balance;
            return current !== null && sameFields(current, balance) ? current : Object.freeze({ ...balance });
        }
        /**
         * Shows a whole summary of the ledger (with `also` in the same change), unless it is older than
         * the one shown (a lower `seq`): ends the low-balance crossings it is at or above, and closes
         * the dialog whose refusal it pays for, calling the `onRecharged` listeners after the change.
         */
        function showSummary(summary, also = {}) {
            const current = state.balance;
            const shown = current?.seq ?? null;
            if (current !== null && summary.seq != null && shown !== null && summary.seq < shown) {
                set(also);
                return;
            }
            const patch = { ...also, balance: replaceBalance(summary) };
            const left = crossings.filter((c) => !(summary.balance >= c.low.threshold && isNewer(summary.seq, c.seq)));
            if (left.length !== crossings.length) {
                crossings = left;
                patch.lowBalance = left[0]?.low ?? null;
            }
            const dialog = state.recharge;
            let recharged = null;
            if (dialog.open && dialog.required !== null && summary.balance >= dialog.required && isNewer(summary.seq, dialogSeq)) {
                recharged = Object.freeze({ service: dialog.service, required: dialog.required, summary: patch.balance });
                patch.recharge = Object.freeze({
                    open: false,
                    satisfied: true,
                    service: dialog.service,
                    required: dialog.required,
                    balance: summary.balance,
                    texts: null,
                });
            }
            set(patch);
            if (recharged !== null)
                notify(rechargedListeners, recharged);
        }
        /** A balance without its totals (a price check): fetches the summary when it is newer than the one shown. */
        function sawFigure(balance, seq) {
            const current = state.balance;
            if (current === null || current.balance === balance)
                return;
            if (seq != null && current.seq != null && seq <= current.seq)
                return;
            store.fetchBalance().catch(() => undefined);
        }
        /**
         * The dialog open with `info`'s figures and texts of the current language; a new refusal
         * (`refusal`, not a change of language) also notes the `seq` shown, which it must be paid after.
         */
        function dialog(info = {}, refusal = true) {
            const figures = { service: info.service ?? null, required: info.required ?? null, balance: info.balance ?? null };
            textsOf = { version: messagesVersion(), locale: getLocale() };
            if (refusal)
                dialogSeq = state.balance?.seq ?? null;
            const current = state.recharge;
            const texts = localizedRecharge(figures);
            const same = current.texts !== null && sameFields(current.texts, texts);
            const next = { open: true, satisfied: false, ...figures, texts: same ? current.texts : texts };
            return sameFields(current, next) ? current : Object.freeze(next);
        }
        /** The dialog with texts of the current language and table, when they changed since it was made. */
        function relocalized() {
            const current = state.recharge;
            if (!current.open || (textsOf.version === messagesVersion() && textsOf.locale === getLocale()))
                return current;
            return dialog(current, false);
        }
        /**
         * Whether a refusal reported `from` a call or an event should open the dialog: not when the
         * other report of the same refusal already did.
         */
        function firstReport(info, from) {
            const now = Date.now();
            const key = refusalKey(info);
            seenRefusals = seenRefusals.filter((seen) => now - seen.at < SAME_REFUSAL_MS);
            const other = seenRefusals.findIndex((seen) => seen.key === key && seen.from !== from);
            if (other !== -1) {
                seenRefusals.splice(other, 1);
                return false;
            }
            seenRefusals.push({ key, from, at: now });
            return true;
        }
        /** Keeps a failure in `error` (with `also` in the same change); opens the dialog for a 402. */
        function fail(error, also = {}) {
            const patch = { ...also, error: toStoreError(error) };
            if (isInsufficientPoints(error) && firstReport(error, "call"))
                patch.recharge = dialog(error);
            set(patch);
        }
        /**
         * Empties the store for session `session` (a sign-in, a sign-out or another account): calls
         * made before no longer touch the state. Then reads the balance (when signed in) and, unless
         * `pendingKnown`, the pending charges.
         */
        function empty(session, signedIn, pendingKnown) {
            epoch++;
            emptiedFor = session;
            inflight = null;
            seenRefusals = [];
            heard = [];
            crossings = [];
            shownRead = 0; // the reads are ordered within a session
            set({
                balance: null,
                lowBalance: null,
                offline: null,
                loading: false,
                error: null,
                pendingCharges: 0,
                pendingOtherAccounts: 0,
                refusedCharges: NO_REFUSALS,
                session,
                signedIn,
                recharge: CLOSED,
            });
            if (signedIn === true)
                store.fetchBalance().catch(() => undefined);
            if (!pendingKnown)
                readPending(getPending, false).catch(() => undefined);
            if (signedIn !== false) {
                readLowBalance();
                readOffline();
            }
        }
        /** The allowance, keeping the current object when nothing in it changed. */
        function replaceOffline(offline) {
            const current = state.offline;
            if (offline === null)
                return null;
            return current !== null && sameFields(current, offline) ? current : Object.freeze({ ...offline });
        }
        /**
         * Asks the plugin for the offline state of the session (a window opened after
         * `points://offline-changed` fired has heard no event) and shows it, unless an event came
         * meanwhile; calls no `onOffline` listener.
         */
        function readOffline() {
            const heard = offlineHeard;
            getOffline()
                .then((status) => {
                if (heard !== offlineHeard || !ofCurrentSession(status.session, null, false))
                    return;
                set({ offline: replaceOffline(status.offline) });
            })
                .catch(() => undefined);
        }
        /**
         * Asks the plugin which crossing is in force (a window opened after `points://low-balance`
         * fired, or an app started below a threshold, has heard no event) and shows it, without
         * calling the `onLowBalance` listeners: it is no new crossing.
         */
        function readLowBalance() {
            getLowBalance()
                .then((low) => {
                if (low === null || !ofCurrentSession(low.session, true, false))
                    return;
                if (crossings.some((c) => c.low.threshold === low.threshold))
                    return;
                if (state.balance !== null && state.balance.balance >= low.threshold)
                    return;
                const crossing = { low: Object.freeze({ ...low }), seq: state.balance?.seq ?? null };
                crossings = [...crossings, crossing].sort((a, b) => a.low.threshold - b.low.threshold);
                set({ lowBalance: crossings[0].low });
            })
                .catch(() => undefined);
        }
        /**
         * Takes the session number of an answer or an event: whether it is the session shown (a newer
         * one empties the store first; the first one heard is adopted).
         */
        function ofCurrentSession(session, signedIn, pendingKnown) {
            const known = state.session;
            if (known === null) {
                set(signedIn === null ? { session } : { session, signedIn });
                return true;
            }
            if (session < known)
                return false;
            if (session > known)
                empty(session, signedIn, pendingKnown);
            return true;
        }
        function onSession(change) {
            const known = state.session;
            if (known !== null && change.session < known)
                return;
            if (emptiedFor === change.session) {
                // Already emptied for it, on an answer that carried it first: only learn who is signed in.
                set({ signedIn: change.signedIn });
                if (change.signedIn && state.balance === null && inflight === null)
                    store.fetchBalance().catch(() => undefined);
                return;
            }
            // Also for the session adopted from an answer: a balance read before then may be the last one's.
            empty(change.session, change.signedIn, false);
        }
        function onBalance(change) {
            if (!ofCurrentSession(change.session, true, false))
                return;
            // A plugin of contract v1.1 sends `details` (a fetch's summary, else null) instead of
            // `summary`: a figure without its summary is fetched whole.
            const old = change;
            const summary = old.summary ?? old.details;
            if (typeof summary === "object" && summary !== null)
                showSummary(summary);
            else
                sawFigure(change.balance, change.seq);
        }
        function onLow(low) {
            if (!ofCurrentSession(low.session, true, false))
                return;
            const crossing = { low: Object.freeze({ ...low }), seq: state.balance?.seq ?? null };
            crossings = [...crossings.filter((c) => c.low.threshold !== low.threshold), crossing].sort((a, b) => a.low.threshold - b.low.threshold);
            set({ lowBalance: crossings[0].low });
            notify(lowBalanceListeners, crossing.low);
        }
        function onOfflineEvent(status) {
            if (state.session !== null && status.session < state.session)
                return;
            // Counted first: a read sent when this event empties the store for its session answers later.
            offlineHeard++;
            if (!ofCurrentSession(status.session, null, false))
                return;
            const offline = replaceOffline(status.offline);
            set({ offline });
            notify(offlineListeners, offline);
        }
        function onInsufficient(info) {
            const mine = ownLabel();
            if (info.window === null || info.window !== mine)
                return;
            if (firstReport(info, "event"))
                set({ recharge: dialog(info) });
        }
        /**
         * Shows the answer of read number `read`: its refused charges are the whole record (a retried
         * or dismissed one leaves it), with those heard by event since the read was sent. The answer
         * of a read sent before the one shown only tells who is signed in.
         */
        function applyPending(status, clearError, read) {
            if (!ofCurrentSession(status.session, status.signedIn, true))
                return;
            const patch = { signedIn: status.signedIn };
            if (read >= shownRead) {
                shownRead = read;
                heard = heard.filter((h) => h.reads >= read);
                patch.pendingCharges = status.count;
                patch.pendingOtherAccounts = otherAccounts(status);
                patch.refusedCharges = refusalList(state.refusedCharges, [...status.refused, ...heard.map((h) => h.refused)]);
            }
            if (clearError)
                patch.error = null;
            set(patch);
        }
        async function readPending(read, record) {
            const mine = epoch;
            const number = ++reads;
            try {
                const status = await read();
                applyPending(status, record, number);
                return status;
            }
            catch (error) {
                if (record && mine === epoch)
                    fail(error);
                throw error;
            }
        }
        const store = {
            subscribe(listener) {
                listeners.add(listener);
                stopFollowingMessages ??= onMessagesChanged(() => set({ recharge: relocalized() }));
                return () => {
                    listeners.delete(listener);
                    if (listeners.size === 0 && stopFollowingMessages) {
                        stopFollowingMessages();
                        stopFollowingMessages = null;
                    }
                };
            },
            getSnapshot() {
                // Without subscribers nobody heard a change of language: the texts are brought up to date here.
                const recharge = relocalized();
                if (recharge !== state.recharge)
                    state = Object.freeze({ ...state, recharge });
                return state;
            },
            fetchBalance() {
                if (inflight)
                    return inflight;
                const mine = epoch;
                set({ loading: true });
                const request = getBalance().then((balance) => {
                    if (mine === epoch) {
                        inflight = null;
                        showSummary(balance, { loading: false, error: null, signedIn: true });
                    }
                    return balance;
                }, (error) => {
                    if (mine === epoch) {
                        inflight = null;
                        fail(error, { loading: false });
                    }
                    throw error;
                });
                inflight = request;
                return request;
            },
            async checkCost(service, duration) {
                const mine = epoch;
                try {
                    const cost = await checkCost(service, duration);
                    if (mine === epoch) {
                        set({ error: null });
                        sawFigure(cost.balance, cost.seq);
                    }
                    return cost;
                }
                catch (error) {
                    if (mine === epoch)
                        fail(error);
                    throw error;
                }
            },
            async charge(service, chargeOptions = {}) {
                const mine = epoch;
                // One key per user action, made before the call: a retry with it is never a second charge.
                const idempotencyKey = chargeOptions.idempotencyKey ?? newIdempotencyKey();
                try {
                    const outcome = await charge(service, { ...chargeOptions, idempotencyKey });
                    if (mine === epoch) {
                        if (outcome.status === "acknowledged") {
                            // The receipt's balance comes without totals: the plugin's event brings the summary.
                            set({ error: null });
                        }
                        else {
                            // Journaled (pending) or refused for good: not a failure of the call.
                            set({ error: null });
                            await readPending(getPending, false).catch(() => undefined);
                        }
                    }
                    return outcome;
                }
                catch (error) {
                    if (mine === epoch)
                        fail(error);
                    throw error;
                }
            },
            fetchPending: () => readPending(getPending, true),
            syncPending: () => readPending(syncPending, true),
            retryRefused: (idempotencyKey) => readPending(() => retryRefused(idempotencyKey), true),
            dismissRefused: (idempotencyKey) => readPending(() => dismissRefused(idempotencyKey), true),
            openRecharge(info) {
                set({ recharge: dialog(info) });
            },
            closeRecharge() {
                set({ recharge: CLOSED });
            },
            clearError() {
                set({ error: null });
            },
            onRecharged(listener) {
                const own = (recharged) => listener(recharged);
                rechargedListeners.add(own);
                return () => void rechargedListeners.delete(own);
            },
            onLowBalance(listener) {
                const own = (low) => listener(low);
                lowBalanceListeners.add(own);
                return () => void lowBalanceListeners.delete(own);
            },
            onOffline(listener) {
                const own = (offline) => listener(offline);
                offlineListeners.add(own);
                return () => void offlineListeners.delete(own);
            },
            handleError(error) {
                fail(error);
                return isInsufficientPoints(error);
            },
            async handleBackendResponse(response) {
                const mine = epoch;
                const info = await insufficientPointsFromResponse(response);
                if (info === null)
                    return false;
                if (mine === epoch)
                    set({ recharge: dialog(info) });
                return true;
            },
            handleBackendBody(body, status) {
                if (status !== PAYMENT_REQUIRED)
                    return false;
                set({ recharge: dialog(insufficientPointsFromBody(body)) });
                return true;
            },
            start() {
                if (started)
                    return started;
                const mine = ++attachment;
                const attaching = [
                    onBalanceChanged(onBalance),
                    onLowBalance(onLow),
                    onInsufficientPoints(onInsufficient),
                    onPendingChanged((pending) => {
                        if (ofCurrentSession(pending.session, null, true))
                            set({ pendingCharges: pending.count });
                    }),
                    onSessionChanged(onSession),
                    onChargeRefused((refused) => {
                        heard.push({ refused, reads });
                        set({ refusedCharges: withRefusals(state.refusedCharges, [refused]) });
                    }),
                    onOfflineChanged(onOfflineEvent),
                ];
                const attempt = Promise.allSettled(attaching).then(async (results) => {
                    const attached = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
                    const failure = results.find((r) => r.status === "rejected");
                    if (mine !== attachment || failure) {
                        for (const unlisten of attached)
                            unlisten();
                        if (mine === attachment)
                            started = null;
                        if (failure)
                            throw failure.reason;
                        return;
                    }
                    unlisteners = attached;
                    readLowBalance();
                    readOffline();
                    // A restart with charges still pending shows them at once.
                    await readPending(getPending, false).catch(() => undefined);
                });
                started = attempt;
                return attempt;
            },
            dispose() {
                attachment++;
                started = null;
                const detaching = unlisteners;
                unlisteners = [];
                for (const unlisten of detaching)
                    unlisten();
            },
        };
        if (options.start)
            void store.start().catch(() => undefined);
        return store;
    }
    const DEFAULT_STORE = Symbol.for("tauri-plugin-points-api.defaultStore");
    /**
     * The store shared by the whole app (made on first use, one per window). `usePoints()` of the
     * `/react` entry uses it.
     */
    function getPointStore() {
        const holder = globalThis;
        return (holder[DEFAULT_STORE] ??= createPointStore());
    }

    exports.COMMANDS = COMMANDS;
    exports.DEFAULT_MESSAGES = DEFAULT_MESSAGES;
    exports.EVENTS = EVENTS;
    exports.FALLBACK_LOCALE = FALLBACK_LOCALE;
    exports.LOCALES = LOCALES;
    exports.OFFLINE_ERROR_KINDS = OFFLINE_ERROR_KINDS;
    exports.PAYMENT_REQUIRED = PAYMENT_REQUIRED;
    exports.PLUGIN_NAME = PLUGIN_NAME;
    exports.POINTS_ERROR_KINDS = POINTS_ERROR_KINDS;
    exports.browserLocale = browserLocale;
    exports.charge = charge;
    exports.checkCost = checkCost;
    exports.clearSessionToken = clearSessionToken;
    exports.createPointStore = createPointStore;
    exports.dismissRefused = dismissRefused;
    exports.errorMessage = errorMessage;
    exports.formatMessage = formatMessage;
    exports.getBalance = getBalance;
    exports.getLocale = getLocale;
    exports.getMessages = getMessages;
    exports.getOffline = getOffline;
    exports.getPending = getPending;
    exports.getPointStore = getPointStore;
    exports.getPrices = getPrices;
    exports.idempotencyKeyOf = idempotencyKeyOf;
    exports.insufficientPointsFromBody = insufficientPointsFromBody;
    exports.insufficientPointsFromResponse = insufficientPointsFromResponse;
    exports.isInsufficientPoints = isInsufficientPoints;
    exports.isOfflineError = isOfflineError;
    exports.isPointsError = isPointsError;
    exports.isPointsErrorKind = isPointsErrorKind;
    exports.listBatches = listBatches;
    exports.listTransactions = listTransactions;
    exports.localeOf = localeOf;
    exports.localizeError = localizeError;
    exports.localizedLowBalance = localizedLowBalance;
    exports.localizedOffline = localizedOffline;
    exports.localizedRecharge = localizedRecharge;
    exports.localizedRecharged = localizedRecharged;
    exports.messagesVersion = messagesVersion;
    exports.newIdempotencyKey = newIdempotencyKey;
    exports.onBalanceChanged = onBalanceChanged;
    exports.onChargeRefused = onChargeRefused;
    exports.onInsufficientPoints = onInsufficientPoints;
    exports.onLowBalance = onLowBalance;
    exports.onMessagesChanged = onMessagesChanged;
    exports.onOfflineChanged = onOfflineChanged;
    exports.onPendingChanged = onPendingChanged;
    exports.onSessionChanged = onSessionChanged;
    exports.overrideMessages = overrideMessages;
    exports.resetMessages = resetMessages;
    exports.retryRefused = retryRefused;
    exports.serviceName = serviceName;
    exports.setLocale = setLocale;
    exports.setSessionToken = setSessionToken;
    exports.syncPending = syncPending;

    return exports;

})({}, window.__TAURI__.core, window.__TAURI__.event, window.__TAURI__.webview);
if ("__TAURI__" in window) Object.defineProperty(window.__TAURI__, "points", { value: __TAURI_PLUGIN_POINTS__ });
