// The live view of an aimate run: frames arrive over server-sent events (see
// live/src/frames.rs), are kept by what they describe, and the page is drawn from that
// state twice a second. A frame received again (after a reconnect) just replaces itself.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => (token ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : path);

const state = {
  run: null,
  parts: new Map(), // part → part frame
  stages: new Map(), // part → Map(stage → stage frame)
  seconds: new Map(), // part → Map("stage/t_ms" → second frame)
  server: new Map(), // part → Map("t_ms/instance" → server frame)
  events: new Map(), // part → Map(id → event frame)
  clock: new Map(), // part → clock frame
  verdicts: new Map(), // part → verdicts frame
  chosen: null, // the part the reader picked; null follows the latest
};
let dirty = true;

function bucket(map, part) {
  if (!map.has(part)) map.set(part, new Map());
  return map.get(part);
}

const handlers = {
  run: (f) => { state.run = f; },
  part: (f) => { state.parts.set(f.part, f); },
  stage: (f) => { bucket(state.stages, f.part).set(f.stage, f); },
  second: (f) => { bucket(state.seconds, f.part).set(`${f.stage}/${f.t_ms}`, f); },
  server: (f) => { bucket(state.server, f.part).set(`${f.t_ms}/${f.instance}`, f); },
  event: (f) => { bucket(state.events, f.part).set(f.id, f); },
  clock: (f) => { state.clock.set(f.part, f); },
  verdicts: (f) => { state.verdicts.set(f.part, f); },
};

// ---- formatting (the reports' units: ms below a second, s from a second on) ----
function fmtUs(us) {
  if (us === null || us === undefined) return "–";
  return us < 1e6 ? `${(us / 1000).toFixed(2)} ms` : `${(us / 1e6).toFixed(2)} s`;
}
function fmtDuration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const m = Math.floor(s / 60);
  return m > 0 ? `${m} min ${String(s % 60).padStart(2, "0")} s` : `${s} s`;
}
const fmtRate = (r) => `${Number.isInteger(r) ? r : r.toFixed(1)} req/s`;
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
const text = (id, value) => { document.getElementById(id).textContent = value; };

// ---- the part on show ----
function shownPart() {
  if (state.chosen !== null && state.parts.has(state.chosen)) return state.chosen;
  let latest = null;
  for (const p of state.parts.keys()) latest = latest === null ? p : Math.max(latest, p);
  return latest;
}

function sortedSeconds(part) {
  return [...(state.seconds.get(part) || new Map()).values()].sort((a, b) => a.t_ms - b.t_ms);
}

// ---- charts ----
const charts = { part: null, latency: null, rate: null, server: null };

