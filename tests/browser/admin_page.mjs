// The admin page in headless Chromium against a running formbridge (started by ./run, which
// sets FORMBRIDGE_URL and ADMIN_TOKEN and has posted a dead-lettered DripJobs delivery, a good
// POWR lead and a POWR lead whose name looks like HTML). Waits only on conditions.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const base = process.env.FORMBRIDGE_URL;
const token = process.env.ADMIN_TOKEN;
assert.ok(base && token, "FORMBRIDGE_URL and ADMIN_TOKEN must be set (run ./run)");
const auth = { Authorization: `Bearer ${token}` };

async function api(path) {
  const resp = await fetch(base + path, { headers: auth });
  assert.equal(resp.status, 200, `${path}: ${resp.status}`);
  return resp.json();
}

// Polls `check` every 100 ms until it returns a truthy value (at most `ms`).
async function until(what, check, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// The dispatcher settles the three deliveries: one dead at preparation, two done in the sandbox.
await until("1 dead and 2 done events", async () => {
  const stats = await api("/admin/stats");
  return stats.by_status.dead === 1 && stats.by_status.done === 2;
});
const powr = (await api("/admin/events?source=powr")).events;
let htmlId = null;
for (const ev of powr) {
  if ((await api(`/admin/events/${ev.id}`)).body.includes("<img")) htmlId = ev.id;
}
assert.ok(htmlId, "the HTML-looking lead is stored");
const deadId = (await api("/admin/events?status=dead")).events[0].id;

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
// Runs one step; after a failure the later steps (which build on it) are skipped.
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
try {
  const context = await browser.newContext();
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
  const rows = page.locator("#events tr");

  await step("the page asks for the token and a wrong one is refused with a clear message", async () => {
    await page.goto(`${base}/admin/ui#events`);
    await page.getByLabel("Admin token").fill("not-the-token");
    await page.getByLabel("Admin token").press("Enter");
    await page.locator("#message", { hasText: "refused (401)" }).waitFor();
    await page.getByLabel("Admin token").waitFor();
  });

  await step("with the token it shows the stats and every event", async () => {
    await page.getByLabel("Admin token").fill(token);
    await page.getByRole("button", { name: "Open" }).click();
    await page.locator("#stats .stat", { hasText: "dead" }).waitFor();
    assert.match(await page.locator("#stats").innerText(), /1\s*dead/);
    await page.waitForFunction(() => document.querySelectorAll("#events tr").length === 3);
    const text = await page.locator("#events").innerText();
    assert.match(text, /dripjobs/);
    assert.match(text, /powr/);
    assert.match(text, /no usable email or phone/);
  });

  await step("filtering by status dead leaves the dead letter", async () => {
    await page.locator("#filters").getByLabel("Status").selectOption("dead");
    await page.getByRole("button", { name: "Show", exact: true }).click();
    await page.waitForFunction(() => document.querySelectorAll("#events tr").length === 1);
    assert.match(await rows.first().innerText(), /dripjobs\s+dead/);
  });

  await step("opening it shows its error, attempts and body", async () => {
    await rows.first().getByRole("link", { name: `#${deadId}` }).click();
    await page.locator("#detail-title", { hasText: `Event #${deadId}` }).waitFor();
    assert.match(await page.locator("#detail-error").innerText(), /no usable email or phone/);
    assert.match(await page.locator("#body").innerText(), /"notes": "hi, no email or phone here"/);
  });

  await step("Replay asks first and shows the API's answer", async () => {
    await page.getByRole("button", { name: "Replay", exact: true }).click();
    await page.locator("#replay-result", { hasText: '"replayed":true' }).waitFor();
    assert.match(await page.locator("#replay-result").innerText(), /^202 /);
    assert.match(confirms.at(-1), new RegExp(`Replay event #${deadId}\\?`));
  });

  await step("'Replay all dead letters' replays the dead letters of the source filter", async () => {
    await page.locator("#filters").getByLabel("Source").fill("dripjobs");
    await page.getByRole("button", { name: "Replay all dead letters" }).click();
    await page.locator("#bulk-result", { hasText: /Replayed \d+ dead letter/ }).waitFor();
    assert.match(confirms.at(-1), /of source dripjobs/);
  });

  await step("a body that looks like HTML is shown as text, never rendered", async () => {
    await page.locator("#filters").getByLabel("Status").selectOption("");
    await page.locator("#filters").getByLabel("Source").fill("");
    await page.getByRole("button", { name: "Show", exact: true }).click();
    await page.waitForFunction(() => document.querySelectorAll("#events tr").length === 3);
    await page.getByRole("link", { name: `#${htmlId}`, exact: true }).click();
    await page.locator("#detail-title", { hasText: `Event #${htmlId}` }).waitFor();
    assert.match(await page.locator("#body").innerText(), /<img src=x onerror=alert\(1\)>/);
    assert.match(await page.locator("#submission").innerText(), /<img src=x onerror=alert\(1\)>/);
    assert.equal(await page.locator("img").count(), 0);
    assert.equal(await page.locator("#steps tr").count() > 0, true, "its GHL steps are listed");
    assert.match(await page.locator("#steps").innerText(), /upsert_contact\s+done/);
  });

  await step("'Forget token' clears it and asks for it again", async () => {
    await page.getByRole("button", { name: "Forget token" }).click();
    await page.getByLabel("Admin token").waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  });

  await step("no script error, console error, CSP violation or alert on the way", async () => {
    assert.deepEqual(problems, []);
  });
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
