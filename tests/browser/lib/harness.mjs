// Shared by the browser tests (./run runs every ../*.mjs; this folder holds no test): headless
// Chromium, the admin API with the token, waiting on a condition, numbered steps, and the
// page's script errors, console errors and CSP violations collected.
import { chromium } from "playwright-core";

/** GETs an admin API path with the token and returns its JSON (throws on a non-200). */
export async function api(base, token, path) {
  const resp = await fetch(base + path, { headers: { Authorization: `Bearer ${token}` } });
  if (resp.status !== 200) throw new Error(`${path}: ${resp.status}`);
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

/** Headless Chromium (Debian's). */
export function launch() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

/** Collects a page's script errors, console errors and CSP violations into `problems`. */
export function watch(page, problems) {
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
    if (/Content Security Policy/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
  });
}

/** Steps run in order; after a failure the later ones (which build on it) are skipped. */
export function steps() {
  const tally = { passed: 0, failed: 0 };
  const step = async (name, fn) => {
    if (tally.failed) return;
    try {
      await fn();
      tally.passed += 1;
      console.log(`ok - ${name}`);
    } catch (e) {
      tally.failed += 1;
      console.log(`not ok - ${name}\n${e.stack || e}`);
    }
  };
  const finish = () => {
    console.log(`${tally.passed} passed, ${tally.failed} failed`);
    process.exitCode = tally.failed ? 1 : 0;
  };
  return { step, finish };
}