function overlay(kind) {
  // Faults shaded, alerts marked, the objectives dashed (latency chart only).
  return {
    hooks: {
      drawClear: [(u) => {
        const part = charts.part;
        const ctx = u.ctx;
        ctx.save();
        for (const e of (state.events.get(part) || new Map()).values()) {
          if (e.kind !== "fault") continue;
          const now = (state.clock.get(part) || { t_ms: e.t_ms }).t_ms;
          const end = e.end_ms ?? now;
          const x0 = u.valToPos(e.t_ms / 1000, "x", true);
          const x1 = u.valToPos(Math.max(end, e.t_ms) / 1000, "x", true);
          ctx.fillStyle = e.ongoing ? "rgba(207, 34, 46, 0.14)" : "rgba(207, 34, 46, 0.08)";
          ctx.fillRect(x0, u.bbox.top, Math.max(1, x1 - x0), u.bbox.height);
        }
        ctx.restore();
      }],
      draw: [(u) => {
        const part = charts.part;
        const ctx = u.ctx;
        ctx.save();
        ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
        ctx.textAlign = "left";
        ctx.textBaseline = "alphabetic";
        for (const e of (state.events.get(part) || new Map()).values()) {
          if (e.kind !== "alert_firing" && e.kind !== "alert_resolved") continue;
          const x = u.valToPos(e.t_ms / 1000, "x", true);
          ctx.strokeStyle = e.kind === "alert_firing" ? "#cf222e" : "#1a7f37";
          ctx.lineWidth = 2 * devicePixelRatio;
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.fillStyle = ctx.strokeStyle;
          ctx.fillText(`${e.kind === "alert_firing" ? "▲" : "▽"} ${e.detail.split(" ")[0]}`, x + 3, u.bbox.top + 12 * devicePixelRatio);
        }
        if (kind === "latency") {
          ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
          ctx.lineWidth = 1.5 * devicePixelRatio;
          for (const stage of (state.stages.get(part) || new Map()).values()) {
            const x0 = Math.max(u.bbox.left, u.valToPos(stage.start_ms / 1000, "x", true));
            const x1 = u.valToPos(stage.steady_end_ms / 1000, "x", true);
            // Objectives with the same bound are one line with every label.
            const bounds = new Map();
            for (const line of stage.lines) {
              const same = bounds.get(line.threshold_us);
              if (same) same.labels.push(line.label);
              else bounds.set(line.threshold_us, { percentile: line.percentile, labels: [line.label] });
            }
            for (const [threshold, line] of bounds) {
              const y = u.valToPos(threshold / 1000, "y", true);
              if (!Number.isFinite(y) || y < u.bbox.top || y > u.bbox.top + u.bbox.height) continue;
              ctx.strokeStyle = line.percentile >= 99 ? "#8250df" : "#bc4c00";
              ctx.beginPath();
              ctx.moveTo(x0, y);
              ctx.lineTo(x1, y);
              ctx.stroke();
              ctx.fillStyle = ctx.strokeStyle;
              ctx.fillText(line.labels.join(" · "), x0 + 6 * devicePixelRatio, y - 4 * devicePixelRatio);
            }
          }
        }
        ctx.restore();
      }],
    },
  };
}

function logLabel(v) {
  if (v === null || v === undefined || v <= 0) return "";
  const mantissa = Math.round(v / 10 ** Math.floor(Math.log10(v) + 1e-9));
  if (![1, 2, 5].includes(mantissa)) return "";
  return v >= 1000 ? `${+(v / 1000).toPrecision(3)} s` : `${+v.toPrecision(3)} ms`;
}

// Every chart spans the part so far, from its start: the three share one time axis.
function xRange(u, min, max) {
  const clock = state.clock.get(charts.part);
  const now = clock ? clock.t_ms / 1000 : 0;
  return [0, Math.max(max || 0, now, 1)];
}

// From the fastest second to the slowest or the highest objective line, whichever is
// higher, with room above.
function latencyRange(u, min, max) {
  let top = max || 1;
  for (const stage of (state.stages.get(charts.part) || new Map()).values()) {
    for (const line of stage.lines) top = Math.max(top, line.threshold_us / 1000);
  }
  const low = Math.max(0.1, Math.min(min || 1, 1));
  return [10 ** Math.floor(Math.log10(low)), 10 ** Math.ceil(Math.log10(top * 1.2))];
}

function width(id) {
  return Math.max(320, document.getElementById(id).clientWidth);
}

