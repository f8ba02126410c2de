// The mapping playground (#playground/SOURCE[?dead=1|ids=1,2|last=N]): edit a source's mapping,
// starting from the running one, and see each stored delivery's plan under the running and the
// edited mapping side by side, the differences marked, every configuration error with its key,
// and which dead letters a replay would fix once the edited mapping is deployed. Nothing is sent
// to GHL and the running configuration does not change: the edited mapping is downloaded as a
// file to deploy. Registers itself with FB (see core.js).
(() => {
  "use strict";
  const { $, el, row, when, short, pretty, api, failed } = FB;
  const MARK = { added: "+ added", removed: "− removed", changed: "~ changed" };
  let loadedSource = null;
  let deployPath = null;
  let wouldFix = [];

  async function fillSources(select, chosen) {
    if (select.options.length === 0) {
      const { data } = await api("GET", "/admin/playground/sources");
      for (const s of data.sources) {
        const opt = el("option", s.name + (s.served ? "" : " (not served)"));
        opt.value = s.name;
        select.appendChild(opt);
      }
    }
    if (chosen) select.value = chosen;
    return select.value;
  }

  async function loadRunning(source) {
    const { data } = await api("GET", "/admin/playground/" + encodeURIComponent(source) + "/mapping");
    $("pg-mapping").value = data.toml;
    deployPath = data.deploy_path;
    loadedSource = source;
    $("pg-deploy-path").textContent = deployPath;
    $("pg-deploy-file").textContent = deployPath;
  }

  function selection() {
    const kind = $("pg-kind").value;
    const body = {};
    if (kind === "ids") {
      body.ids = $("pg-ids").value.split(/[\s,]+/).filter(Boolean).map(Number);
    } else {
      body.last = Number($("pg-last").value) || 50;
      if (kind === "dead") body.dead = true;
    }
    return body;
  }

  function showKind() {
    const ids = $("pg-kind").value === "ids";
    $("pg-ids-label").hidden = !ids;
    $("pg-last-label").hidden = ids;
  }

  /** One plan (or its error) as text. */
  function planText(outcome) {
    if (!outcome) return "(not compared: the edited mapping has configuration errors)";
    if (outcome.error !== undefined) return "No plan: " + outcome.error;
    return pretty(outcome.plan);
  }

  function renderProblems(problems) {
    const list = $("pg-problems");
    list.replaceChildren();
    for (const p of problems) {
      const li = el("li");
      li.appendChild(el("code", p.key));
      li.appendChild(document.createTextNode(": " + p.message));
      list.appendChild(li);
    }
    $("pg-problems-box").hidden = problems.length === 0;
  }

  function renderDelivery(d) {
    const box = el("article", null, "pg-delivery verdict-" + d.verdict);
    const h = el("h4");
    h.appendChild(FB.link("Event #" + d.event_id, "#events/" + d.event_id));
    h.appendChild(document.createTextNode(" · " + d.status + " · " + when(d.received_at) + " · "));
    h.appendChild(el("span", d.verdict.replace("_", " "), "verdict"));
    box.appendChild(h);
    const sides = el("div", null, "pg-sides");
    for (const [label, outcome] of [["Running mapping", d.running], ["Edited mapping", d.candidate]]) {
      const side = el("div", null, "pg-side");
      side.appendChild(el("h5", label));
      const pre = el("pre", planText(outcome));
      if (outcome && outcome.error !== undefined) pre.classList.add("pg-error");
      side.appendChild(pre);
      sides.appendChild(side);
    }
    box.appendChild(sides);
    if (d.differences.length) {
      const wrap = el("div", null, "table-wrap");
      const table = el("table");
      table.appendChild(el("caption", "Differences of event #" + d.event_id, "visually-hidden"));
      const head = el("thead");
      const headRow = el("tr");
      for (const name of ["Change", "Field", "Running", "Edited"]) {
        const th = el("th", name);
        th.scope = "col";
        headRow.appendChild(th);
      }
      head.appendChild(headRow);
      table.appendChild(head);
      const body = el("tbody");
      for (const diff of d.differences) {
        const tr = row([MARK[diff.change], diff.path, short(diff.running === undefined ? "" : JSON.stringify(diff.running), 200), short(diff.candidate === undefined ? "" : JSON.stringify(diff.candidate), 200)]);
        tr.className = "diff-" + diff.change;
        body.appendChild(tr);
      }
      table.appendChild(body);
      wrap.appendChild(table);
      box.appendChild(wrap);
    } else if (d.verdict === "same") {
      box.appendChild(el("p", "Same plan under both mappings.", "muted"));
    }
    return box;
  }

  function render(cmp) {
    renderProblems(cmp.problems);
    const c = cmp.counts;
    $("pg-summary").textContent = cmp.deliveries.length + " deliveries: " + c.same + " same, " + c.changed + " changed, " +
      c.fixes + " fixed, " + c.breaks + " broken, " + c.still_fails + " failing under both" +
      (cmp.problems.length ? " (not compared: fix the configuration errors first)" : "");
    const list = $("pg-results");
    list.replaceChildren();
    for (const d of cmp.deliveries) list.appendChild(renderDelivery(d));
    wouldFix = cmp.would_fix;
    const fix = $("pg-fix-list");
    fix.replaceChildren();
    for (const id of wouldFix) {
      const li = el("li");
      li.appendChild(FB.link("Event #" + id, "#events/" + id));
      fix.appendChild(li);
    }
    $("pg-fix-box").hidden = wouldFix.length === 0;
    $("pg-replay-result").hidden = true;
    $("pg-broken").hidden = cmp.would_break.length === 0;
    $("pg-broken").textContent = cmp.would_break.length
      ? "The edited mapping would fail " + cmp.would_break.length + " deliveries the running one handles: events " + cmp.would_break.map((i) => "#" + i).join(", ") + "."
      : "";
  }

  async function compare() {
    const source = $("pg-source").value;
    const body = Object.assign({ mapping: $("pg-mapping").value }, selection());
    $("pg-summary").textContent = "Comparing…";
    const { data } = await api("POST", "/admin/playground/" + encodeURIComponent(source) + "/compare", body);
    render(data);
  }

  function download() {
    const source = $("pg-source").value;
    const blob = new Blob([$("pg-mapping").value], { type: "application/toml" });
    const url = URL.createObjectURL(blob);
    const a = el("a");
    a.href = url;
    a.download = source + ".toml";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  async function replayFixed() {
    const out = $("pg-replay-result");
    const lines = [];
    for (const id of wouldFix) {
      const { data } = await api("POST", "/admin/events/" + id + "/replay");
      lines.push("#" + id + ": " + (data.replayed ? "queued again" : JSON.stringify(data)));
    }
    out.textContent = lines.join("\n") + "\nIf the edited mapping is deployed (and formbridge restarted), they now go through; otherwise they fail again with the running mapping.";
    out.hidden = false;
  }

  FB.view("playground", {
    title: "Mapping playground",
    async show(params) {
      const source = await fillSources($("pg-source"), params.path[0]);
      const q = params.query;
      if (q.get("ids")) { $("pg-kind").value = "ids"; $("pg-ids").value = q.get("ids"); }
      else if (q.get("dead")) $("pg-kind").value = "dead";
      if (q.get("last")) $("pg-last").value = q.get("last");
      showKind();
      if (source && source !== loadedSource) {
        await loadRunning(source);
        $("pg-results").replaceChildren();
        $("pg-summary").textContent = "";
        renderProblems([]);
        $("pg-fix-box").hidden = true;
      }
      // From the fields view: its suggested [fields] table, appended for a try.
      const append = sessionStorage.getItem("formbridge-playground-append");
      if (append) {
        sessionStorage.removeItem("formbridge-playground-append");
        $("pg-mapping").value = $("pg-mapping").value.replace(/\s*$/, "\n\n") + append;
      }
    },
  });

  $("pg-form").addEventListener("submit", (e) => { e.preventDefault(); compare().catch(failed); });
  $("pg-kind").addEventListener("change", showKind);
  $("pg-source").addEventListener("change", () => FB.go("playground", [$("pg-source").value]));
  $("pg-reset").addEventListener("click", () => loadRunning($("pg-source").value).catch(failed));
  $("pg-download").addEventListener("click", download);
  $("pg-replay").addEventListener("click", () => replayFixed().catch(failed));
})();
