// The fields of a new form (#fields/SOURCE[?last=N]): every answer key seen in the source's
// recent deliveries with its labels, type, how often it is filled and an example value, and a
// suggested [sources.<name>.mapping.fields] for the contact fields, to paste into the mapping
// (or try at once in the playground). Registers itself with FB (see core.js).
(() => {
  "use strict";
  const { $, el, row, short, api, failed } = FB;
  let suggestion = "";

  async function fillSources(chosen) {
    const select = $("fields-source");
    if (select.options.length === 0) {
      const { data } = await api("GET", "/admin/playground/sources");
      for (const s of data.sources) {
        const opt = el("option", s.name);
        opt.value = s.name;
        select.appendChild(opt);
      }
    }
    if (chosen) select.value = chosen;
    return select.value;
  }

  async function load() {
    const source = $("fields-source").value;
    const last = Number($("fields-last").value) || 50;
    const { data } = await api("GET", "/admin/playground/" + encodeURIComponent(source) + "/fields?last=" + last);
    $("fields-summary").textContent = data.deliveries + " deliveries read" + (data.unreadable ? " (" + data.unreadable + " could not be read)" : "") + ", " + data.fields.length + " answer keys.";
    const tbody = $("fields-rows");
    tbody.replaceChildren();
    const readable = data.deliveries - data.unreadable;
    for (const f of data.fields) {
      const pct = readable ? Math.round((100 * f.filled) / readable) : 0;
      tbody.appendChild(row([f.key, f.labels.join(" / "), f.kind, f.filled + " of " + readable + " (" + pct + " %)", short(f.example || "", 80), f.looks_like || ""]));
    }
    $("fields-empty").hidden = data.fields.length > 0;
    suggestion = data.suggested_toml;
    $("fields-suggested").textContent = suggestion;
  }

  FB.view("fields", {
    title: "Form fields",
    async show(params) {
      await fillSources(params.path[0]);
      if (params.query.get("last")) $("fields-last").value = params.query.get("last");
      await load();
    },
  });

  $("fields-form").addEventListener("submit", (e) => {
    e.preventDefault();
    FB.go("fields", [$("fields-source").value], { last: $("fields-last").value });
  });
  $("fields-try").addEventListener("click", () => {
    // The playground's textarea gets the suggestion appended once it has loaded the mapping.
    sessionStorage.setItem("formbridge-playground-append", suggestion);
    FB.go("playground", [$("fields-source").value]);
  });
})();
