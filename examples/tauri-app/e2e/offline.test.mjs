// The offline scenario: the app in external-backend mode against a points-ledger process this
// test owns; the ledger goes away while a job runs, and comes back on the same port and file.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { appOnLedgerProcess, click, shown, text, typeInto, waitFor, waitText } from "./harness.mjs";
import { T } from "./language.mjs";

describe("a charge made while the ledger is down", () => {
  let setup;

  before(async () => {
    setup = await appOnLedgerProcess({ points: 20, jobMs: 3000 });
  });
  after(async () => setup?.close());

  it("is pending while the ledger is away, then sent by itself, once", async () => {
    const { ledger, token } = setup;
    const { browser } = setup.app;
    await waitText(browser, "balance", "20");
    await waitText(browser, "pending-count", "0");

    await click(browser, "action-compose");
    await waitFor(browser, "the job to run", () => shown(browser, "job-progress"));
    await ledger.stop();
    await waitText(browser, "job-status", T.pendingCharge(T.services.compose), 30000);
    await waitText(browser, "pending-count", "1");
    // A price asked for while the ledger is away: the plugin's network error, in the user's words.
    await typeInto(browser, "video-duration", 2);
    await waitText(browser, "job-status", T.network, 30000);

    await ledger.start();
    await waitText(browser, "pending-count", "0", 60000);
    const history = await ledger.get("/points/transactions?limit=50", token);
    const consumes = history.items.filter((t) => t.kind === "consume");
    assert.equal(consumes.length, 1, JSON.stringify(history.items));
    assert.equal(consumes[0].service, "compose");
    assert.equal((await ledger.get("/points/balance", token)).balance, 15);
    await waitText(browser, "balance", "15");
    assert.equal(await text(browser, "pending-count"), "0");
  });
});

describe("desktop jobs with the ledger stopped, on the signed allowance", () => {
  let setup;

  before(async () => {
    setup = await appOnLedgerProcess({ points: 20, jobMs: 300, offline: true });
  });
  after(async () => setup?.close());

  it("run while the ledger is away, show what is left, and settle once when it is back", async () => {
    const { ledger, token } = setup;
    const { browser } = setup.app;
    await waitText(browser, "balance", "20");
    assert.equal(await shown(browser, "offline-banner"), false, "online: no offline banner");
    // The allowance is taken at sign-in; give it a moment to arrive before the ledger goes.
    await sleep(4000);
    await ledger.stop();

    await click(browser, "action-compose");
    await waitText(browser, "job-status", T.pendingCharge(T.services.compose), 30000);
    await waitFor(browser, "the offline banner", () => shown(browser, "offline-banner"));
    await waitFor(browser, "15 points left offline", async () =>
      (await text(browser, "offline-banner")).includes("15"),
    );
    await click(browser, "action-cover-design");
    await waitText(browser, "job-status", T.pendingCharge(T.services.cover_design), 30000);
    await waitFor(browser, "13 points left offline", async () =>
      (await text(browser, "offline-banner")).includes("13"),
    );
    await waitText(browser, "pending-count", "2");

    await ledger.start();
    await waitText(browser, "pending-count", "0", 60000);
    const history = await ledger.get("/points/transactions?limit=50", token);
    const consumes = history.items.filter((t) => t.kind === "consume");
    assert.deepEqual(consumes.map((t) => t.service).sort(), ["compose", "cover_design"], JSON.stringify(history.items));
    assert.equal((await ledger.get("/points/balance", token)).balance, 13);
    await waitText(browser, "balance", "13");
    await waitFor(browser, "the offline banner to go", async () => !(await shown(browser, "offline-banner")));
  });
});
