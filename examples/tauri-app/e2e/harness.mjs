// Runs the real app through tauri-driver + WebKitWebDriver and drives it with WebdriverIO.
// Needs a display (the tests run under Xvfb) and, in the environment:
//   POINTS_EXAMPLE_APP_BIN  the built app binary
//   POINTS_LEDGER_BIN       the built points-ledger binary (offline scenario)
//   POINTS_E2E_OUT          where screenshots go
//   TAURI_DRIVER            tauri-driver (default: on PATH); WEBKIT_WEBDRIVER (default /usr/bin/WebKitWebDriver)
//   POINTS_E2E_LANG         the language the app is switched to at start: en (default) or zh-CN
// Every process started here is stopped by the returned `close()` functions and, as a last
// resort, when this process exits.

import { spawn } from "node:child_process";
import { createHmac, generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { remote } from "webdriverio";
import { LANG, textsOf } from "./language.mjs";

/** The longest any single wait may take. */
export const WAIT_MS = Number(process.env.POINTS_E2E_WAIT_MS ?? 20000);

const children = new Set();
process.on("exit", () => {
  for (const child of children) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
});

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run the tests through .ci/e2e)`);
  return value;
}

/** A free TCP port on loopback. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts `command` in its own process group; `stop()` ends the group and waits for it. */
export function start(command, args, { env = {}, log } = {}) {
  const child = spawn(command, args, {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  children.add(child);
  const output = [];
  const keep = (chunk) => {
    output.push(chunk.toString());
    if (output.length > 400) output.shift();
    if (log) process.stderr.write(chunk);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  exited.then(() => children.delete(child));
  return {
    child,
    exited,
    output: () => output.join(""),
    async stop(signal = "SIGTERM", graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      try {
        process.kill(-child.pid, signal);
      } catch {
        return exited;
      }
      const done = await Promise.race([exited, sleep(graceMs).then(() => null)]);
      if (done) return done;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        /* gone */
      }
      return exited;
    },
  };
}

/** A fresh directory, removed by `cleanup()`. */
export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Starts tauri-driver and a WebDriver session on the app, with a fresh data directory, and
 * switches the app to the run's language (POINTS_E2E_LANG) with its language switch.
 * `env` reaches the app. Returns `{ browser, close, dataDir }`.
 */
export async function launchApp({ env = {} } = {}) {
  const app = required("POINTS_EXAMPLE_APP_BIN");
  const data = tempDir("points-e2e-data-");
  const port = await freePort();
  const nativePort = await freePort();
  const driver = start(
    process.env.TAURI_DRIVER ?? "tauri-driver",
    [
      "--port",
      String(port),
      "--native-port",
      String(nativePort),
      "--native-driver",
      process.env.WEBKIT_WEBDRIVER ?? "/usr/bin/WebKitWebDriver",
    ],
    { env: { XDG_DATA_HOME: data.dir, ...env }, log: process.env.POINTS_E2E_VERBOSE === "1" },
  );
  const close = async () => {
    if (browser) await withTimeout(browser.deleteSession(), 10000, "closing the session").catch(() => undefined);
    await driver.stop();
    data.cleanup();
  };
  let browser = null;
  try {
    // tauri-driver listens before its native driver does: retry the new-session request.
    const deadline = Date.now() + WAIT_MS;
    await sleep(1000);
    for (;;) {
      try {
        browser = await withTimeout(
          remote({
            hostname: "127.0.0.1",
            port,
            logLevel: "silent",
            connectionRetryTimeout: 30000,
            connectionRetryCount: 0,
            capabilities: { "tauri:options": { application: app } },
          }),
          35000,
          "a WebDriver session",
        );
        break;
      } catch (error) {
        if (Date.now() > deadline) {
          throw new Error(`no WebDriver session: ${error.message}\n--- tauri-driver output ---\n${driver.output()}`);
        }
        await sleep(500);
      }
    }
    await browser.setTimeout({ script: WAIT_MS });
    // Wait until the page is up before the first command (an early one can lose its connection).
    await waitFor(browser, "the page", async () => (await browser.$(sel("balance")).isExisting()));
    await chooseLanguage(browser, LANG);
    return { browser, close, dataDir: data.dir, driver };
  } catch (error) {
    await close();
    throw error;
  }
}

export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** `[data-testid="id"]`. */
export const sel = (id) => `[data-testid="${id}"]`;

/** Waits until `check()` is truthy (errors count as not yet), at most `timeout` ms. */
export async function waitFor(browser, what, check, timeout = WAIT_MS) {
  let last = null;
  await browser
    .waitUntil(
      async () => {
        try {
          return Boolean(await check());
        } catch (error) {
          last = error;
          return false;
        }
      },
      { timeout, interval: 100, timeoutMsg: `timed out after ${timeout} ms waiting for ${what}` },
    )
    .catch((error) => {
      throw new Error(`${error.message}${last ? ` (last error: ${last.message})` : ""}`);
    });
}

/** The text of the element with `data-testid=id` ("" when absent). */
export async function text(browser, id) {
  const element = await browser.$(sel(id));
  if (!(await element.isExisting())) return "";
  return (await element.getText()).trim();
}

/** Waits until the text of `id` equals `expected` (or matches it, for a RegExp). */
export async function waitText(browser, id, expected, timeout = WAIT_MS) {
  let seen = "";
  try {
    await waitFor(
      browser,
      `${id} = ${expected}`,
      async () => {
        seen = await text(browser, id);
        return expected instanceof RegExp ? expected.test(seen) : seen === String(expected);
      },
      timeout,
    );
  } catch (error) {
    throw new Error(`${error.message}; last seen "${seen}"`);
  }
  return seen;
}

/** Clicks `id` once it is there and enabled. */
export async function click(browser, id) {
  const element = await browser.$(sel(id));
  try {
    await element.waitForClickable({ timeout: WAIT_MS, timeoutMsg: `${id} never became clickable` });
  } catch (error) {
    const path = await screenshot(browser, `failed-click-${id}`).catch(() => "no screenshot");
    throw new Error(`${error.message} (see ${path})`);
  }
  await element.click();
}

/** Replaces the text of the input `id` as a user would: select all, then type. */
export async function typeInto(browser, id, value) {
  const input = await browser.$(sel(id));
  await input.waitForClickable({ timeout: WAIT_MS, timeoutMsg: `${id} never became editable` });
  await input.click();
  await browser.keys(["Control", "a"]);
  await browser.keys(String(value).split(""));
  await waitFor(browser, `${id} to hold ${value}`, async () => (await input.getValue()) === String(value));
}

/** Whether the element `id` exists and is shown. */
export async function shown(browser, id) {
  const element = await browser.$(sel(id));
  return (await element.isExisting()) && (await element.isDisplayed());
}

/** Calls a Tauri command from the page (`window.__TAURI__`), returning its result or throwing its rejection. */
export async function invoke(browser, command, args = {}) {
  const answer = await browser.executeAsync(
    (command, args, done) => {
      // Sent back as JSON text, and never under a key named `error`: WebKitWebDriver takes an
      // answer object with an `error` member for a failure of the script itself.
      window.__TAURI__.core.invoke(command, args).then(
        (value) => done({ ok: true, value: JSON.stringify(value ?? null) }),
        (failure) => done({ ok: false, failure: JSON.stringify(failure ?? null) }),
      );
    },
    command,
    args,
  );
  if (!answer.ok) throw Object.assign(new Error(`${command}: ${answer.failure}`), { payload: JSON.parse(answer.failure) });
  return JSON.parse(answer.value);
}

/** Saves a screenshot of the current window under POINTS_E2E_OUT and checks it is a non-empty PNG. */
export async function screenshot(browser, name) {
  const dir = required("POINTS_E2E_OUT");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await browser.saveScreenshot(path);
  const bytes = readFileSync(path);
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (bytes.length < 1000 || !bytes.subarray(0, 8).equals(signature)) {
    throw new Error(`${path} is not a non-empty PNG (${bytes.length} bytes)`);
  }
  return path;
}

/** Clicks the language switch's `lang` and waits until the page is in that language. */
export async function chooseLanguage(browser, lang) {
  await click(browser, `language-${lang}`);
  await waitFor(browser, `the page in ${lang}`, async () => (await browser.execute(() => document.documentElement.lang)) === lang);
  await waitText(browser, "title", textsOf(lang).title);
}

/** The text of the whole page as the user reads it. */
export const pageText = (browser) => browser.execute(() => document.body.innerText);

/** Switches to the window whose page shows `label` in its `window-label`. */
export async function switchToWindow(browser, label) {
  await waitFor(browser, `window ${label}`, async () => {
    for (const handle of await browser.getWindowHandles()) {
      await browser.switchToWindow(handle);
      if ((await text(browser, "window-label")) === label) return true;
    }
    return false;
  });
}

// --- A points-ledger process the test owns (external-backend mode) ---

function base64url(value) {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

/** An HS256 token the ledger accepts for `user` (what a real backend's sign-in would hand the app). */
export function tokenFor(secret, user) {
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${base64url({ alg: "HS256", typ: "JWT" })}.${base64url({ sub: user, iat: now, exp: now + 3600 })}`;
  return `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`;
}

