"use strict";
/*
 * core.js: the admin page's shell (token sign-in, the JSON API call, DOM and formatting helpers,
 * the hash router and the view registry). Served with every other file of src/http/admin_ui/
 * under /admin/ui/… (see src/http/admin_page.rs); the Content-Security-Policy allows scripts
 * and styles from this origin only: no inline script or style, no handler attributes
 * (onclick=…), no eval, nothing from the internet.
 *
 * How a view plugs in (three edits, nothing else to touch):
 *   1. Write src/http/admin_ui/NAME.js, wrapped in an IIFE, registering itself:
 *
 *        (() => {
 *          "use strict";
 *          const { $, el, api } = FB;
 *          FB.view("NAME", {
 *            title: "Nav label",         // the nav link's text and the document title
 *            nav: true,                  // false: reachable by link only (default true)
 *            default: false,             // true: shown for an empty or unknown hash
 *            async show(params) { ... }, // called on every route to #NAME[/a/b][?k=v]
 *            hide() { ... },             // optional: called when another view is routed to
 *          });
 *          // once, at load: wire the section's static controls with addEventListener
 *        })();
 *
 *      `params` is { path: ["a", "b"], query: URLSearchParams, entered: bool } where
 *      `entered` is true when the view was not the one shown before (first load, nav click).
 *      Links between views are plain hrefs: "#events/42", "#leads?q=…". Navigate in code with
 *      FB.go("NAME", ["a"], {k: "v"}). Errors thrown by show() are shown by the shell (a
 *      refused token brings back the sign-in form); in handlers, `.catch(FB.failed)`.
 *   2. Add its markup to index.html as <section id="view-NAME" data-view="NAME" hidden>, with a
 *      heading (<h2 tabindex="-1">, focused when the view is entered), labelled controls and
 *      empty containers. (A view without a section gets an empty one created for it.)
 *   3. Add <script src="/admin/ui/NAME.js" defer></script> to index.html (its order is the
 *      nav order) and the file to ASSETS in src/http/admin_page.rs.
 *
 * A <select data-statuses> gets one option per event status at load (after its own options).
 *
 * Rules: every value from the API goes in with textContent (FB.el, FB.row, FB.dl do), never as
 * HTML; every control has a label; everything works with the keyboard and at phone width.
 * FB.every(name, ms, fn) runs fn every ms while the view is shown and the tab is visible.
 */
