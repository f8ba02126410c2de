// What every browser test shares (not a test itself: ./run runs only tests/browser/*.mjs):
// the admin API with the token, waiting on a condition, headless Chromium, and numbered steps
// that stop at the first failure while collecting script errors and CSP violations.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

export const base = process.env.FORMBRIDGE_URL;
export const token = process.env.ADMIN_TOKEN;
assert.ok(base && token, "FORMBRIDGE_URL and ADMIN_TOKEN must be set (run ./run)");
const auth = { Authorization: `Bearer ${token}` };

/** GET an admin API path with the token; asserts a 200 and resolves to its JSON. */
export async function api(path) {
  const resp = await fetch(base + path, { headers: auth });
  assert.equal(resp.status, 200, `${path}: ${resp.status}`);
  return resp.json();
}

/** Polls `check` every 100 ms until it returns a truthy value (at most `ms`). */
export async function until(what, check, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Headless Chromium with one page. `problems` collects page errors, console errors and CSP
 * violations; confirm dialogs are accepted (their texts in `confirms`), any other dialog is a
 * problem. `step(name, fn)` runs one step; after a failure the later ones are skipped.
 * Call `finish()` at the end: it closes the browser and sets the exit code.
 */
export async function session(contextOptions = {}) {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  const problems = [];
  const confirms = [];
  let passed = 0;
  let failed = 0;
  const context = await browser.newContext(contextOptions);
  context.setDefaultTimeout(10000);
  const page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
    if (/Content Security Policy/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
  });
  page.on("dialog", async (d) => {
    if (d.type() === "confirm") {
      confirms.push(d.message());
      await d.accept();
    } else {
      problems.push(`unexpected ${d.type()} dialog: ${d.message()}`);
      await d.dismiss();
    }
  });
  const step = async (name, fn) => {
    if (failed) return;
    try {
      await fn();
      passed += 1;
      console.log(`ok - ${name}`);
    } catch (e) {
      failed += 1;
      console.log(`not ok - ${name}\n${e.stack || e}`);
    }
  };
  const finish = async () => {
    await browser.close();
    console.log(`${passed} passed, ${failed} failed`);
    process.exitCode = failed ? 1 : 0;
  };
  return { page, context, problems, confirms, step, finish };
}
