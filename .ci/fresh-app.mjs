// Drives the fresh app of .ci/fresh-app through tauri-driver (WebDriver over plain HTTP, no
// client library): its page renders the balance through the package's React hook, its button
// charges a job through the plugin, and `window.__TAURI__.points` answers (withGlobalTauri).
// Needs FRESH_BIN, LEDGER_URL, LEDGER_TOKEN and FRESH_OUT; runs under Xvfb.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const WAIT_MS = 20000;
const { FRESH_BIN, FRESH_OUT } = process.env;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const data = mkdtempSync(join(tmpdir(), "fresh-app-data-"));
const port = await freePort();
const driver = spawn(
  "tauri-driver",
  ["--port", String(port), "--native-port", String(await freePort()), "--native-driver", "/usr/bin/WebKitWebDriver"],
  { env: { ...process.env, XDG_DATA_HOME: data }, stdio: ["ignore", "pipe", "pipe"], detached: true },
);
let driverOutput = "";
driver.stdout.on("data", (chunk) => (driverOutput += chunk));
driver.stderr.on("data", (chunk) => (driverOutput += chunk));

const base = `http://127.0.0.1:${port}`;
async function call(method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(40000),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(answer.value ?? answer)}`);
  return answer.value;
}

let session = null;
const script = (source, args = []) => call("POST", `/session/${session}/execute/sync`, { script: source, args });
const asyncScript = (source, args = []) => call("POST", `/session/${session}/execute/async`, { script: source, args });
const textOf = (id) => script(`return document.querySelector('[data-testid="${id}"]')?.textContent ?? null;`);

async function waitFor(what, check) {
  const deadline = Date.now() + WAIT_MS;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      const page = await script("return document.body ? document.body.innerHTML : '(no body)';").catch((e) => String(e));
      throw new Error(`timed out waiting for ${what}${last ? ` (${last.message})` : ""}; the page: ${page.slice(0, 400) || "(empty)"}`);
    }
    await sleep(100);
  }
}

try {
  // tauri-driver listens before its native driver does: retry the new-session request.
  const deadline = Date.now() + WAIT_MS;
  await sleep(1000);
  for (;;) {
    try {
      const created = await call("POST", "/session", {
        capabilities: { alwaysMatch: { "tauri:options": { application: FRESH_BIN } } },
      });
      session = created.sessionId;
      break;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`no WebDriver session: ${error.message}\n${driverOutput}`);
      await sleep(500);
    }
  }
  // The balance through usePoints(): React from the app and the hook of the package agree.
  await waitFor("the balance rendered by usePoints()", async () => (await textOf("balance")) === "20 points");
  await script(`document.querySelector('[data-testid="compose"]').click();`);
  const result = await waitFor("the charged job's result", async () => {
    const text = await textOf("result");
    return text ? text : null;
  });
  if (!/^composed \S+, balance 15$/.test(result)) {
    throw new Error(`the job's result is "${result}", not a charge acknowledged at balance 15`);
  }
  await waitFor("the balance after the charge", async () => (await textOf("balance")) === "15 points");
  // The global API of withGlobalTauri, with no script tag.
  const global = await asyncScript(`
    const done = arguments[arguments.length - 1];
    const points = window.__TAURI__ && window.__TAURI__.points;
    if (!points) return done({ error: "window.__TAURI__.points is missing" });
    points.getBalance().then((b) => done({ balance: b.balance, charge: typeof points.charge }), (e) => done({ error: JSON.stringify(e) }));
  `);
  if (global.error || global.balance !== 15 || global.charge !== "function") {
    throw new Error(`window.__TAURI__.points: ${JSON.stringify(global)}`);
  }
  await sleep(300); // let the window repaint before the screenshot
  const png = await call("GET", `/session/${session}/screenshot`);
  writeFileSync(join(FRESH_OUT, "fresh-app.png"), Buffer.from(png, "base64"));
  console.log(`fresh app: "${result}"; window.__TAURI__.points.getBalance() = ${global.balance}`);
} finally {
  if (session) await call("DELETE", `/session/${session}`).catch(() => undefined);
  try {
    process.kill(-driver.pid, "SIGTERM");
  } catch {
    /* gone */
  }
  rmSync(data, { recursive: true, force: true });
}
