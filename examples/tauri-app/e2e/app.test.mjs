// End-to-end scenarios of the example app: the real app, plugin and reference ledger, in the real
// webview (WebKitGTK) through tauri-driver. Run through .ci/e2e.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import {
  chooseLanguage,
  click,
  invoke,
  launchApp,
  pageText,
  screenshot,
  sel,
  shown,
  switchToWindow,
  text,
  typeInto,
  waitFor,
  waitText,
} from "./harness.mjs";
import { LANG, OTHER_LANG, T, foreignWords, textsOf } from "./language.mjs";

/** Clicks a job button and waits until the job is over (its buttons enabled again). */
async function runJob(browser, id) {
  await click(browser, id);
  await waitFor(browser, `${id} to finish`, async () => {
    const button = await browser.$(sel(id));
    return (await button.isEnabled()) && !(await shown(browser, "job-progress"));
  });
}

/** Waits until the recharge dialog is shown with its texts in `lang` for these figures. */
async function waitDialog(browser, service, required, balance, lang = LANG) {
  const texts = textsOf(lang);
  await waitFor(browser, "the recharge dialog", () => shown(browser, "recharge-modal"));
  await waitText(browser, "recharge-title", texts.dialogTitle);
  await waitText(browser, "recharge-message", texts.dialogMessage(texts.services[service], required, balance));
  await waitText(browser, "recharge-close", texts.dialogCancel);
}

/** Asserts that every text the page shows is in `lang`. */
async function assertAllIn(browser, lang = LANG) {
  const shownText = await pageText(browser);
  assert.deepEqual(foreignWords(shownText, lang), [], `texts not in ${lang} on the page:\n${shownText}`);
}

describe("charging from the desktop jobs", () => {
  let app;
  before(async () => {
    app = await launchApp();
  });
  after(async () => app?.close());

  it("shows the demo user's 20 points and their expiry", async () => {
    const { browser } = app;
    await waitText(browser, "balance", "20");
    await waitText(browser, "expires-next", T.expiresNext);
    await waitText(browser, "pending-count", "0");
    await waitText(browser, "user", T.signedInAs("Ada"));
    await assertAllIn(browser);
    await screenshot(browser, `main-${LANG}`);

    // The switch changes every text shown, and back.
    await chooseLanguage(browser, OTHER_LANG);
    await waitText(browser, "user", textsOf(OTHER_LANG).signedInAs("Ada"));
    await waitText(browser, "expires-next", textsOf(OTHER_LANG).expiresNext);
    await assertAllIn(browser, OTHER_LANG);
    await chooseLanguage(browser, LANG);
    await assertAllIn(browser);
  });

  it("never hands the user's token to the page", async () => {
    const { browser } = app;
    const session = await invoke(browser, "session");
    assert.deepEqual(Object.keys(session).sort(), ["canSwitch", "user"]);
    await assert.rejects(invoke(browser, "bench_target"), (error) => error.payload?.kind === "forbidden");
    const html = await browser.execute(() => document.documentElement.outerHTML + JSON.stringify(localStorage));
    assert.doesNotMatch(html, /eyJ[A-Za-z0-9_-]{10,}\./, "a JWT is in the page");
  });

  it("charges a finished Compose (20 → 15) and not a failed one", async () => {
    const { browser } = app;
    await runJob(browser, "action-compose");
    await waitText(browser, "balance", "15");
    assert.equal(await text(browser, "job-status"), T.charged(T.services.compose, 5));

    await click(browser, "fail-toggle");
    await runJob(browser, "action-compose");
    await waitText(browser, "job-status", T.jobFailed);
    assert.equal(await text(browser, "balance"), "15");
    const balance = await invoke(browser, "plugin:points|get_balance");
    assert.equal(balance.balance, 15, "the ledger charged a failed job");
    await click(browser, "fail-toggle");
    await waitText(browser, "transactions", T.consumed(T.services.compose));
  });

  it("opens the recharge dialog when short, tops up, and the job then succeeds", async () => {
    const { browser } = app;
    // 15 → 13 → 11 → ... → 1: burn subtitles and design covers (2 each) until fewer than 2 are left.
    let balance = 15;
    let turn = 0;
    while (balance >= 2) {
      const id = turn++ % 2 === 0 ? "action-subtitle-burn" : "action-cover-design";
      await runJob(browser, id);
      balance -= 2;
      await waitText(browser, "balance", String(balance));
    }
    assert.equal(await shown(browser, "recharge-modal"), false);
    await click(browser, "action-cover-design");
    await waitDialog(browser, "cover_design", 2, balance);
    await waitText(browser, "job-status", T.insufficientPoints);
    assert.equal(await text(browser, "balance"), String(balance), "a refused job was charged");
    await assertAllIn(browser);
    await screenshot(browser, `modal-${LANG}`);


    await click(browser, "recharge-top-up");
    await waitFor(browser, "the dialog to close", async () => !(await shown(browser, "recharge-modal")));
    await waitText(browser, "balance", String(balance + 50));
    await runJob(browser, "action-cover-design");
    await waitText(browser, "balance", String(balance + 48));
    await waitText(browser, "transactions", T.recharged);
  });
});

