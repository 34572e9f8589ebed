// Exit while a job runs: the user closes the app's only window halfway through a job. The app
// does not quit at once: the job finishes, its charge is journaled and sent, then the app quits.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { appOnLedgerProcess, click, shown, waitFor, waitText, withTimeout } from "./harness.mjs";

/** The pids of the example app started with `XDG_DATA_HOME=dataDir` (read from /proc). */
function appProcesses(dataDir) {
  const bin = realpathSync(process.env.POINTS_EXAMPLE_APP_BIN);
  const found = [];
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      if (readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, "") !== bin) continue;
      const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
      if (environ.includes(`XDG_DATA_HOME=${dataDir}`)) found.push(Number(pid));
    } catch {
      /* gone, or not ours to read */
    }
  }
  return found;
}

describe("exit while a job runs", () => {
  let setup;

  before(async () => {
    setup = await appOnLedgerProcess({ points: 20, jobMs: 4000 });
  });
  after(async () => setup?.close());

  it("lets the job finish and its charge reach the ledger before the app quits", async () => {
    const { ledger, token } = setup;
    const { browser, dataDir } = setup.app;
    await waitText(browser, "balance", "20");
    const running = appProcesses(dataDir);
    assert.equal(running.length, 1, `one app process: ${running}`);

    await click(browser, "action-compose");
    await waitFor(browser, "the job to run", () => shown(browser, "job-progress"));
    // The only window closes while the job works (about 4 s left), as its close button does:
    // through Tauri (a WebDriver "close window" would end the session and the app with it).
    await withTimeout(
      browser.execute(() => void window.__TAURI__.window.getCurrentWindow().close()),
      10000,
      "closing the window",
    ).catch(() => undefined);

    const deadline = Date.now() + 30000;
    while (appProcesses(dataDir).length > 0) {
      assert.ok(Date.now() < deadline, "the app did not quit within 30 s of its window closing");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // Gone: by then its job was charged, once.
    const history = await ledger.get("/points/transactions?limit=50", token);
    const consumes = history.items.filter((t) => t.kind === "consume");
    assert.equal(consumes.length, 1, `charged before the app quit: ${JSON.stringify(history.items)}`);
    assert.equal(consumes[0].service, "compose");
    assert.equal((await ledger.get("/points/balance", token)).balance, 15);
  });
});
