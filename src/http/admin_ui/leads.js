// The "find a lead" view (#leads?q=…): GET /admin/search by email, phone in any format or the
// tool's submission id, with filters, counts per status and older pages. Registers with FB.
(() => {
  "use strict";
  const { $, el, row, when, short, api, failed } = FB;
  let after = null;

  function params() {
    const q = new URLSearchParams();
    const set = (k, id) => { const v = $(id).value.trim(); if (v) q.set(k, v); };
    set("q", "lead-q");
    set("status", "lead-status");
    set("source", "lead-source");
    set("location", "lead-location");
    for (const [k, id] of [["from", "lead-from"], ["to", "lead-to"]]) {
      const v = $(id).value;
      if (v) q.set(k, new Date(v).toISOString().replace(/\.\d{3}Z$/, "Z"));
    }
    return q;
  }

  async function search(more) {
    const q = params();
    if (more && after !== null) q.set("after", after);
    const { data } = await api("GET", "/admin/search?" + q);
    $("lead-keys").textContent = data.keys.length ? "Looked up: " + data.keys.join(", ") : "Every event (no query).";
    const counts = $("lead-counts");
    counts.replaceChildren();
    for (const status of FB.STATUSES) FB.stat(counts, data.counts[status] || 0, status);
    const tbody = $("lead-results");
    if (!more) tbody.replaceChildren();
    for (const ev of data.events) {
      const tr = row([FB.link("#" + ev.id, "#events/" + ev.id), ev.source, el("span", ev.status, "status-" + ev.status), when(ev.received_at), short(ev.last_error, 90)]);
      tr.cells[4].className = "error";
      tbody.appendChild(tr);
    }
    after = data.next_after;
    $("lead-more").hidden = after === null;
    $("lead-empty").hidden = tbody.children.length > 0;
  }

  FB.view("leads", {
    title: "Find a lead",
    async show({ query, entered }) {
      if (query.has("q")) $("lead-q").value = query.get("q");
      if (entered || query.has("q")) await search(false);
    },
  });

  $("lead-search").addEventListener("submit", (e) => {
    e.preventDefault();
    search(false).catch(failed);
  });
  $("lead-more").addEventListener("click", () => search(true).catch(failed));
})();
