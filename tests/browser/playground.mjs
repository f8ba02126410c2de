// The mapping playground and the fields view in headless Chromium (run by ./run, which sets
// FORMBRIDGE_URL, ADMIN_TOKEN, WEBHOOK_SECRET, CONFIG_DIR and RESTART_SERVER and configures the
// generic source `leadform`, whose mapping misses the phone of the lead posted here). A lead
// with only a phone under `best_number` is dead-lettered; the test opens it, adds the phone's
// answer to the mapping in the playground and sees its plan change, downloads the mapping file,
// deploys it (into CONFIG_DIR/mappings/, then RESTART_SERVER), replays the dead letter from the
// playground and sees it done. Screenshots go to target/browser-screenshots/. Waits only on
// conditions.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { api, base, session, token, until } from "./lib/harness.mjs";

const secret = process.env.WEBHOOK_SECRET;
const configDir = process.env.CONFIG_DIR;
const restart = process.env.RESTART_SERVER;
assert.ok(secret && configDir && restart, "run me with ./run");
const shots = fileURLToPath(new URL("../../target/browser-screenshots/", import.meta.url));
mkdirSync(shots, { recursive: true });
// The lead: a name and a phone under a key the default detection does not know.
const posted = await fetch(`${base}/hooks/leadform?token=${secret}`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ name: "Pat Playground", best_number: "(415) 555-0142", message: "Call me after 5" }),
});
assert.equal(posted.status, 200, `posting the lead: ${posted.status}`);
const leadId = (await posted.json()).event_id;
await until("the lead to be dead-lettered", async () => (await api(`/admin/events/${leadId}`)).status === "dead");

const PHONE = '\n[sources.leadform.mapping.fields]\nphone = "best_number"\n';
const { page, problems, step, finish } = await session({ acceptDownloads: true, viewport: { width: 1200, height: 900 } });
try {
  const mapping = page.getByLabel("Mapping (TOML, starts from the running one)");
  const delivery = page.locator(`.pg-delivery`, { hasText: `Event #${leadId}` });

  await step("the dead-lettered lead opens, its error saying no email or phone was found", async () => {
    await page.goto(`${base}/admin/ui#events/${leadId}`);
    await page.getByLabel("Admin token").fill(token);
    await page.getByRole("button", { name: "Open" }).click();
    await page.locator("#detail-title", { hasText: `Event #${leadId}` }).waitFor();
    assert.match(await page.locator("#detail-error").innerText(), /no usable email or phone/);
  });

  await step("the playground starts from the running mapping and shows the lead failing under both", async () => {
    await page.goto(`${base}/admin/ui#playground/leadform?ids=${leadId}`);
    await page.locator("#pg-title").waitFor();
    await until("the running mapping", async () => /\[sources\.leadform\.mapping/.test(await mapping.inputValue()));
    assert.match(await mapping.inputValue(), /web-lead/);
    await page.getByRole("button", { name: "Compare" }).click();
    await delivery.locator(".verdict", { hasText: "still fails" }).waitFor();
    assert.match(await delivery.innerText(), /No plan: no contact in this submission/);
  });

  await step("a configuration error is shown with its key", async () => {
    const running = await mapping.inputValue();
    await mapping.fill(running + '\n[sources.leadform.mapping.fields]\nphon = "best_number"\n');
    await page.getByRole("button", { name: "Compare" }).click();
    await page.locator("#pg-problems", { hasText: "sources.leadform.mapping.fields.phon" }).waitFor();
    await mapping.fill(running);
  });

  await step("adding the phone's answer changes the plan: the phone appears and the lead is fixed", async () => {
    await mapping.fill((await mapping.inputValue()) + PHONE);
    await page.getByRole("button", { name: "Compare" }).click();
    await delivery.locator(".verdict", { hasText: "fixes" }).waitFor();
    assert.equal(await page.locator("#pg-problems-box").isHidden(), true);
    const phoneRow = delivery.locator("tr.diff-added", { hasText: "contact.phone" });
    assert.match(await phoneRow.innerText(), /\+14155550142/);
    assert.match(await delivery.locator(".pg-side").nth(1).innerText(), /upsert_contact/);
    await page.locator("#pg-fix-list", { hasText: `Event #${leadId}` }).waitFor();
    await page.screenshot({ path: `${shots}playground.png`, fullPage: true });
  });

  await step("the edited mapping downloads as a file and deploys: copied into the config folder, restart", async () => {
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Download mapping file" }).click(),
    ]);
    assert.equal(download.suggestedFilename(), "leadform.toml");
    const target = `${configDir}/mappings/leadform.toml`;
    await download.saveAs(target);
    assert.match(readFileSync(target, "utf8"), /phone = "best_number"/);
    execFileSync(restart, { stdio: ["ignore", "inherit", "inherit"], timeout: 60000 });
    // The first request may meet a kept-alive connection to the stopped server: retry.
    const running = await until("the restarted server's answer", () => api("/admin/playground/leadform/mapping").catch(() => null));
    assert.match(running.toml, /phone = "best_number"/);
  });

  await step("after the restart the playground lists the dead letter as fixed by a replay; replay; done", async () => {
    await page.reload();
    await page.locator("#pg-title").waitFor();
    await until("the deployed mapping", async () => /best_number/.test(await mapping.inputValue()));
    await page.getByRole("button", { name: "Compare" }).click();
    await delivery.locator(".verdict", { hasText: "same" }).waitFor();
    await page.locator("#pg-fix-list", { hasText: `Event #${leadId}` }).waitFor();
    await page.getByRole("button", { name: "Replay these" }).click();
    await page.locator("#pg-replay-result", { hasText: "queued again" }).waitFor();
    await until("the lead to be done", async () => (await api(`/admin/events/${leadId}`)).status === "done");
    await page.goto(`${base}/admin/ui#events/${leadId}`);
    await page.locator("#detail-title", { hasText: `Event #${leadId} (leadform, done)` }).waitFor();
  });

  await step("the fields view lists the lead's answers and suggests the phone's key", async () => {
    await page.goto(`${base}/admin/ui#fields/leadform`);
    const rowOf = page.locator("#fields-rows tr", { hasText: "best_number" });
    await rowOf.waitFor();
    assert.match(await rowOf.innerText(), /phone/);
    assert.match(await page.locator("#fields-suggested").innerText(), /phone = "best_number"/);
    await page.screenshot({ path: `${shots}fields.png`, fullPage: true });
  });

  await step("at phone width the playground's plans stack and nothing overflows the page", async () => {
    await page.setViewportSize({ width: 390, height: 800 });
    await page.goto(`${base}/admin/ui#playground/leadform?ids=${leadId}`);
    await until("the mapping", async () => /best_number/.test(await mapping.inputValue()));
    await page.getByRole("button", { name: "Compare" }).click();
    await delivery.waitFor();
    const wide = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    assert.equal(wide, false, "the page scrolls sideways at 390 px");
    await page.screenshot({ path: `${shots}playground-phone.png`, fullPage: true });
  });

  await step("no script error, console error or CSP violation on the way", async () => {
    assert.deepEqual(problems, []);
  });
} finally {
  await finish();
}
