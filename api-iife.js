var __TAURI_PLUGIN_POINTS__ = (function (exports, core, event, webview) {
    'use strict';

    /** The plugin's name: its commands are invoked as `plugin:points|<command>`. */
    const PLUGIN_NAME = "points";
    /** Every command of the plugin, as the webview invokes it. */
    const COMMANDS = {
        getBalance: "plugin:points|get_balance",
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

    // Keyed by the binding's kinds: a kind added to or removed from the Rust enum fails to compile here.
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
    };
    /** Every kind of {@link PointsError}. */
    const POINTS_ERROR_KINDS = Object.keys(KINDS);
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

    /** The events the plugin emits to every window. */
    const EVENTS = {
        /**
         * {@link BalanceChanged}: the signed-in account's balance after a fetch (`details` set), a charge
         * or a re-sent charge (`details: null`), with its `seq` and `session`.
         */
        balanceChanged: "points://balance-changed",
        /** {@link InsufficientPoints}: a refusal for lack of points, naming the window refused. */
        insufficient: "points://insufficient",
        /** {@link PendingCharges}: the signed-in account's unacknowledged charges; also at every change of session. */
        pendingChanged: "points://pending-changed",
        /** {@link SessionChanged}: a sign-in, a sign-out or another account. */
        sessionChanged: "points://session-changed",
        /** {@link RefusedCharge}: the ledger refused a finished job's charge for good. */
        chargeRefused: "points://charge-refused",
    };
    /** Calls `handler` on every balance change; resolves to the function that stops listening. */
    function onBalanceChanged(handler) {
        return event.listen(EVENTS.balanceChanged, (event) => handler(event.payload));
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

    const CLOSED = Object.freeze({ open: false, service: null, required: null, balance: null });
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
     * empties itself (balance, pending and refused charges, error, dialog) and reads the balance (when
     * signed in) and the pending charges again; an answer to a call made before the change, or an
     * event of an older session, is not applied.
     *
     * Balances are ordered by the ledger's `seq`: a figure (a fetch, a charge, a price check, an
     * event) whose `seq` is lower than the `seq` of the balance shown is older and is dropped. When
     * either has no `seq` (a backend that does not send it), the figure that arrives last is shown.
     */
    function createPointStore(options = {}) {
        let state = Object.freeze({
            balance: options.initialBalance ? Object.freeze({ ...options.initialBalance }) : null,
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
        let started = null;
        let attachment = 0;
        let unlisteners = [];
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
         * The patch showing a figure of the ledger: the whole summary when `details` is given, else
         * the current summary with its balance (and `seq`) replaced. Empty when the figure is older
         * than the one shown (a lower `seq`).
         */
        function showFigure(figure, seq, details) {
            const current = state.balance;
            const next = seq ?? null;
            const shown = current?.seq ?? null;
            if (current !== null && next !== null && shown !== null && next < shown)
                return {};
            if (details !== null)
                return { balance: replaceBalance(details) };
            if (current === null || (current.balance === figure && shown === next))
                return {};
            const updated = {
                balance: figure,
                totalRecharged: current.totalRecharged,
                totalConsumed: current.totalConsumed,
                totalExpired: current.totalExpired,
            };
            if (next !== null)
                updated.seq = next;
            return { balance: Object.freeze(updated) };
        }
        function dialog(info = {}) {
            const next = {
                open: true,
                service: info.service ?? null,
                required: info.required ?? null,
                balance: info.balance ?? null,
            };
            return sameFields(state.recharge, next) ? state.recharge : Object.freeze(next);
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
            shownRead = 0; // the reads are ordered within a session
            set({
                balance: null,
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
            set(showFigure(change.balance, change.seq, change.details));
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
                return () => {
                    listeners.delete(listener);
                };
            },
            getSnapshot: () => state,
            fetchBalance() {
                if (inflight)
                    return inflight;
                const mine = epoch;
                set({ loading: true });
                const request = getBalance().then((balance) => {
                    if (mine === epoch) {
                        inflight = null;
                        set({ ...showFigure(balance.balance, balance.seq, balance), loading: false, error: null, signedIn: true });
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
                    if (mine === epoch)
                        set({ ...showFigure(cost.balance, cost.seq, null), error: null });
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
                            const receipt = outcome.receipt;
                            // A replay carries the balance of the first charge: the plugin sends today's by event.
                            set({ ...(receipt.replayed ? {} : showFigure(receipt.balance, receipt.seq, null)), error: null });
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
    exports.EVENTS = EVENTS;
    exports.PAYMENT_REQUIRED = PAYMENT_REQUIRED;
    exports.PLUGIN_NAME = PLUGIN_NAME;
    exports.POINTS_ERROR_KINDS = POINTS_ERROR_KINDS;
    exports.charge = charge;
    exports.checkCost = checkCost;
    exports.clearSessionToken = clearSessionToken;
    exports.createPointStore = createPointStore;
    exports.dismissRefused = dismissRefused;
    exports.errorMessage = errorMessage;
    exports.getBalance = getBalance;
    exports.getPending = getPending;
    exports.getPointStore = getPointStore;
    exports.getPrices = getPrices;
    exports.idempotencyKeyOf = idempotencyKeyOf;
    exports.insufficientPointsFromBody = insufficientPointsFromBody;
    exports.insufficientPointsFromResponse = insufficientPointsFromResponse;
    exports.isInsufficientPoints = isInsufficientPoints;
    exports.isPointsError = isPointsError;
    exports.isPointsErrorKind = isPointsErrorKind;
    exports.listBatches = listBatches;
    exports.listTransactions = listTransactions;
    exports.newIdempotencyKey = newIdempotencyKey;
    exports.onBalanceChanged = onBalanceChanged;
    exports.onChargeRefused = onChargeRefused;
    exports.onInsufficientPoints = onInsufficientPoints;
    exports.onPendingChanged = onPendingChanged;
    exports.onSessionChanged = onSessionChanged;
    exports.retryRefused = retryRefused;
    exports.setSessionToken = setSessionToken;
    exports.syncPending = syncPending;

    return exports;

})({}, window.__TAURI__.core, window.__TAURI__.event, window.__TAURI__.webview);
if ("__TAURI__" in window) Object.defineProperty(window.__TAURI__, "points", { value: __TAURI_PLUGIN_POINTS__ });