const FB = (() => {
  const TOKEN_KEY = "formbridge-admin-token";
  const $ = (id) => document.getElementById(id);
  const views = new Map();
  let current = null;

  class AuthError extends Error {}

  /** An element with `text` (as text, never HTML) and an optional class. */
  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }
  /** A table row of cells: Nodes are appended, anything else set as text. */
  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell ?? "";
      tr.appendChild(td);
    }
    return tr;
  }
  /** Fills a <dl> with [term, value] pairs (a missing value shows "—"). */
  function dl(node, pairs) {
    node.replaceChildren();
    for (const [k, v] of pairs) {
      node.appendChild(el("dt", k));
      const dd = el("dd");
      if (v instanceof Node) dd.appendChild(v); else dd.textContent = v === null || v === undefined || v === "" ? "—" : String(v);
      node.appendChild(dd);
    }
  }
  /** Appends a figure box to `container`: `value` large, `label` under it (both as text). */
  function stat(container, value, label) {
    const s = el("div", null, "stat");
    s.appendChild(el("b", value));
    s.appendChild(document.createTextNode(label));
    container.appendChild(s);
  }
  /** A link to `href` with `text`. */
  function link(text, href) {
    const a = el("a", text);
    a.href = href;
    return a;
  }
  function short(text, n) {
    if (!text) return "";
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }
  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }
  function age(seconds) {
    if (seconds === null || seconds === undefined) return "none";
    if (seconds < 120) return seconds + " s";
    if (seconds < 7200) return Math.round(seconds / 60) + " min";
    if (seconds < 172800) return Math.round(seconds / 3600) + " h";
    return Math.round(seconds / 86400) + " d";
  }
  function pretty(value) {
    return value === null || value === undefined ? "(none)" : JSON.stringify(value, null, 2);
  }
  /** Shows a message under the header (empty text hides it). */
  function say(text, bad) {
    const m = $("message");
    m.textContent = text;
    m.classList.toggle("bad", !!bad);
    m.hidden = !text;
  }

  /** Calls the admin JSON API with the token; resolves to {status, data}, throws a readable Error. */
  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
    } catch (e) {
      throw new Error("formbridge did not answer (" + e.message + ")");
    }
    let data = null;
    try { data = await resp.json(); } catch (_) { /* not JSON */ }
    const detail = data && data.detail ? data.detail : resp.statusText;
    if (resp.status === 401) throw new AuthError("The admin token was refused (401): " + detail + ". Enter it again.");
    if (resp.status === 404 && data && /admin API is disabled/.test(detail)) {
      throw new AuthError("The admin API is off (404): " + detail + ".");
    }
    if (!resp.ok) throw new Error(method + " " + path + " answered " + resp.status + ": " + detail);
    return { status: resp.status, data };
  }

  function showLogin(text) {
    sessionStorage.removeItem(TOKEN_KEY);
    if (current && views.get(current).hide) views.get(current).hide();
    current = null;
    $("app").hidden = true;
    $("nav").hidden = true;
    $("sign-out").hidden = true;
    $("login").hidden = false;
    say(text || "Enter the admin token to continue.", !!text);
    $("token").focus();
  }
  /** Shows an error; a refused token brings back the sign-in form. */
  function failed(e) {
    if (e instanceof AuthError) showLogin(e.message); else say(e.message, true);
  }

  /** Registers a view (see the comment at the top). */
  function view(name, spec) {
    views.set(name, Object.assign({ title: name, nav: true, default: false }, spec));
  }

  function parseHash() {
    let hash = decodeURIComponent(location.hash.replace(/^#/, ""));
    const legacy = /^event-(\d+)$/.exec(hash); // links of the one-file page
    if (legacy) hash = "events/" + legacy[1];
    const [route, search] = hash.split("?", 2);
    const [name, ...path] = route.split("/");
    return { name, path: path.filter((p) => p !== ""), query: new URLSearchParams(search || "") };
  }
  function defaultView() {
    for (const [name, spec] of views) if (spec.default) return name;
    return views.keys().next().value;
  }
  /** The hash for a view with path segments and query values. */
  function href(name, path, query) {
    let h = "#" + [name, ...(path || []).map((p) => encodeURIComponent(p))].join("/");
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== "") q.set(k, v);
    if ([...q].length) h += "?" + q;
    return h;
  }
  function go(name, path, query) {
    location.hash = href(name, path, query);
  }

  function sectionOf(name) {
    let section = $("view-" + name);
    if (!section) {
      section = el("section");
      section.id = "view-" + name;
      section.dataset.view = name;
      section.hidden = true;
      $("app").appendChild(section);
    }
    return section;
  }

  async function route() {
    if (!sessionStorage.getItem(TOKEN_KEY)) return;
    let { name, path, query } = parseHash();
    if (!views.has(name)) {
      name = defaultView();
      path = [];
    }
    const spec = views.get(name);
    const entered = current !== name;
    if (entered && current && views.get(current).hide) views.get(current).hide();
    current = name;
    for (const section of document.querySelectorAll("#app > section[data-view]")) section.hidden = section.dataset.view !== name;
    const section = sectionOf(name);
    section.hidden = false;
    for (const a of $("nav-list").querySelectorAll("a")) {
      if (a.dataset.view === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    }
    document.title = spec.title + " · formbridge admin";
    say("");
    await spec.show({ path, query, entered });
    if (entered) {
      const heading = section.querySelector("h2");
      if (heading) {
        if (!heading.hasAttribute("tabindex")) heading.setAttribute("tabindex", "-1");
        heading.focus();
      }
    }
  }

  /** Runs fn every ms while view `name` is shown and the tab is visible (and once on return). */
  function every(name, ms, fn) {
    const tick = () => {
      if (current === name && !document.hidden && sessionStorage.getItem(TOKEN_KEY)) fn().catch(failed);
    };
    setInterval(tick, ms);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) tick(); });
  }

  function start() {
    $("login").hidden = true;
    $("app").hidden = false;
    $("nav").hidden = false;
    $("sign-out").hidden = false;
    say("");
    route().catch(failed);
  }

  /** Statuses an event can have, in queue order (fills every <select data-statuses>). */
  const STATUSES = ["pending", "processing", "retrying", "dead", "done"];

  function boot() {
    for (const select of document.querySelectorAll("select[data-statuses]")) {
      for (const status of STATUSES) select.appendChild(el("option", status));
    }
    const list = $("nav-list");
    for (const [name, spec] of views) {
      if (!spec.nav) continue;
      const a = link(spec.title, "#" + name);
      a.dataset.view = name;
      const li = el("li");
      li.appendChild(a);
      list.appendChild(li);
    }
    $("login").addEventListener("submit", (e) => {
      e.preventDefault();
      const token = $("token").value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      $("token").value = "";
      start();
    });
    $("sign-out").addEventListener("click", () => showLogin(""));
    window.addEventListener("hashchange", () => route().catch(failed));
    if (sessionStorage.getItem(TOKEN_KEY)) start(); else showLogin("");
  }
  // Deferred scripts run in document order before DOMContentLoaded: every view is registered.
  document.addEventListener("DOMContentLoaded", boot);

  return { $, el, row, dl, link, stat, STATUSES, short, when, age, pretty, say, api, failed, AuthError, view, go, href, every, refresh: () => route().catch(failed) };
})();
