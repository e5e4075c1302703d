// alignkit board: polls the JSON API every 2 s and appends new metrics points to the charts without
// reloading. Plain DOM + SVG; every text from a file goes through textContent, never innerHTML.
"use strict";

const POLL_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const runs = new Map(); // id -> {id, next, points, errors, color, checked, files, config, evals}
// ?runs=a,b checks only those runs at first (a link to a comparison); without it every run is checked.
const picked = new URLSearchParams(location.search).get("runs");
const initial = picked === null ? null : new Set(picked.split(",").filter(s => s));

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function apiRun(id, what, query) {
  // "." (a run at the root itself) would be cleaned out of the path; "%2E" reaches the server as ".".
  return "api/runs/" + encodeURIComponent(id).replace(/\./g, "%2E") + "/" + what + (query || "");
}

async function getJSON(url) {
  const r = await fetch(url, {cache: "no-store"});
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || (url + ": HTTP " + r.status));
  return body;
}

// chart draws one SVG: series is [{name, color, xs, ys}], each a polyline with data-points = its
// number of finite points.
function chart(title, series, attrs) {
  const W = 360, H = 200, L = 48, R = 8, T = 8, B = 22;
  const box = el("div", Object.assign({class: "chart"}, attrs || {}));
  box.appendChild(el("h3", {}, title));
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const s of series) {
    s.xs.forEach((x, i) => {
      const y = s.ys[i];
      if (!Number.isFinite(x) || !Number.isFinite(y)) return;
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
    });
  }
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R);
  const sy = y => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  const svg = svgEl("svg", {width: W, height: H, viewBox: `0 0 ${W} ${H}`});
  svg.appendChild(svgEl("rect", {x: L, y: T, width: W - L - R, height: H - T - B, fill: "none", stroke: "#ccc"}));
  if (Number.isFinite(y0 + y1 + x0 + x1)) {
    for (const [v, y] of [[y1, T + 10], [y0, H - B]]) {
      const t = svgEl("text", {x: L - 4, y: y, "text-anchor": "end", "font-size": 10});
      t.textContent = +v.toPrecision(4);
      svg.appendChild(t);
    }
    for (const [v, x, a] of [[x0, L, "start"], [x1, W - R, "end"]]) {
      const t = svgEl("text", {x: x, y: H - 6, "text-anchor": a, "font-size": 10});
      t.textContent = +v.toPrecision(4);
      svg.appendChild(t);
    }
  }
  for (const s of series) {
    const pts = [];
    s.xs.forEach((x, i) => {
      const y = s.ys[i];
      if (Number.isFinite(x) && Number.isFinite(y)) pts.push(sx(x).toFixed(1) + "," + sy(y).toFixed(1));
    });
    const line = svgEl("polyline", {class: "series", "data-run": s.name, "data-points": pts.length,
      points: pts.join(" "), fill: "none", stroke: s.color, "stroke-width": 1.5});
    const tip = svgEl("title");
    tip.textContent = s.name;
    line.appendChild(tip);
    svg.appendChild(line);
    if (pts.length === 1) {
      const [cx, cy] = pts[0].split(",");
      svg.appendChild(svgEl("circle", {cx: cx, cy: cy, r: 2, fill: s.color}));
    }
  }
  box.appendChild(svg);
  return box;
}

function renderRuns() {
  const ul = document.getElementById("runs");
  ul.replaceChildren();
  for (const run of runs.values()) {
    const li = el("li", {class: "run", "data-run": run.id, "data-points": run.points.length});
    const cb = el("input", {type: "checkbox", id: "cb-" + run.id});
    cb.checked = run.checked;
    cb.addEventListener("change", () => { run.checked = cb.checked; render(); });
    const label = el("label", {for: "cb-" + run.id});
    label.appendChild(el("span", {class: "swatch", style: "background:" + run.color}));
    label.appendChild(document.createTextNode(run.id + " (" + run.points.length + ")"));
    li.append(cb, label);
    if (run.errors.length) {
      const errs = el("ul", {class: "errors"});
      for (const e of run.errors) errs.appendChild(el("li", {class: "error"}, e));
      li.appendChild(errs);
    }
    ul.appendChild(li);
  }
}