describe("the global script for pages without a bundler", () => {
  let app;
  before(async () => {
    app = await launchApp();
  });
  after(async () => app?.close());

  it("the plugin's api-iife.js gives window.__TAURI__.points without loading anything", async () => {
    const { browser } = app;
    await waitText(browser, "balance", "20");
    // The plugin injects its committed global script (build.rs); it is the one guest-js builds.
    const committed = readFileSync(new URL("../../../api-iife.js", import.meta.url), "utf8");
    const built = readFileSync(new URL("../../../guest-js/dist-js/api-iife.js", import.meta.url), "utf8");
    assert.equal(committed, built, "api-iife.js is stale: copy guest-js/dist-js/api-iife.js");
    const answer = await browser.executeAsync((done) => {
      const points = window.__TAURI__.points;
      if (!points) return done({ failure: "window.__TAURI__.points is missing" });
      points.getBalance().then(
        (balance) => done({ balance: balance.balance, store: typeof points.createPointStore }),
        (failure) => done({ failure: JSON.stringify(failure) }),
      );
    });
    assert.deepEqual(answer, { balance: 20, store: "function" });
  });
});

describe("a video job charged by the app's backend", () => {
  let app;
  before(async () => {
    app = await launchApp();
  });
  after(async () => app?.close());

  const setDuration = (browser, seconds) => typeInto(browser, "video-duration", seconds);

  it("shows the ledger's price for the duration, and a backend 402 opens the dialog", async () => {
    const { browser } = app;
    await waitText(browser, "balance", "20");
    const prices = await invoke(browser, "plugin:points|get_prices");
    const video = prices.services.find((s) => s.service === "video");
    assert.ok(video?.pointsPerSecond > 0, JSON.stringify(prices));
    const price = (seconds) => Math.max(1, Math.ceil(seconds * video.pointsPerSecond));

    await setDuration(browser, 1.5);
    await waitText(browser, "video-cost", String(price(1.5)));
    await setDuration(browser, 1);
    await waitText(browser, "video-cost", String(price(1)));
    await click(browser, "action-video");
    await waitText(browser, "balance", String(20 - price(1)));
    const left = 20 - price(1);

    await setDuration(browser, 60);
    await waitText(browser, "video-cost", String(price(60)));
    await click(browser, "action-video");
    await waitDialog(browser, "video", price(60), left);
    await click(browser, "recharge-close");
    await waitFor(browser, "the dialog to close", async () => !(await shown(browser, "recharge-modal")));
    assert.equal(await text(browser, "balance"), String(left));
  });
});