/**
 * A `points-ledger serve` on a fixed port and SQLite file, which can be stopped and started
 * again on both. `close()` stops it and removes its files.
 */
/** A fresh Ed25519 allowance key: the ledger's `KEY_ID:SEED` and the app's `KEY_ID:PUBLIC_KEY`. */
function allowanceKey() {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const id = `e2e-${randomUUID().slice(0, 8)}`;
  return {
    ledger: `${id}:${privateKey.export({ format: "jwk" }).d}`,
    app: `${id}:${publicKey.export({ format: "jwk" }).x}`,
  };
}

export async function ledgerProcess({ allowances = false } = {}) {
  const bin = required("POINTS_LEDGER_BIN");
  const allowance = allowances ? allowanceKey() : null;
  const files = tempDir("points-e2e-ledger-");
  const port = await freePort();
  const secret = `e2e-secret-${randomUUID()}`;
  const adminKey = `e2e-admin-${randomUUID()}`;
  const baseUrl = `http://127.0.0.1:${port}`;
  let proc = null;
  const ledger = {
    baseUrl,
    secret,
    adminKey,
    /** The allowance keys to pin in the app (`POINTS_OFFLINE_KEYS`), when the ledger signs allowances. */
    offlineKeys: allowance?.app ?? null,
    async start() {
      proc = start(bin, ["serve"], {
        env: {
          POINTS_LEDGER_DATABASE_URL: `sqlite:${join(files.dir, "ledger.sqlite")}?mode=rwc`,
          POINTS_LEDGER_BIND: `127.0.0.1:${port}`,
          POINTS_LEDGER_JWT_SECRET: secret,
          POINTS_LEDGER_ADMIN_KEY: adminKey,
          ...(allowance ? { POINTS_LEDGER_ALLOWANCE_KEYS: allowance.ledger } : {}),
        },
      });
      const deadline = Date.now() + WAIT_MS;
      for (;;) {
        try {
          const response = await fetch(`${baseUrl}/openapi.json`, { signal: AbortSignal.timeout(2000) });
          if (response.ok) return;
        } catch {
          /* not up yet */
        }
        if (proc.child.exitCode !== null || Date.now() > deadline) {
          throw new Error(`points-ledger did not start:\n${proc.output()}`);
        }
        await sleep(100);
      }
    },
    async stop() {
      if (proc) await proc.stop();
      proc = null;
    },
    async recharge(user, points) {
      const expires = new Date(Date.now() + 30 * 86400_000).toISOString();
      const response = await fetch(`${baseUrl}/admin/recharge`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-admin-key": adminKey, "idempotency-key": randomUUID() },
        body: JSON.stringify({ user_id: user, points, expires_at: expires }),
        signal: AbortSignal.timeout(5000),
      });
      if (!response.ok) throw new Error(`recharge: ${response.status} ${await response.text()}`);
    },
    /** What the app's own backend does: consumes `service` (for `duration` seconds) with the user's token. */
    async consume(token, service, duration) {
      const response = await fetch(`${baseUrl}/points/consume`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}`, "idempotency-key": randomUUID() },
        body: JSON.stringify({ service, duration }),
        signal: AbortSignal.timeout(5000),
      });
      if (!response.ok) throw new Error(`consume: ${response.status} ${await response.text()}`);
      return response.json();
    },
    async get(path, token) {
      const response = await fetch(`${baseUrl}${path}`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(5000),
      });
      if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
      return response.json();
    },
    async close() {
      await ledger.stop();
      files.cleanup();
    },
  };
  await ledger.start();
  return ledger;
}

/**
 * A user holding `points` on a ledger process of the test's own, and the app signed in as them
 * in external-backend mode, its jobs lasting `jobMs`. With `otherPoints`, a second user holding
 * them, whom "sign in as another user" switches to (`other: { user, token }`); with `topUp`, the
 * app's "Top up" works (it is given the admin key). `close()` ends both.
 */
export async function appOnLedgerProcess({ points, jobMs, otherPoints = null, topUp = false, offline = false }) {
  const ledger = await ledgerProcess({ allowances: offline });
  const user = randomUUID();
  let app = null;
  try {
    await ledger.recharge(user, points);
    const token = tokenFor(ledger.secret, user);
    let other = null;
    const env = {
      POINTS_API_URL: ledger.baseUrl,
      POINTS_TOKEN: token,
      POINTS_ACCOUNT: user,
      POINTS_EXAMPLE_JOB_MS: String(jobMs),
    };
    if (otherPoints !== null) {
      other = { user: randomUUID() };
      other.token = tokenFor(ledger.secret, other.user);
      await ledger.recharge(other.user, otherPoints);
      Object.assign(env, { POINTS_OTHER_TOKEN: other.token, POINTS_OTHER_ACCOUNT: other.user });
    }
    if (topUp) env.POINTS_ADMIN_KEY = ledger.adminKey;
    if (offline) env.POINTS_OFFLINE_KEYS = ledger.offlineKeys;
    app = await launchApp({ env });
    const close = async () => {
      await app.close();
      await ledger.close();
    };
    return { ledger, app, user, token, other, close };
  } catch (error) {
    await app?.close();
    await ledger.close();
    throw error;
  }
}