function renderCharts() {
  const div = document.getElementById("charts");
  const shown = [...runs.values()].filter(r => r.checked);
  const keys = new Set();
  for (const r of shown) for (const p of r.points) for (const k of Object.keys(p.values)) keys.add(k);
  keys.delete("step");
  div.replaceChildren();
  for (const key of [...keys].sort()) {
    const series = shown.map(r => {
      const have = r.points.filter(p => key in p.values);
      return {name: r.id, color: r.color,
        xs: have.map(p => p.values.step ?? p.line),
        ys: have.map(p => p.values[key] === null ? NaN : p.values[key])};
    }).filter(s => s.xs.length);
    div.appendChild(chart(key, series, {"data-metric": key}));
  }
}

function renderGAtt(box, doc, run) {
  const models = doc.models || [];
  const table = el("table", {class: "gatt"});
  const head = el("tr");
  head.appendChild(el("th", {}, "turn"));
  for (const m of models) head.appendChild(el("th", {}, m.label + " % adherent"));
  table.appendChild(head);
  const turns = new Set();
  for (const m of models) for (const t of m.turns || []) turns.add(t.turn);
  for (const turn of [...turns].sort((a, b) => a - b)) {
    const tr = el("tr");
    tr.appendChild(el("td", {}, turn));
    for (const m of models) {
      const t = (m.turns || []).find(t => t.turn === turn);
      tr.appendChild(el("td", {}, t && t.percent !== null ? t.percent.toFixed(1) + " (" + t.adherent + "/" + t.checked + ")" : "—"));
    }
    table.appendChild(tr);
  }
  box.appendChild(table);
  box.appendChild(chart("GAtt adherence by turn (%)", models.map((m, i) => ({
    name: m.label, color: COLORS[i % COLORS.length],
    xs: (m.turns || []).map(t => t.turn), ys: (m.turns || []).map(t => t.percent === null ? NaN : t.percent)})),
    {"data-eval": "gatt_eval.json", "data-run": run.id}));
}

function renderRewardVsK(box, doc, run) {
  const curves = Array.isArray(doc) ? doc : [doc];
  const series = [];
  curves.forEach((c, i) => {
    series.push({name: "T=" + c.temperature + " expected max", color: COLORS[i % COLORS.length], xs: c.n || [], ys: c.expected_max || []});
    series.push({name: "T=" + c.temperature + " median", color: COLORS[(i + 4) % COLORS.length], xs: c.n || [], ys: c.median || []});
  });
  box.appendChild(chart("reward vs K", series, {"data-eval": "reward_vs_k.json", "data-run": run.id}));
}

// renderTables draws each array of flat objects in doc (the doc itself, or a top-level key such as
// rlhf's summary.json "rounds") as a table, a column per key.
function renderTables(box, doc) {
  const arrays = Array.isArray(doc) ? [["", doc]] : Object.entries(doc || {}).filter(([, v]) => Array.isArray(v));
  for (const [name, rows] of arrays) {
    if (!rows.length || !rows.every(r => r && typeof r === "object" && !Array.isArray(r))) continue;
    const cols = [...new Set(rows.flatMap(r => Object.keys(r).filter(k => typeof r[k] !== "object" || r[k] === null)))];
    const table = el("table", {class: "rows", "data-key": name});
    const head = el("tr");
    for (const c of cols) head.appendChild(el("th", {}, c));
    table.appendChild(head);
    for (const r of rows) {
      const tr = el("tr");
      for (const c of cols) tr.appendChild(el("td", {}, r[c] === undefined || r[c] === null ? "—" : String(r[c])));
      table.appendChild(tr);
    }
    if (name) box.appendChild(el("div", {}, name));
    box.appendChild(table);
  }
}

