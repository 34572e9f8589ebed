// The webview benchmark: in the real app and webview (WebKitGTK, through tauri-driver), times
// `get_balance` through the plugin, a charge through the plugin, a no-op app command (the IPC
// floor) and a direct fetch() of the balance from the webview to the same ledger.
// Run through `bash .ci/e2e bench`.
import { launchApp } from "./harness.mjs";

const CALLS = Number(process.env.POINTS_BENCH_CALLS ?? 300);
const WARMUP = 20;

const app = await launchApp({ env: { POINTS_EXAMPLE_BENCH: "1" } });
try {
  const { browser } = app;
  await browser.setTimeout({ script: 600000 });
  const result = await browser.executeAsync(
    (calls, warmup, done) => {
      const invoke = window.__TAURI__.core.invoke;
      (async () => {
        const target = await invoke("bench_target");
        const headers = { authorization: `Bearer ${target.token}` };
        const cases = {
          "no-op app command (IPC floor)": () => invoke("noop"),
          "plugin get_balance": () => invoke("plugin:points|get_balance"),
          // A charge answers a ChargeOutcome: only an acknowledged one is a round trip to the ledger.
          "plugin charge (compose)": async () => {
            const outcome = await invoke("plugin:points|charge", { service: "compose", idempotencyKey: crypto.randomUUID() });
            if (outcome?.status !== "acknowledged") throw new Error(`charge: ${JSON.stringify(outcome)}`);
          },
          "direct fetch() of /points/balance": async () => {
            const response = await fetch(`${target.baseUrl}/points/balance`, { headers });
            if (!response.ok) throw new Error(`fetch: ${response.status}`);
            await response.json();
          },
        };
        const out = {};
        // Interleaved rounds, so that drift (caches, the ledger's database growing) hits every case alike.
        for (const fn of Object.values(cases)) for (let i = 0; i < warmup; i++) await fn();
        for (const name of Object.keys(cases)) out[name] = [];
        for (let i = 0; i < calls; i++) {
          for (const [name, fn] of Object.entries(cases)) {
            const start = performance.now();
            await fn();
            out[name].push(performance.now() - start);
          }
        }
        return out;
      })().then(
        (value) => done({ ok: true, value }),
        (failure) => done({ ok: false, failure: String(failure?.message ?? JSON.stringify(failure)) }),
      );
    },
    CALLS,
    WARMUP,
  );
  if (!result.ok) throw new Error(result.failure);

  const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  const rows = {};
  console.log(`\n${CALLS} calls each (after ${WARMUP} warm-up calls), milliseconds, timed in the webview with performance.now() (WebKit rounds it to 1 ms):\n`);
  console.log("| call | p50 | p99 | mean |");
  console.log("| --- | ---: | ---: | ---: |");
  const order = [
    "no-op app command (IPC floor)",
    "direct fetch() of /points/balance",
    "plugin get_balance",
    "plugin charge (compose)",
  ];
  for (const name of order) {
    const samples = result.value[name];
    const sorted = [...samples].sort((a, b) => a - b);
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    rows[name] = { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), mean };
    console.log(`| ${name} | ${rows[name].p50.toFixed(2)} | ${rows[name].p99.toFixed(2)} | ${mean.toFixed(2)} |`);
  }
  const floor = rows["no-op app command (IPC floor)"].p50;
  const trip = rows["direct fetch() of /points/balance"].p50;
  const balance = rows["plugin get_balance"].p50;
  const ratio = balance / (floor + trip);
  console.log(
    `\nplugin get_balance p50 = ${ratio.toFixed(2)} × (no-op floor p50 + direct fetch p50) — target ≤ 1.5: ${ratio <= 1.5 ? "met" : "NOT met"}`,
  );
  if (ratio > 1.5) process.exitCode = 1;
} finally {
  await app.close();
}
