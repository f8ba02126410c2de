// The events view (#events, #events/ID): queue counts, the events newest first with filters and
// older pages, one event's detail with replay. Registers itself with FB (see core.js).
(() => {
  "use strict";
  const { $, el, row, when, age, short, pretty, api, failed } = FB;
  const API = { events: "/admin/events", stats: "/admin/stats", replay: "/admin/replay" };
  let nextBeforeId = null;
  let currentId = null;

  async function loadStats() {
    const { data } = await api("GET", API.stats);
    const box = $("stats");
    box.replaceChildren();
    const add = (label, value) => FB.stat(box, value, label);
    for (const status of FB.STATUSES) add(status, (data.by_status && data.by_status[status]) || 0);
    add("total", data.total);
    add("oldest unfinished", age(data.oldest_unfinished_age_seconds));
  }

  function filterQuery() {
    const q = new URLSearchParams();
    const status = $("filter-status").value;
    const source = $("filter-source").value.trim();
    if (status) q.set("status", status);
    if (source) q.set("source", source);
    return q;
  }

  async function loadEvents(older) {
    const q = filterQuery();
    if (older && nextBeforeId !== null) q.set("before_id", nextBeforeId);
    const { data } = await api("GET", API.events + "?" + q);
    const tbody = $("events");
    if (!older) tbody.replaceChildren();
    for (const ev of data.events) {
      const link = FB.link("#" + ev.id, "#events/" + ev.id);
      const tr = row([link, ev.source, el("span", ev.status, "status-" + ev.status), ev.attempts, when(ev.received_at), short(ev.last_error, 90)]);
      tr.dataset.id = ev.id;
      tr.cells[5].className = "error";
      if (ev.last_error) tr.cells[5].title = ev.last_error;
      tr.classList.toggle("selected", ev.id === currentId);
      tr.addEventListener("click", (e) => { if (e.target.tagName !== "A") location.hash = "events/" + ev.id; });
      tbody.appendChild(tr);
    }
    nextBeforeId = data.next_before_id;
    $("older").hidden = nextBeforeId === null;
    $("events-empty").hidden = tbody.children.length > 0;
  }

  /** Fills the detail of event `ev` (the answer of GET /admin/events/{id}). */
  function fillDetail(ev) {
    currentId = ev.id;
    $("detail").hidden = false;
    $("detail-title").textContent = "Event #" + ev.id + " (" + ev.source + ", " + ev.status + ")";
    FB.dl($("summary"), [
      ["Status", ev.status], ["Source", ev.source], ["Attempts", ev.attempts],
      ["Revision", ev.revision + (ev.revision_of ? " of #" + ev.revision_of : "")],
      ["Received", when(ev.received_at)], ["Next attempt", when(ev.next_attempt_at)],
      ["Updated", when(ev.updated_at)], ["Contact key", ev.contact_key], ["Location", ev.location_id],
      ["Content type", ev.content_type], ["Dedupe key", ev.dedupe_key],
    ]);
    $("detail-error").textContent = ev.last_error || "(none)";
    const revs = $("revisions");
    revs.replaceChildren();
    for (const r of ev.revisions || []) {
      const li = el("li");
      const a = FB.link("#" + r.id + " revision " + r.revision + " (" + r.status + ", " + when(r.received_at) + ")", "#events/" + r.id);
      if (r.id === ev.id) a.setAttribute("aria-current", "true");
      li.appendChild(a);
      revs.appendChild(li);
    }
    $("revisions-box").hidden = revs.children.length === 0;
    const steps = $("steps");
    // The store keeps each step's status, GHL id and time; GHL's answer to a step that ended
    // the last attempt is that attempt's error ("create_note failed: GHL refused … (422) …").
    const answer = (s) => (s.status === "started" && ev.last_error && ev.last_error.startsWith(s.kind + " failed") ? "GHL's answer: " + ev.last_error : "");
    // Each GHL request the step made in its latest attempt: "POST /contacts/upsert → 201 in 84 ms".
    const requests = (s) => {
      const list = el("ul", undefined, "step-requests");
      for (const r of s.requests || []) {
        list.appendChild(el("li", r.request + " → " + (r.status != null ? r.status : "no answer (" + (r.failure || "?") + ")") + " in " + r.ms + " ms"));
      }
      return list.children.length ? list : "—";
    };
    steps.replaceChildren(...(ev.steps || []).map((s) => row([s.index, s.kind, s.status, s.ghl_id || "—", when(s.updated_at), requests(s), [s.detail, s.in_doubt_until ? "no answer yet; in doubt until " + when(s.in_doubt_until) : "", answer(s)].filter(Boolean).join("; ")])));
    const attempts = $("attempts");
    attempts.replaceChildren(...(ev.attempt_history || []).map((a) => row([a.attempt, when(a.at), a.outcome, a.error || ""])));
    let body = ev.body;
    if (ev.body_encoding === "utf8") {
      try { body = JSON.stringify(JSON.parse(body), null, 2); } catch (_) { /* not JSON: as sent */ }
    } else {
      body = "(base64) " + body;
    }
    $("body").textContent = body;
    $("submission").textContent = pretty(ev.submission);
    $("plan").textContent = pretty(ev.plan);
    $("headers").textContent = (ev.headers || []).map(([k, v]) => k + ": " + v).join("\n") || "(none)";
    $("cancel-event").hidden = !(ev.status === "pending" || ev.status === "retrying");
    // This delivery in the mapping playground, under its source's running mapping.
    $("to-playground").href = "#playground/" + encodeURIComponent(ev.source) + "?ids=" + ev.id;
    // The contact in GHL's app. URL form: app.gohighlevel.com/v2/location/{locationId}/contacts/detail/{contactId}
    // (the address GHL's web app shows for a contact; white-labelled agency domains differ).
    const contact = (ev.steps || []).find((s) => s.kind === "upsert_contact" && s.ghl_id);
    const box = $("ghl-contact");
    box.replaceChildren();
    if (contact && ev.location_id) {
      const a = FB.link("Open contact " + contact.ghl_id + " in GHL", "https://app.gohighlevel.com/v2/location/" + encodeURIComponent(ev.location_id) + "/contacts/detail/" + encodeURIComponent(contact.ghl_id));
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      box.appendChild(a);
    }
    box.hidden = box.children.length === 0;
    for (const tr of $("events").rows) tr.classList.toggle("selected", Number(tr.dataset.id) === ev.id);
  }

  async function loadDetail(id) {
    const { data: ev } = await api("GET", API.events + "/" + encodeURIComponent(id));
    fillDetail(ev);
    FB.events.detailShown(ev);
  }

  function closeDetail() {
    currentId = null;
    $("detail").hidden = true;
    for (const tr of $("events").rows) tr.classList.remove("selected");
  }

  async function replay(fromScratch) {
    if (currentId === null) return;
    const what = fromScratch
      ? "Replay event #" + currentId + " from scratch? Every step runs again; a task or note it made is looked for by its marker first, so none is created twice."
      : "Replay event #" + currentId + "? Steps already done in GHL are skipped.";
    if (!confirm(what)) return;
    const out = $("replay-result");
    try {
      const { status, data } = await api("POST", API.events + "/" + currentId + "/replay" + (fromScratch ? "?from_scratch=true" : ""));
      out.textContent = status + " " + JSON.stringify(data);
      out.hidden = false;
      await refresh();
    } catch (e) {
      out.textContent = e.message;
      out.hidden = false;
      if (e instanceof FB.AuthError) failed(e);
    }
  }

  async function cancelEvent() {
    if (currentId === null) return;
    if (!confirm("Cancel event #" + currentId + "? It will not be sent to GHL; it ends as a dead letter saying an admin cancelled it (replay sends it after all).")) return;
    const out = $("replay-result");
    try {
      const { status, data } = await api("POST", API.events + "/" + currentId + "/cancel");
      out.textContent = status + " " + JSON.stringify(data);
    } catch (e) {
      out.textContent = e.message;
      if (e instanceof FB.AuthError) failed(e);
    }
    out.hidden = false;
    await refresh().catch(failed);
  }

  async function replayDead() {
    const source = $("filter-source").value.trim();
    const filter = { status: "dead" };
    if (source) filter.source = source;
    if (!confirm("Replay every dead letter" + (source ? " of source " + source : " of every source") + "?")) return;
    const out = $("bulk-result");
    try {
      const { data } = await api("POST", API.replay, filter);
      out.textContent = "Replayed " + data.replayed + " dead letter(s). " + JSON.stringify(data);
      out.classList.remove("bad");
      await refresh();
    } catch (e) {
      out.textContent = e.message;
      out.classList.add("bad");
      if (e instanceof FB.AuthError) failed(e);
    }
    out.hidden = false;
  }

  async function refresh() {
    await Promise.all([loadStats(), loadEvents(false), currentId !== null ? loadDetail(currentId) : null]);
  }

  FB.view("events", {
    title: "Events",
    async show({ path, entered }) {
      if (entered) await Promise.all([loadStats(), loadEvents(false)]);
      if (path.length) {
        $("replay-result").hidden = true;
        await loadDetail(path[0]);
        $("detail-title").focus();
      } else {
        closeDetail();
      }
    },
  });
  // Hooks other views may set to extend the detail (e.g. more actions): detailShown(ev).
  FB.events = { detailShown: () => {}, refresh: () => refresh().catch(failed) };

  $("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    Promise.all([loadStats(), loadEvents(false)]).catch(failed);
  });
  $("older").addEventListener("click", () => loadEvents(true).catch(failed));
  $("replay").addEventListener("click", () => replay(false));
  $("replay-scratch").addEventListener("click", () => replay(true));
  $("replay-dead").addEventListener("click", () => replayDead());
  $("cancel-event").addEventListener("click", () => cancelEvent());
  $("close-detail").addEventListener("click", () => { location.hash = "events"; });
})();
