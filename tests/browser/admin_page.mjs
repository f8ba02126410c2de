// The admin page in headless Chromium against a running formbridge (started by ./run, which
// sets FORMBRIDGE_URL and ADMIN_TOKEN and has posted a dead-lettered DripJobs delivery, a good
// POWR lead and a POWR lead whose name looks like HTML). Waits only on conditions.
import assert from "node:assert/strict";
import { api, base, session, token, until } from "./lib/harness.mjs";

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

const { page, problems, confirms, step, finish } = await session();
try {
  const rows = page.locator("#events tr");
  // The events view's controls (other views have a Status and a Source of their own).
  const events = page.locator("#view-events");

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
    await events.getByLabel("Status").selectOption("dead");
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
    await events.getByLabel("Source").fill("dripjobs");
    await page.getByRole("button", { name: "Replay all dead letters" }).click();
    await page.locator("#bulk-result", { hasText: /Replayed \d+ dead letter/ }).waitFor();
    assert.match(confirms.at(-1), /of source dripjobs/);
  });

  await step("a body that looks like HTML is shown as text, never rendered", async () => {
    await events.getByLabel("Status").selectOption("");
    await events.getByLabel("Source").fill("");
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
  await finish();
}
