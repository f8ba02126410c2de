// The cockpit views in headless Chromium against the running formbridge of ./run (after
// admin_page.mjs): a lead GHL refuses (422, dead-lettered) is found by its phone typed in
// another format than it was sent, opened, its steps seen; GHL revokes the token, so the
// overview shows its chart and the location paused with its token refused, and the lead that
// waits meanwhile is cancelled from its detail. Screenshots of the overview, the search and the
// detail go to target/browser-screenshots/. Gives the token back at the end. Waits only on
// conditions.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { api, base, session, token, until } from "./lib/harness.mjs";

const secret = process.env.WEBHOOK_SECRET;
const ghl = (process.env.GHL_URL || "").replace(/\/+$/, ""); // the sandbox prints it with a trailing /
const ghlToken = process.env.GHL_TOKEN;
const ghlLocation = process.env.GHL_LOCATION;
assert.ok(secret && ghl && ghlToken && ghlLocation, "run me with ./run");
const shots = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "target", "browser-screenshots");
mkdirSync(shots, { recursive: true });

async function post(source, body) {
  const resp = await fetch(`${base}/hooks/${source}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-webhook-secret": secret },
    body: JSON.stringify(body),
  });
  assert.equal(resp.status, 200, `POST /hooks/${source}: ${resp.status}`);
  return (await resp.json()).event_id;
}
async function sandbox(method, path, body) {
  const resp = await fetch(ghl + path, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  assert.ok(resp.status < 300, `${method} ${path}: ${resp.status}`);
}
const open = async () => {
  const s = await api("/admin/stats");
  return (s.by_status.pending || 0) + (s.by_status.processing || 0) + (s.by_status.retrying || 0);
};

// The earlier test's replays have settled; then GHL takes the contact but refuses its note
// (422): dead, with its contact step done.
await until("an idle queue", async () => (await open()) === 0);
await sandbox("POST", "/_sandbox/faults", { fail_next: 1, fail_status: 422, match_path: "/notes" });
const deadId = await post("powr", { Email: "refused.lead@example.com", Name: "Refused Lead", Phone: "(415) 555-2699" });
await until("the refused lead dead-lettered", async () => (await api(`/admin/events/${deadId}`)).status === "dead");
await sandbox("DELETE", "/_sandbox/faults");

let waitingId = null;
const { page, problems, step, finish } = await session({ viewport: { width: 1100, height: 900 } });
try {
  const leads = page.locator("#view-leads");

  await step("signed in, the overview is the first view and draws a chart of the deliveries", async () => {
    await page.goto(`${base}/admin/ui`);
    await page.getByLabel("Admin token").fill(token);
    await page.getByRole("button", { name: "Open" }).click();
    await page.locator("#overview-title").waitFor();
    assert.equal(await page.locator("#nav-list a").first().innerText(), "Overview");
    await page.locator("#chart svg rect.bar-done").first().waitFor();
    await page.locator("#chart svg rect.bar-dead").first().waitFor();
    assert.match(await page.locator("#chart-sources").innerText(), /powr/);
    assert.match(await page.locator("#ov-dead").innerText(), /powr/);
    assert.match(await page.locator("#ov-locations").innerText(), new RegExp(ghlLocation));
  });

  await step("GHL revokes the token: the overview shows the location paused, its token refused", async () => {
    await sandbox("DELETE", `/_sandbox/tokens/${encodeURIComponent(ghlToken)}`);
    waitingId = await post("powr", { Email: "waiting.lead@example.com", Name: "Waiting Lead" });
    await until("the lead waiting on the refused token", async () => (await api(`/admin/events/${waitingId}`)).status === "retrying");
    await until("the paused location on the overview", async () => {
      await page.getByRole("button", { name: "Refresh now" }).click();
      const text = await page.locator("#ov-locations tr.paused").allInnerTexts();
      return text.some((t) => /refused/.test(t) && /paused \(unauthorized\)/.test(t));
    });
    assert.ok((await page.locator("#ov-queue").innerText()).includes("retrying"));
    await page.screenshot({ path: join(shots, "overview.png"), fullPage: true });
  });

  await step("the dead-lettered lead is found by its phone typed in another format", async () => {
    await page.getByRole("link", { name: "Find a lead" }).click();
    await leads.getByLabel("Email, phone or submission id").fill("+1 415-555-2699");
    await leads.getByRole("button", { name: "Search" }).click();
    await page.locator("#lead-keys", { hasText: "phone:+14155552699" }).waitFor();
    await page.waitForFunction(() => document.querySelectorAll("#lead-results tr").length === 1);
    assert.match(await page.locator("#lead-results").innerText(), /powr\s+dead/);
    assert.match(await page.locator("#lead-counts").innerText(), /1\s*dead/);
    await page.screenshot({ path: join(shots, "search.png"), fullPage: true });
  });

  await step("opening it shows its steps, GHL's refusal and a link to the contact in GHL", async () => {
    await page.locator("#lead-results").getByRole("link", { name: `#${deadId}` }).click();
    await page.locator("#detail-title", { hasText: `Event #${deadId}` }).waitFor();
    await page.locator("#steps tr").first().waitFor();
    assert.match(await page.locator("#steps").innerText(), /upsert_contact\s+done/);
    assert.match(await page.locator("#steps").innerText(), /create_note\s+started[^\n]*GHL's answer: [^\n]*\(422\)/);
    assert.match(await page.locator("#detail-error").innerText(), /422/);
    const contact = page.locator("#ghl-contact a");
    assert.match(await contact.getAttribute("href"), new RegExp(`^https://app\\.gohighlevel\\.com/v2/location/${ghlLocation}/contacts/detail/`));
    await page.screenshot({ path: join(shots, "detail.png"), fullPage: true });
  });

  await step("the lead waiting on the token is cancelled from its detail and ends dead", async () => {
    await page.goto(`${base}/admin/ui#events/${waitingId}`);
    await page.locator("#detail-title", { hasText: `Event #${waitingId}` }).waitFor();
    const cancel = page.getByRole("button", { name: "Cancel sending" });
    await cancel.waitFor();
    // A dispatcher may hold it for a moment when its location's pause ends (409): try again.
    await until("the cancel taken", async () => {
      if (await cancel.isVisible()) await cancel.click();
      return (await api(`/admin/events/${waitingId}`)).status === "dead";
    });
    const ev = await api(`/admin/events/${waitingId}`);
    assert.match(ev.last_error, /cancelled by an admin/);
    await page.locator("#detail-error", { hasText: "cancelled by an admin" }).waitFor();
  });

  await step("at a phone's width the overview and the search fit the screen (tables scroll inside)", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const view of ["overview", "leads"]) {
      await page.goto(`${base}/admin/ui#${view}`);
      await page.locator(`#view-${view} h2`).waitFor();
      if (view === "overview") await page.locator("#chart svg rect").first().waitFor();
      const wide = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(wide <= 390, `#${view} is ${wide} px wide at 390`);
    }
    await page.goto(`${base}/admin/ui#overview`);
    await page.locator("#chart svg rect").first().waitFor();
    await page.screenshot({ path: join(shots, "overview-phone.png"), fullPage: true });
  });

  await step("no script error, console error, CSP violation or alert on the way", async () => {
    assert.deepEqual(problems, []);
  });
} finally {
  await finish();
  // Give the token back: the tests after this one find GHL as before (the pause ends in 5 s).
  await sandbox("POST", "/_sandbox/tokens", { token: ghlToken, locations: [ghlLocation] }).catch((e) => console.log(`# ${e}`));
}