function renderEvals() {
  const div = document.getElementById("evals");
  div.replaceChildren();
  for (const run of runs.values()) {
    if (!run.checked || !run.evals) continue;
    const names = Object.keys(run.evals.evals).sort();
    if (!names.length && !run.evals.errors.length) continue;
    const box = el("div", {class: "run-evals", "data-run": run.id});
    box.appendChild(el("h3", {}, run.id));
    for (const e of run.evals.errors) box.appendChild(el("div", {class: "errors"}, e));
    for (const name of names) {
      const doc = run.evals.evals[name];
      const sub = el("div", {class: "eval", "data-file": name});
      sub.appendChild(el("h4", {}, name));
      try {
        if (name === "gatt_eval.json") renderGAtt(sub, doc, run);
        else if (name === "reward_vs_k.json") renderRewardVsK(sub, doc, run);
        else renderTables(sub, doc);
      } catch (err) {
        sub.appendChild(el("div", {class: "errors"}, name + ": " + err.message));
      }
      const det = el("details");
      det.appendChild(el("summary", {}, "JSON"));
      det.appendChild(el("pre", {}, JSON.stringify(doc, null, 2)));
      sub.appendChild(det);
      box.appendChild(sub);
    }
    div.appendChild(box);
  }
}

function renderConfigs() {
  const div = document.getElementById("configs");
  div.replaceChildren();
  const shown = [...runs.values()].filter(r => r.checked && r.config);
  const keys = new Set();
  for (const r of shown) for (const k of Object.keys(r.config)) keys.add(k);
  if (!keys.size) return;
  // One table, a column per run, so that the runs' differences are side by side.
  const table = el("table", {class: "configs"});
  const head = el("tr");
  head.appendChild(el("th", {}, "key"));
  for (const r of shown) head.appendChild(el("th", {}, r.id));
  table.appendChild(head);
  for (const k of [...keys].sort()) {
    const vals = shown.map(r => k in r.config ? JSON.stringify(r.config[k]) : "");
    const tr = el("tr", {"data-key": k});
    if (new Set(vals).size > 1) tr.style.background = "#fff4d0";
    tr.appendChild(el("td", {}, k));
    for (const v of vals) tr.appendChild(el("td", {}, v));
    table.appendChild(tr);
  }
  div.appendChild(table);
}

function render() {
  renderRuns();
  renderCharts();
  renderEvals();
  renderConfigs();
}

async function pollRun(run, filesChanged) {
  const m = await getJSON(apiRun(run.id, "metrics", "?from=" + run.next));
  run.points.push(...m.points);
  for (const e of m.errors) run.errors.push(e.error);
  run.next = m.next;
  if (filesChanged) {
    if (run.files.includes("run_config.json")) {
      try { run.config = (await getJSON(apiRun(run.id, "config"))).config; }
      catch (err) { run.errors.push(err.message); }
    }
    run.evals = await getJSON(apiRun(run.id, "evals"));
  }
}

async function poll() {
  const status = document.getElementById("status");
  try {
    const list = await getJSON("api/runs");
    document.getElementById("root").textContent = list.root;
    const work = [];
    for (const r of list.runs) {
      let run = runs.get(r.id);
      if (!run) {
        run = {id: r.id, next: 0, points: [], errors: [], color: COLORS[runs.size % COLORS.length],
          checked: initial === null || initial.has(r.id), files: [], config: null, evals: null};
        runs.set(r.id, run);
      }
      const changed = r.files.join(",") !== run.files.join(",");
      run.files = r.files;
      work.push(pollRun(run, changed).catch(err => { run.errors.push(err.message); }));
    }
    await Promise.all(work);
    render();
    status.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    status.textContent = "error: " + err.message;
  }
  // The history of point counts per poll shows, in one page's DOM, that the curves grew without a
  // reload (a reload would start a new, empty history).
  const b = document.body;
  const entry = [...runs.values()].map(r => r.id + ":" + r.points.length).join(",");
  b.dataset.history = b.dataset.history ? b.dataset.history + ";" + entry : entry;
  b.dataset.polls = String(+b.dataset.polls + 1);
  setTimeout(poll, POLL_MS);
}

poll();