function makeCharts(part) {
  for (const k of ["latency", "rate", "server"]) {
    if (charts[k]) charts[k].destroy();
    charts[k] = null;
    document.getElementById(`${k}-chart`).textContent = "";
  }
  charts.part = part;
  const x = { label: "seconds since the part began", value: (u, v) => (v === null ? "–" : `${v} s`) };
  const ms = (u, v) => (v === null || v === undefined ? "–" : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(2)} ms`);
  charts.latency = new uPlot({
    width: width("latency-chart"), height: 300,
    scales: { x: { time: false, range: xRange }, y: { distr: 3, range: latencyRange } },
    series: [x,
      { label: "P50", stroke: "#0969da", width: 1.5, value: ms },
      { label: "P95", stroke: "#bc4c00", width: 2, value: ms },
      { label: "P99", stroke: "#8250df", width: 1.5, value: ms }],
    // Log scale: label 1, 2 and 5 of each decade only (as the reports do), and keep
    // the objectives' lines in view.
    axes: [{}, { values: (u, vals) => vals.map(logLabel), size: 70 }],
    plugins: [overlay("latency")],
  }, [[], [], [], []], document.getElementById("latency-chart"));
  charts.rate = new uPlot({
    width: width("rate-chart"), height: 200,
    scales: { x: { time: false, range: xRange } },
    series: [x,
      { label: "target", stroke: "#8c959f", width: 1.5, dash: [4, 4] },
      { label: "sent (by intended second)", stroke: "#0969da", width: 1.5 },
      { label: "left on time", stroke: "#1a7f37", width: 1 },
      { label: "errors", stroke: "#cf222e", width: 1.5 }],
    axes: [{}, { label: "req/s", size: 70 }],
    plugins: [overlay("rate")],
  }, [[], [], [], [], []], document.getElementById("rate-chart"));
  charts.server = new uPlot({
    width: width("server-chart"), height: 200,
    scales: { x: { time: false, range: xRange }, pct: { range: [0, 100] }, mib: {} },
    series: [x,
      { label: "cache hits %", stroke: "#1a7f37", scale: "pct", width: 1.5, value: (u, v) => (v === null ? "–" : `${v.toFixed(1)} %`) },
      { label: "DB pool in use %", stroke: "#bc4c00", scale: "pct", width: 1.5, value: (u, v) => (v === null ? "–" : `${v.toFixed(1)} %`) },
      { label: "peak RSS MiB", stroke: "#8250df", scale: "mib", width: 1.5, value: (u, v) => (v === null ? "–" : `${v.toFixed(1)} MiB`) },
      { label: "instances up", stroke: "#57606a", scale: "mib", width: 1, dash: [2, 3] }],
    axes: [{}, { scale: "pct", label: "%", size: 50 }, { scale: "mib", side: 1, label: "MiB", size: 60, grid: { show: false } }],
    plugins: [overlay("server")],
  }, [[], [], [], [], []], document.getElementById("server-chart"));
}

function drawCharts(part, seconds) {
  if (charts.part !== part) makeCharts(part);
  const t = seconds.map((s) => s.t_ms / 1000);
  const toMs = (us) => (us === null || us === undefined ? null : Math.max(us, 1) / 1000);
  charts.latency.setData([t, seconds.map((s) => toMs(s.p50_us)), seconds.map((s) => toMs(s.p95_us)), seconds.map((s) => toMs(s.p99_us))]);
  charts.rate.setData([t, seconds.map((s) => s.target), seconds.map((s) => s.sent), seconds.map((s) => s.started), seconds.map((s) => s.errors)]);

  const rounds = new Map();
  for (const f of (state.server.get(part) || new Map()).values()) {
    if (!rounds.has(f.t_ms)) rounds.set(f.t_ms, []);
    rounds.get(f.t_ms).push(f);
  }
  const times = [...rounds.keys()].sort((a, b) => a - b);
  const avg = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  const series = times.map((tm) => {
    const up = rounds.get(tm).filter((f) => f.up);
    const hits = up.map((f) => f.cache_hit_ratio).filter((v) => v !== null && v !== undefined);
    const used = up.reduce((a, f) => a + (f.db_connections_used ?? 0), 0);
    const max = up.reduce((a, f) => a + (f.db_connections_max ?? 0), 0);
    const rss = up.map((f) => f.resident_memory_bytes).filter((v) => v !== null && v !== undefined);
    return [tm / 1000, hits.length ? 100 * avg(hits) : null, max > 0 ? (100 * used) / max : null,
      rss.length ? Math.max(...rss) / 1048576 : null, up.length];
  });
  charts.server.setData([0, 1, 2, 3, 4].map((i) => series.map((r) => r[i])));
  const instances = new Set([...(state.server.get(part) || new Map()).values()].map((f) => f.instance));
  text("server-note", times.length
    ? `${instances.size} instance(s) scraped once a second; cache hits are each interval's, averaged over the instances that answered.`
    : "no server series scraped in this part (read from Prometheus after the run, or not at all)");
}

