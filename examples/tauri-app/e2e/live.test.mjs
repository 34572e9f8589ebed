// The balance follows the ledger by itself: the app in external-backend mode against a
// points-ledger process this test owns, two windows open, and changes made outside the app (the
// admin route, a backend's consume with the user's token), a ledger restart, a low balance, a
// recharge dialog paid from elsewhere and a change of account while the stream is open.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { appOnLedgerProcess, click, invoke, shown, switchToWindow, text, typeInto, waitFor, waitText } from "./harness.mjs";
import { T } from "./language.mjs";

const WINDOWS = ["main", "window-2"];
/** The low-balance threshold of the app's configuration (src-tauri/tauri.conf.json). */
const THRESHOLD = 10;

/** The summary the page shows beside the badge, from the data of its totals line. */
async function shownTotals(browser) {
  return browser.execute(() => {
    const totals = document.querySelector('[data-testid="totals"]');
    if (!totals || totals.dataset.balance === undefined) return null;
    const figure = (name) => Number(totals.dataset[name]);
    return {
      balance: figure("balance"),
      recharged: figure("recharged"),
      consumed: figure("consumed"),
      expired: figure("expired"),
    };
  });
}

describe("the balance follows the ledger in every window", () => {
  let setup;
  before(async () => {
    setup = await appOnLedgerProcess({ points: 100, jobMs: 800, otherPoints: 7, topUp: true });
  });
  after(async () => setup?.close());

  /**
   * Every window shows `balance`, with totals that add up to it and are the ledger's own (one
   * whole summary, never a new balance beside old totals).
   */
  async function everyWindowShows(balance) {
    const { browser } = setup.app;
    const ledger = await setup.ledger.get("/points/balance", setup.token);
    assert.equal(ledger.balance, balance, "the ledger's own figure");
    const expected = {
      balance,
      recharged: ledger.total_recharged,
      consumed: ledger.total_consumed,
      expired: ledger.total_expired,
    };
    for (const label of WINDOWS) {
      await switchToWindow(browser, label);
      await waitText(browser, "balance", String(balance));
      let totals = null;
      await waitFor(browser, `the totals of ${balance} in ${label}`, async () => {
        totals = await shownTotals(browser);
        return totals?.balance === balance;
      });
      assert.deepEqual(totals, expected, `${label} shows another summary than the ledger's`);
      assert.equal(totals.balance, totals.recharged - totals.consumed - totals.expired);
      assert.equal(await text(browser, "totals"), T.totals(expected.recharged, expected.consumed, expected.expired));
    }
  }

  it("a recharge through the admin route shows in both windows", async () => {
    const { browser } = setup.app;
    await waitText(browser, "balance", "100");
    await click(browser, "open-window");
    await waitFor(browser, "a second window", async () => (await browser.getWindowHandles()).length === 2);
    await switchToWindow(browser, "window-2");
    await waitText(browser, "balance", "100");
    await setup.ledger.recharge(setup.user, 30);
    await everyWindowShows(130);
  });

  it("a backend's consume of tts with the user's token shows in both windows", async () => {
    const receipt = await setup.ledger.consume(setup.token, "tts", 4);
    assert.equal(receipt.points, 4, JSON.stringify(receipt));
    await everyWindowShows(126);
  });

  it("after a ledger restart mid-stream, the changes made since show in both windows", async () => {
    await setup.ledger.stop();
    await sleep(500);
    await setup.ledger.start();
    await setup.ledger.recharge(setup.user, 10);
    await everyWindowShows(136);
    await setup.ledger.consume(setup.token, "tts", 2);
    await everyWindowShows(134);
  });

  it("a balance below the threshold shows the banner in both windows, until a top-up", async () => {
    const { browser } = setup.app;
    for (const label of WINDOWS) {
      await switchToWindow(browser, label);
      assert.equal(await shown(browser, "low-balance"), false, `a banner in ${label} at 134`);
    }
    await setup.ledger.consume(setup.token, "tts", 130);
    await everyWindowShows(4);
    for (const label of WINDOWS) {
      await switchToWindow(browser, label);
      await waitFor(browser, `the banner in ${label}`, () => shown(browser, "low-balance"));
      await waitText(browser, "low-balance-message", T.lowBalance(THRESHOLD, 4));
    }
    await setup.ledger.recharge(setup.user, 20);
    await everyWindowShows(24);
    for (const label of WINDOWS) {
      await switchToWindow(browser, label);
      await waitFor(browser, `the banner in ${label} to go`, async () => !(await shown(browser, "low-balance")));
    }
  });

  it("the recharge dialog closes by itself after a top-up made elsewhere", async () => {
    const { browser } = setup.app;
    await switchToWindow(browser, "window-2");
    await typeInto(browser, "video-duration", 60);
    await waitText(browser, "video-cost", /^\d+$/);
    const required = Number(await text(browser, "video-cost"));
    assert.ok(required > 24, `a video of 60 s costs ${required}`);
    await click(browser, "action-video");
    await waitFor(browser, "the recharge dialog", () => shown(browser, "recharge-modal"));

    // Not enough yet: the dialog stays open.
    await setup.ledger.recharge(setup.user, 1);
    await everyWindowShows(25);
    await switchToWindow(browser, "window-2");
    assert.equal(await shown(browser, "recharge-modal"), true, "the dialog closed before the refusal was paid");

    const paid = 25 + required;
    await setup.ledger.recharge(setup.user, required);
    await waitFor(browser, "the dialog to close by itself", async () => !(await shown(browser, "recharge-modal")));
    await waitText(browser, "job-status", T.toppedUp(paid));
    await everyWindowShows(paid);
    await switchToWindow(browser, "main");
    assert.equal(await shown(browser, "recharge-modal"), false);
  });

  it("a change of account while the stream is open never shows the old user's figure in the new session", async () => {
    const { browser } = setup.app;
    const first = T.signedInAs(setup.user);
    const second = T.signedInAs(setup.other.user);
    // Every state each window's page goes through, recorded in the page.
    for (const label of WINDOWS) {
      await switchToWindow(browser, label);
      await browser.execute(() => {
        const read = (id) => document.querySelector(`[data-testid="${id}"]`);
        const log = (window.__shownStates = []);
        const record = () =>
          log.push({
            user: read("user")?.textContent ?? "",
            balance: read("balance")?.textContent ?? "",
            totals: read("totals")?.dataset.balance ?? null,
          });
        record();
        new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
      });
    }

    // The first user's balance keeps moving on the ledger (one top-up at a time) while the app
    // switches to the second user, whose balance stays 7.
    let moving = true;
    const topUps = (async () => {
      let n = 0;
      while (moving) {
        await setup.ledger.recharge(setup.user, 1);
        n++;
      }
      return n;
    })();
    try {
      await sleep(800);
      await switchToWindow(browser, "main");
      await invoke(browser, "sign_in_other");
      for (const label of WINDOWS) {
        await switchToWindow(browser, label);
        await waitText(browser, "user", second);
        await waitText(browser, "balance", "7");
      }
      await sleep(1500);
    } finally {
      moving = false;
    }
    const made = await topUps;
    assert.ok(made >= 10, `only ${made} top-ups made during the switch`);

    for (const label of WINDOWS) {
      await switchToWindow(browser, label);
      const states = await browser.execute(() => window.__shownStates);
      assert.ok(states.length > 0, `nothing recorded in ${label}`);
      const wrong = states.filter(
        (s) =>
          (s.user === second && (!["—", "7"].includes(s.balance) || ![null, "7"].includes(s.totals))) ||
          (s.user === first && (s.balance === "7" || s.totals === "7")),
      );
      assert.deepEqual(wrong, [], `${label} showed a figure of another user than the one named`);
      assert.deepEqual(states.at(-1), { user: second, balance: "7", totals: "7" });
      assert.ok(states.some((s) => s.user === first && Number(s.balance) > 0), `${label} never showed the first user`);
    }
  });
});