describe("two windows and two users", () => {
  let app;
  before(async () => {
    app = await launchApp();
  });
  after(async () => app?.close());

  it("a charge in one window updates the badge in both", async () => {
    const { browser } = app;
    await waitText(browser, "balance", "20");
    await click(browser, "open-window");
    await waitFor(browser, "a second window", async () => (await browser.getWindowHandles()).length === 2);
    await switchToWindow(browser, "window-2");
    await waitText(browser, "balance", "20");
    // The language chosen in the first window is kept: the new window opens in it.
    await waitText(browser, "title", T.title);
    await runJob(browser, "action-compose");
    await waitText(browser, "balance", "15");
    await switchToWindow(browser, "main");
    await waitText(browser, "balance", "15");
  });

  it("a backend refusal opens the dialog in the refused window only", async () => {
    const { browser } = app;
    await switchToWindow(browser, "window-2");
    await typeInto(browser, "video-duration", 60);
    await waitText(browser, "video-cost", /^\d+$/);
    await click(browser, "action-video");
    await waitFor(browser, "the recharge dialog", () => shown(browser, "recharge-modal"));
    await switchToWindow(browser, "main");
    // Give the other window time to (wrongly) open its dialog.
    await browser.pause(500);
    assert.equal(await shown(browser, "recharge-modal"), false, "the dialog opened in a window that was not refused");
    await switchToWindow(browser, "window-2");
    await click(browser, "recharge-close");
  });

  it("a refused desktop job opens the dialog in its own window only", async () => {
    const { browser } = app;
    await switchToWindow(browser, "window-2");
    // 15 → compose (5) ×3 → 0: the next compose is refused in window-2.
    for (const expected of ["10", "5", "0"]) {
      await runJob(browser, "action-compose");
      await waitText(browser, "balance", expected);
    }
    try {
      await click(browser, "action-compose");
      await waitDialog(browser, "compose", 5, 0);
      await waitText(browser, "job-status", T.insufficientPoints);
      await switchToWindow(browser, "main");
      await waitText(browser, "balance", "0");
      await browser.pause(500);
      assert.equal(await shown(browser, "recharge-modal"), false, "the dialog opened in a window that was not refused");

      // A choice of language in one window reaches the other, its open dialog and error included.
      await chooseLanguage(browser, OTHER_LANG);
      await switchToWindow(browser, "window-2");
      await waitDialog(browser, "compose", 5, 0, OTHER_LANG);
      await waitText(browser, "job-status", textsOf(OTHER_LANG).insufficientPoints);
      await assertAllIn(browser, OTHER_LANG);
      await switchToWindow(browser, "main");
      await chooseLanguage(browser, LANG);
      await switchToWindow(browser, "window-2");
      await waitDialog(browser, "compose", 5, 0);
      await assertAllIn(browser);
    } finally {
      // Whatever happened, leave both windows without a dialog and with 50 points (top-up in window-2).
      await switchToWindow(browser, "main");
      if (await shown(browser, "recharge-modal")) await click(browser, "recharge-close");
      await switchToWindow(browser, "window-2");
      await click(browser, "recharge-top-up");
      await waitFor(browser, "the dialog to close", async () => !(await shown(browser, "recharge-modal")));
      await waitText(browser, "balance", "50");
      await switchToWindow(browser, "main");
      await waitText(browser, "balance", "50");
    }
  });

  it("signing out clears both badges; signing in as the other user shows their balance", async () => {
    const { browser } = app;
    await switchToWindow(browser, "main");
    await click(browser, "sign-out");
    await waitText(browser, "balance", "—");
    await switchToWindow(browser, "window-2");
    await waitText(browser, "balance", "—");
    await waitText(browser, "user", T.signedOut);

    await click(browser, "sign-in-other");
    await waitText(browser, "user", T.signedInAs("Grace"));
    await waitText(browser, "balance", "20");
    await switchToWindow(browser, "main");
    await waitText(browser, "user", T.signedInAs("Grace"));
    await waitText(browser, "balance", "20");
    await runJob(browser, "action-cover-design");
    await waitText(browser, "balance", "18");
    await switchToWindow(browser, "window-2");
    await waitText(browser, "balance", "18");
    // The first user's balance is still theirs: sign back in as Ada.
    await click(browser, "sign-out");
    await waitText(browser, "balance", "—");
    await click(browser, "sign-in-other");
    await waitText(browser, "user", T.signedInAs("Ada"));
    await waitText(browser, "balance", "50");
  });
});