// ---- panels ----
function drawParts(shown) {
  const nav = document.getElementById("parts");
  nav.textContent = "";
  for (const p of [...state.parts.values()].sort((a, b) => a.part - b.part)) {
    const label = p.state === "running" ? "running" : p.verdict || p.state;
    const button = el("button", { type: "button", "data-part": String(p.part) },
      `${p.part + 1}. ${p.title} `, el("span", { class: `verdict-${p.verdict || ""}` }, label));
    button.setAttribute("aria-pressed", String(p.part === shown));
    button.addEventListener("click", () => { state.chosen = p.part; dirty = true; });
    nav.append(button);
  }
}

function drawProgress(part, seconds) {
  const p = state.parts.get(part);
  const clock = state.clock.get(part);
  const stages = state.stages.get(part) || new Map();
  const stage = clock ? stages.get(clock.stage) : null;
  text("part-title", p.title);
  text("stage", stage ? `${stage.name} (${clock.t_ms < stage.steady_start_ms ? "warm-up" : "steady"})` : "–");
  const elapsed = clock ? clock.t_ms : 0;
  text("elapsed", fmtDuration(elapsed));
  const done = p.state !== "running";
  text("remaining", done ? "done" : `about ${fmtDuration(Math.max(0, p.planned_ms - elapsed))}`);
  text("target-rate", stage ? fmtRate(stage.target_rps) : "–");
  // The last whole second: the one before the newest (which is still filling).
  const last = seconds.length >= 2 ? seconds[seconds.length - 2] : seconds[seconds.length - 1];
  text("achieved-rate", last ? `${last.started} req/s` : "–");
  const share = done ? 1 : p.planned_ms > 0 ? Math.min(1, elapsed / p.planned_ms) : 0;
  document.getElementById("bar-fill").style.width = `${(share * 100).toFixed(1)}%`;
  text("part-note", p.note || "");
  const link = document.getElementById("report-link");
  link.textContent = "";
  if (p.report) {
    link.append("Report: ", el("a", { href: withToken(p.report), id: "report-href" }, p.report.endsWith("index.html") ? "index.html" : "files"));
    if (p.written_to) link.append(` (written to ${p.written_to})`);
    link.hidden = false;
  } else if (p.written_to) {
    link.append(`Written to ${p.written_to}`);
    link.hidden = false;
  } else {
    link.hidden = true;
  }
}

function statusClass(status) {
  if (status.startsWith("holds") || status === "PASS") return "status-holds";
  if (status === "broken" || status === "FAIL") return "status-broken";
  return "status-undecided";
}

function drawVerdicts(part) {
  const body = document.querySelector("#verdicts tbody");
  body.textContent = "";
  const v = state.verdicts.get(part);
  const overall = document.getElementById("overall");
  if (!v) {
    overall.textContent = "no grade yet";
    overall.className = "muted";
    overall.removeAttribute("data-verdict");
    return;
  }
  overall.textContent = v.final ? `Verdict: ${v.verdict}` : `So far (${fmtDuration(v.t_ms)} in): ${v.verdict}`;
  overall.className = `verdict-${v.verdict}`;
  overall.setAttribute("data-verdict", v.verdict);
  overall.setAttribute("data-final", String(v.final));
  let scope = null;
  for (const g of v.grades) {
    if (g.scope !== scope) {
      scope = g.scope;
      body.append(el("tr", { class: "scope" }, el("td", { colSpan: 4 }, scope)));
    }
    const row = el("tr", { class: "grade", "data-scope": g.scope, "data-objective": g.objective, "data-verdict": g.verdict },
      el("td", {}, ""), el("td", {}, g.objective), el("td", { class: "num" }, g.value),
      el("td", { class: `status ${statusClass(g.status)}`, title: g.note }, g.status));
    body.append(row);
  }
}

