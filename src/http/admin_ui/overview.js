// The overview (#overview, the default view): GET /admin/overview, refreshed every 10 s while
// shown and the tab is visible. Deliveries per minute drawn as an SVG bar chart built with DOM
// calls (the same figures as tables), the queue, dead letters and 429s by source and location,
// and each GHL location's budget, pause and token as this replica knows them. Registers with FB.
(() => {
  "use strict";
  const { $, el, row, age, api, failed } = FB;
  const SVG = "http://www.w3.org/2000/svg";
  // Outcomes as the chart groups statuses (a status is where the delivery is now).
  const OUTCOMES = [
    ["done", ["done"]],
    ["waiting", ["pending", "processing", "retrying"]],
    ["dead", ["dead"]],
  ];
  const outcomeOf = (status) => (OUTCOMES.find(([, s]) => s.includes(status)) || ["waiting"])[0];

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  /** Per-minute totals by outcome over the whole window, oldest first. */
  function minutes(data) {
    const end = Math.floor(Date.parse(data.now) / 60000) * 60;
    const start = end - data.hours * 3600 + 60;
    const byMinute = new Map();
    for (let t = start; t <= end; t += 60) byMinute.set(t, { done: 0, waiting: 0, dead: 0 });
    for (const m of data.per_minute) {
      const slot = byMinute.get(m.minute);
      if (slot) slot[outcomeOf(m.status)] += m.count;
    }
    return [...byMinute.entries()];
  }

  function drawChart(data) {
    const series = minutes(data);
    const max = Math.max(1, ...series.map(([, c]) => c.done + c.waiting + c.dead));
    const w = 720, h = 160, left = 36, bottom = 18;
    const bar = (w - left) / series.length;
    const chart = svg("svg", { viewBox: `0 0 ${w} ${h}`, role: "img", "aria-labelledby": "chart-title chart-desc", class: "chart" });
    const title = svg("title", { id: "chart-title" });
    title.textContent = "Deliveries per minute, last " + data.hours + " h";
    const total = series.reduce((n, [, c]) => n + c.done + c.waiting + c.dead, 0);
    const desc = svg("desc", { id: "chart-desc" });
    desc.textContent = total + " deliveries; busiest minute " + max + ". The table below has the figures.";
    chart.append(title, desc);
    const scale = (h - bottom - 4) / max;
    chart.appendChild(svg("line", { x1: left, y1: h - bottom, x2: w, y2: h - bottom, class: "axis" }));
    for (const label of [0, max]) {
      const y = h - bottom - label * scale;
      const t = svg("text", { x: left - 4, y: y + 4, "text-anchor": "end", class: "tick" });
      t.textContent = String(label);
      chart.appendChild(t);
    }
    series.forEach(([minute, c], i) => {
      let y = h - bottom;
      for (const [name] of OUTCOMES) {
        if (!c[name]) continue;
        const height = c[name] * scale;
        y -= height;
        const r = svg("rect", { x: left + i * bar, y, width: Math.max(bar - 0.5, 0.5), height, class: "bar-" + name });
        const tip = svg("title");
        tip.textContent = new Date(minute * 1000).toLocaleTimeString() + ": " + c[name] + " " + name;
        r.appendChild(tip);
        chart.appendChild(r);
      }
    });
    for (const at of [0, Math.floor(series.length / 2), series.length - 1]) {
      if (!series[at]) continue;
      const t = svg("text", { x: left + at * bar, y: h - 4, "text-anchor": at === 0 ? "start" : at === series.length - 1 ? "end" : "middle", class: "tick" });
      t.textContent = new Date(series[at][0] * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      chart.appendChild(t);
    }
    $("chart").replaceChildren(chart);

    // The same figures as text: per source, and per minute (minutes with deliveries).
    const bySource = new Map();
    for (const m of data.per_minute) {
      const s = bySource.get(m.source) || { done: 0, waiting: 0, dead: 0 };
      s[outcomeOf(m.status)] += m.count;
      bySource.set(m.source, s);
    }
    const sources = $("chart-sources");
    sources.replaceChildren();
    for (const [source, c] of [...bySource.entries()].sort()) {
      sources.appendChild(row([source, c.done, c.waiting, c.dead, c.done + c.waiting + c.dead]));
    }
    $("chart-empty").hidden = bySource.size > 0;
    const perMinute = $("chart-minutes");
    perMinute.replaceChildren();
    for (const [minute, c] of series) {
      if (c.done + c.waiting + c.dead === 0) continue;
      perMinute.appendChild(row([new Date(minute * 1000).toLocaleTimeString(), c.done, c.waiting, c.dead]));
    }
  }

  function drawQueue(data) {
    const q = data.queue;
    const stats = $("ov-queue");
    stats.replaceChildren();
    const stat = (value, label) => FB.stat(stats, value, label);
    for (const status of FB.STATUSES) stat(q.by_status[status] || 0, status);
    stat(data.oldest_due_age_seconds === null ? "none" : age(data.oldest_due_age_seconds), "oldest due waits");
    stat(q.waiting_for_lead, "follow-ups waiting for their lead");
    stat(data.oldest_waiting_for_lead_age_seconds === null ? "none" : age(data.oldest_waiting_for_lead_age_seconds), "oldest follow-up waits");
    stat(q.retrying_backoff, "in backoff");
  }

  function places(tbody, empty, list, status) {
    tbody.replaceChildren();
    for (const p of list) {
      const query = { source: p.source };
      if (status) query.status = status;
      if (p.location_id) query.location = p.location_id;
      tbody.appendChild(row([p.source, p.location_id || "(none yet)", FB.link(String(p.count), FB.href("leads", [], query))]));
    }
    empty.hidden = list.length > 0;
  }

  function drawLocations(data) {
    const tbody = $("ov-locations");
    tbody.replaceChildren();
    $("ov-not-here").hidden = data.locations !== null;
    $("ov-shared").hidden = !data.budget_shared;
    const ms = (v) => (v === null || v === undefined ? "not known yet" : age(Math.round(v / 1000)));
    for (const l of data.locations || []) {
      const paused = l.paused ? "paused (" + l.paused + ") for " + ms(l.paused_for_ms) : "no";
      const burst = l.burst === null ? "no request yet" : l.burst_left + " of " + l.burst + " per " + ms(l.window_ms);
      const ghlBurst = l.ghl_burst_left === null ? "not known yet" : String(l.ghl_burst_left);
      const day = l.ghl_day_left === null ? "not known yet" : l.ghl_day_left + (l.ghl_day_max === null ? "" : " of " + l.ghl_day_max);
      const tr = row([l.location_id, el("span", l.token, "token-" + l.token), el("span", paused, l.paused ? "status-dead" : ""), burst, ghlBurst, day, l.last_answer_ago_ms === null ? "none yet" : ms(l.last_answer_ago_ms) + " ago"]);
      tr.dataset.location = l.location_id;
      if (l.paused) tr.classList.add("paused");
      tbody.appendChild(tr);
    }
    $("ov-locations-empty").hidden = !data.locations || data.locations.length > 0;
  }

  async function load() {
    const { data } = await api("GET", "/admin/overview");
    drawChart(data);
    drawQueue(data);
    places($("ov-dead"), $("ov-dead-empty"), data.dead, "dead");
    places($("ov-429"), $("ov-429-empty"), data.rate_limited, null);
    drawLocations(data);
    $("ov-updated").textContent = "Updated " + new Date(data.now).toLocaleTimeString() + "; refreshes every 10 s.";
  }

  FB.view("overview", {
    title: "Overview",
    default: true,
    async show() {
      await load();
    },
  });
  FB.every("overview", 10000, load);
  $("ov-refresh").addEventListener("click", () => load().catch(failed));
})();