function drawErrors(part, seconds) {
  const totals = new Map();
  for (const s of seconds) {
    for (const [kind, n] of Object.entries(s.outcomes)) totals.set(kind, (totals.get(kind) || 0) + n);
  }
  const last = seconds.length >= 2 ? seconds[seconds.length - 2] : seconds[seconds.length - 1];
  const body = document.querySelector("#errors tbody");
  body.textContent = "";
  const failing = [...totals.entries()].filter(([kind]) => !/^2\d\d$/.test(kind)).sort((a, b) => b[1] - a[1]);
  if (!failing.length) {
    body.append(el("tr", {}, el("td", { colSpan: 4, class: "muted" }, "none: every answer so far was 2xx")));
  }
  for (const [kind, n] of failing) {
    const isError = /^5\d\d$/.test(kind) || kind === "429" || !/^\d+$/.test(kind);
    body.append(el("tr", { "data-kind": kind }, el("td", {}, kind), el("td", {}, isError ? "yes" : "no (client's)"),
      el("td", { class: "num" }, n), el("td", { class: "num" }, last ? last.outcomes[kind] || 0 : 0)));
  }
  const list = document.getElementById("events");
  list.textContent = "";
  const events = [...(state.events.get(part) || new Map()).values()].sort((a, b) => a.t_ms - b.t_ms);
  if (!events.length) list.append(el("li", { class: "muted" }, "none"));
  for (const e of events) {
    const span = e.end_ms !== null && e.end_ms !== undefined ? `–${(e.end_ms / 1000).toFixed(1)} s` : e.ongoing ? "– now" : "";
    list.append(el("li", { "data-kind": e.kind }, `${(e.t_ms / 1000).toFixed(1)} s${span} ${e.kind.replace("_", " ")}: ${e.detail}`));
  }
}

const MAX_ROWS = 600;
function drawSeconds(part, seconds) {
  const stages = state.stages.get(part) || new Map();
  const body = document.querySelector("#seconds tbody");
  body.textContent = "";
  for (const s of seconds.slice(-MAX_ROWS).reverse()) {
    const stage = stages.get(s.stage);
    body.append(el("tr", { class: "second", "data-part": String(part), "data-stage": String(s.stage), "data-t-ms": String(s.t_ms) },
      el("td", { class: "num" }, `${(s.t_ms / 1000).toFixed(1)} s`),
      el("td", {}, `${stage ? stage.name : s.stage}${s.in_steady ? "" : " (warm-up)"}`),
      el("td", { class: "num c-target" }, s.target),
      el("td", { class: "num c-sent" }, s.sent),
      el("td", { class: "num c-started" }, s.started),
      el("td", { class: "num c-p50" }, fmtUs(s.p50_us)),
      el("td", { class: "num c-p95" }, fmtUs(s.p95_us)),
      el("td", { class: "num c-p99" }, fmtUs(s.p99_us)),
      el("td", { class: "num c-max" }, fmtUs(s.max_us)),
      el("td", { class: "num c-errors" }, s.errors)));
  }
}

function render() {
  if (!dirty) return;
  dirty = false;
  if (state.run) {
    text("title", state.run.title);
    text("started", `started ${state.run.started_at}`);
    document.title = `${state.run.title} · aimate live`;
  }
  const part = shownPart();
  drawParts(part);
  if (part === null) return;
  const seconds = sortedSeconds(part);
  drawProgress(part, seconds);
  drawCharts(part, seconds);
  drawVerdicts(part);
  drawErrors(part, seconds);
  drawSeconds(part, seconds);
  document.body.setAttribute("data-frames", String(framesSeen));
}

// ---- the stream ----
let framesSeen = 0;
const connection = document.getElementById("connection");
function setConnection(kind, label) {
  connection.setAttribute("data-state", kind);
  connection.textContent = label;
}

const source = new EventSource(withToken("events"));
source.onopen = () => setConnection("live", "live");
source.onerror = () => {
  if (state.run && state.run.ended) {
    source.close();
    setConnection("ended", "the run is over");
  } else {
    setConnection("reconnecting", "reconnecting…");
  }
};
for (const [name, handle] of Object.entries(handlers)) {
  source.addEventListener(name, (message) => {
    try {
      handle(JSON.parse(message.data));
      framesSeen += 1;
      dirty = true;
    } catch (error) {
      console.error(`bad ${name} frame`, error);
    }
  });
}
setInterval(render, 500);
window.addEventListener("resize", () => {
  for (const k of ["latency", "rate", "server"]) {
    if (charts[k]) charts[k].setSize({ width: width(`${k}-chart`), height: charts[k].height });
  }
});
