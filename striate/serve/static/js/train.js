// The Train view: choose the data and the model, start a run on the server, steer it (pause, resume,
// stop, new rate / momentum / weight decay / batch size) and watch it learn: the loss of every step,
// the epochs' accuracy, the first layer's filters, a probe image's activations, the confusion matrix
// and each layer's weight, gradient and update norms. Polls the run's snapshot every POLL_MS.
import { $, getJSON, postJSON, escapeHtml, fmtNum } from "./common.js";

const POLL_MS = 500;
const MAX_STEPS = 20000;     // the latest steps drawn (as many as the server keeps)
const KNOBS = ["lr", "momentum", "weight_decay", "batch_size"];
const RACE_COLOURS = ["#2f6fde", "#e8590c", "#1f9d62", "#9c36b5"];
const ACTIVE = new Set(["running", "paused", "ready"]);

let focus = null;            // the run shown in detail: {id, steps: [[step, loss]], snap}
let race = null;             // {ids, runs: {id: {steps, snap}}}
let timer = null;
let polls = 0;

// ------------------------------------------------------------------------------------------ colours
function lerp(a, b, t) { return a + (b - a) * t; }
function ramp(stops, t) {
  t = Math.min(1, Math.max(0, t));
  const x = t * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(x)), f = x - i;
  return stops[i].map((c, k) => Math.round(lerp(c, stops[i + 1][k], f)));
}
const SEQ = [[12, 8, 38], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]];
const DIV = [[33, 102, 172], [146, 197, 222], [247, 247, 247], [244, 165, 130], [178, 24, 43]];
const BLUES = [[247, 251, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
const rgb = (c) => `rgb(${c[0]},${c[1]},${c[2]})`;

// Paint a rows x cols block of values at (x, y), each cell `cell` px, coloured by colour(value).
function paintGrid(g, values, offset, rows, cols, x, y, cell, colour) {
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) {
      g.fillStyle = rgb(colour(values[offset + r * cols + c]));
      g.fillRect(x + c * cell, y + r * cell, Math.ceil(cell), Math.ceil(cell));
    }
}

// ------------------------------------------------------------------------------------------ charts
function niceTicks(lo, hi, n = 5) {
  const span = hi - lo || 1, step0 = span / n, mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= n) || 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) out.push(+v.toPrecision(12));
  return out;
}

// series: [{points: [[x, y]], colour, width, dots, shape}]; marks: [{x, label}] (vertical dashed lines)
// logY: the y values are drawn on a log10 axis (ticks at powers of ten); values <= 0 are left out.
function lineChart(canvas, series, { xLabel = "", yMin = null, yMax = null, marks = [], xMax = null, logY = false, xInteger = false } = {}) {
  const g = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  const L = 44, R = 10, T = 10, B = 28;
  g.clearRect(0, 0, W, H);
  g.fillStyle = "#fff"; g.fillRect(0, 0, W, H);
  if (logY) series = series.map((s) => ({ ...s, points: s.points.filter((p) => p[1] > 0).map((p) => [p[0], Math.log10(p[1])]) }));
  const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p[1]));
  g.font = "11px system-ui, sans-serif";
  if (!all.length) {
    g.fillStyle = "#8a93a6"; g.fillText("waiting for the first steps…", L + 8, T + 20);
    return;
  }
  let x0 = Math.min(...all.map((p) => p[0])), x1 = xMax ?? Math.max(...all.map((p) => p[0]));
  if (x1 <= x0) x1 = x0 + 1;
  let y0 = yMin ?? Math.min(...all.map((p) => p[1])), y1 = yMax ?? Math.max(...all.map((p) => p[1]));
  if (y1 <= y0) { y1 = y0 + 1e-3; y0 -= 1e-3; }
  const pad = (y1 - y0) * 0.05; if (yMin === null) y0 -= pad; if (yMax === null) y1 += pad;
  const sx = (x) => L + (x - x0) / (x1 - x0) * (W - L - R), sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  g.strokeStyle = "#e2e5eb"; g.fillStyle = "#6b7385"; g.lineWidth = 1;
  const yTicks = logY ? niceTicks(y0, y1).filter((v) => Number.isInteger(v)) : niceTicks(y0, y1);
  for (const v of yTicks) {
    g.beginPath(); g.moveTo(L, sy(v) + .5); g.lineTo(W - R, sy(v) + .5); g.stroke();
    g.fillText(logY ? `1e${v}` : fmtNum(v), 4, sy(v) + 4);
  }
  for (const v of niceTicks(x0, x1, 6).filter((t) => !xInteger || Number.isInteger(t))) {
    g.fillText(String(v), sx(v) - 6, H - 12);
  }
  g.fillText(xLabel, W - R - g.measureText(xLabel).width, H - 1);
  g.setLineDash([4, 3]); g.strokeStyle = "#c77d00";
  for (const m of marks) {
    if (m.x < x0 || m.x > x1) continue;
    g.beginPath(); g.moveTo(sx(m.x) + .5, T); g.lineTo(sx(m.x) + .5, H - B); g.stroke();
    g.fillStyle = "#a06a00"; g.fillText(m.label, Math.min(sx(m.x) + 3, W - R - g.measureText(m.label).width), T + 10);
  }
  g.setLineDash([]);
  for (const s of series) {
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    g.strokeStyle = s.colour; g.fillStyle = s.colour; g.lineWidth = s.width || 1.5;
    if (s.line !== false && pts.length > 1) {
      g.beginPath();
      pts.forEach((p, i) => (i ? g.lineTo(sx(p[0]), sy(p[1])) : g.moveTo(sx(p[0]), sy(p[1]))));
      g.stroke();
    }
    if (s.dots) for (const p of pts) {
      g.beginPath();
      if (s.shape === "diamond") {
        const x = sx(p[0]), y = sy(p[1]);
        g.moveTo(x, y - 5); g.lineTo(x + 5, y); g.lineTo(x, y + 5); g.lineTo(x - 5, y); g.closePath();
      } else g.arc(sx(p[0]), sy(p[1]), 3.5, 0, 2 * Math.PI);
      g.fill();
    }
  }
}

// The loss of every step is noisy: show it faint and its moving average strong.
function smooth(points, k = 15) {
  const out = []; let sum = 0;
  points.forEach((p, i) => {
    sum += p[1]; if (i >= k) sum -= points[i - k][1];
    out.push([p[0], sum / Math.min(i + 1, k)]);
  });
  return out;
}

function histogram(canvas, h, colour) {
  const g = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  g.clearRect(0, 0, W, H);
  const top = Math.max(...h.counts, 1), bw = W / h.counts.length;
  g.fillStyle = colour;
  h.counts.forEach((c, i) => { const bh = c / top * (H - 2); g.fillRect(i * bw + .5, H - bh, bw - 1, bh); });
  if (h.lo < 0 && h.hi > 0) {   // where zero falls
    const x = (-h.lo) / (h.hi - h.lo) * W;
    g.fillStyle = "#1d2330"; g.fillRect(x, 0, 1, H);
  }
}

// ------------------------------------------------------------------------------------------ pictures
function drawFilters(f) {
  const canvas = $("filters"), g = canvas.getContext("2d");
  g.fillStyle = "#fff"; g.fillRect(0, 0, canvas.width, canvas.height);
  if (!f) { $("filters-note").textContent = "(the model has no convolution)"; return; }
  const [n, kh, kw] = f.shape, m = Math.max(Math.abs(f.lo), Math.abs(f.hi)) || 1;
  const perRow = Math.min(n, 8), rows = Math.ceil(n / perRow);
  const cell = Math.max(2, Math.floor(Math.min((canvas.width - 4 * perRow) / (perRow * kw), 48 / kh)));
  const need = rows * (kh * cell + 4) + 4;
  if (canvas.height !== need) { canvas.height = need; }
  for (let i = 0; i < n; i++) {
    const x = (i % perRow) * (kw * cell + 4), y = Math.floor(i / perRow) * (kh * cell + 4);
    paintGrid(g, f.values, i * kh * kw, kh, kw, x, y, cell, (v) => ramp(DIV, 0.5 + v / (2 * m)));
  }
  $("filters-note").textContent = `${n} of ${kh}×${kw}, ±${fmtNum(m)}`;
}

function drawProbe(p) {
  const canvas = $("probe"), g = canvas.getContext("2d");
  if (!p) return;
  const rows = 1 + p.maps.length, rowH = 56, need = rows * rowH + 4;
  if (canvas.height !== need) canvas.height = need;
  g.fillStyle = "#fff"; g.fillRect(0, 0, canvas.width, canvas.height);
  g.font = "11px system-ui, sans-serif";
  const [ih, iw] = p.image.shape, lo = Math.min(...p.image.values), hi = Math.max(...p.image.values);
  const icell = Math.floor(48 / Math.max(ih, iw));
  paintGrid(g, p.image.values, 0, ih, iw, 0, 2, icell, (v) => ramp(SEQ, (v - lo) / (hi - lo || 1)));
  const best = p.probabilities.indexOf(Math.max(...p.probabilities));
  g.fillStyle = "#1d2330";
  g.fillText(`input (label ${p.label}); the network says ${best} with ${(100 * p.probabilities[best]).toFixed(0)}%`,
    iw * icell + 10, 28);
  p.maps.forEach((m, r) => {
    const [c, h, w] = m.shape, cell = Math.max(1, Math.floor(46 / Math.max(h, w))), y = (r + 1) * rowH;
    g.fillStyle = "#6b7385"; g.fillText(m.name, 0, y + 26);
    const span = (m.hi - m.lo) || 1;
    for (let k = 0; k < c; k++)
      paintGrid(g, m.values, k * h * w, h, w, 96 + k * (w * cell + 6), y, cell, (v) => ramp(SEQ, (v - m.lo) / span));
  });
  $("probe-note").textContent = "(maps of the layers, up to 8 channels each)";
}

function drawConfusion(cmInfo, names) {
  const canvas = $("confusion"), g = canvas.getContext("2d");
  g.fillStyle = "#fff"; g.fillRect(0, 0, canvas.width, canvas.height);
  if (!cmInfo || !cmInfo.matrix) return;
  const cm = cmInfo.matrix, k = cm.length, L = 22, cell = Math.floor((canvas.width - L) / k);
  g.font = `${Math.min(11, cell * .45)}px system-ui, sans-serif`;
  g.textAlign = "center"; g.textBaseline = "middle";
  cm.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    row.forEach((v, j) => {
      const t = v / total, c = ramp(BLUES, t);
      g.fillStyle = rgb(c); g.fillRect(L + j * cell, L + i * cell, cell - 1, cell - 1);
      if (v) { g.fillStyle = t > .5 ? "#fff" : "#1d2330"; g.fillText(String(v), L + j * cell + cell / 2, L + i * cell + cell / 2); }
    });
    g.fillStyle = "#6b7385";
    g.fillText(String(names[i] ?? i).slice(0, 3), L / 2, L + i * cell + cell / 2);
    g.fillText(String(names[i] ?? i).slice(0, 3), L + i * cell + cell / 2, L / 2);
  });
  g.textAlign = "start"; g.textBaseline = "alphabetic";
  $("cm-note").textContent = `(validation after epoch ${cmInfo.epoch}; rows true, columns predicted)`;
}

function drawLayers(layers) {
  const body = $("layers");
  if (body.children.length !== layers.length) {
    body.innerHTML = layers.map((l, i) => `<tr><td class="mono">${escapeHtml(l.name)}</td><td class="mono">${l.shape.join("×")}</td>
      <td id="ln-w-${i}"></td><td id="ln-g-${i}"></td><td id="ln-u-${i}"></td><td id="ln-r-${i}"></td>
      <td><canvas id="lh-w-${i}" width="120" height="30"></canvas></td><td><canvas id="lh-g-${i}" width="120" height="30"></canvas></td></tr>`).join("");
  }
  layers.forEach((l, i) => {
    $(`ln-w-${i}`).textContent = fmtNum(l.weight_norm);
    $(`ln-g-${i}`).textContent = fmtNum(l.grad_norm);
    $(`ln-u-${i}`).textContent = fmtNum(l.update_norm);
    $(`ln-r-${i}`).textContent = l.update_ratio ? l.update_ratio.toExponential(1) : "–";
    histogram($(`lh-w-${i}`), l.weight_hist, "#2f6fde");
    histogram($(`lh-g-${i}`), l.grad_hist, "#e8590c");
  });
}

// Gradient flow: each weight tensor's gradient norm in forward order (log axis), now and at the first step.
function drawFlow(layers, start) {
  const now = layers.map((l, i) => [i + 1, l.grad_norm]);
  const series = [{ points: now, colour: "#e8590c", width: 2, dots: true }];
  if (start && start.grad_norm.length === layers.length)
    series.unshift({ points: start.grad_norm.map((v, i) => [i + 1, v]), colour: "#8a93a6", width: 1.5, dots: true, shape: "diamond" });
  lineChart($("flow-chart"), series, { xLabel: "layer (forward order)", logY: true, xInteger: true });
  $("flow-note").textContent = start ? `(grey: step ${start.step}; orange: now)` : "";
}

// ------------------------------------------------------------------------------------------ the run
function epochPoints(snap, key, steps) {
  const h = snap.history[key] || [];
  return h.map((v, i) => [steps ? snap.epoch_steps[i] : i + 1, v]).filter((p) => p[0] !== null && p[0] !== undefined);
}

function render() {
  if (!focus || !focus.snap) return;
  const s = focus.snap;
  $("run-label").textContent = `${s.label} · ${s.settings.model} · ${s.settings.dataset}`;
  const status = $("status");
  status.textContent = s.status + (s.error ? `: ${s.error}` : "");
  status.dataset.status = s.status;
  $("progress").textContent = `epoch ${Math.min(s.epoch + 1, s.epochs)}/${s.epochs} · step ${s.step}` +
    (s.test ? ` · test accuracy ${(100 * s.test.accuracy).toFixed(1)}%` : "");
  $("pause").disabled = s.status !== "running";
  $("resume").disabled = s.status !== "paused";
  $("stop").disabled = !["running", "paused"].includes(s.status);
  $("apply").disabled = !["running", "paused"].includes(s.status);
  const marks = s.changes.map((c) => ({ x: c.step, label: `${c.setting} ${fmtNum(c.new)}` }));
  lineChart($("loss-chart"), [
    { points: focus.steps, colour: "rgba(47,111,222,0.25)", width: 1 },
    { points: smooth(focus.steps), colour: "#2f6fde", width: 2 },
    { points: epochPoints(s, "loss", true), colour: "#2f6fde", line: false, dots: true },
    { points: epochPoints(s, "val_loss", true), colour: "#e8590c", line: false, dots: true, shape: "diamond" },
  ], { xLabel: "step", marks, yMin: 0 });
  lineChart($("acc-chart"), [
    { points: epochPoints(s, "acc"), colour: "#2f6fde", dots: true },
    { points: epochPoints(s, "val_acc"), colour: "#e8590c", dots: true, shape: "diamond" },
  ], { xLabel: "epoch", yMin: 0, yMax: 1, xMax: s.epochs });
  $("changes").innerHTML = s.changes.map((c) => `<li>step <b>${c.step}</b>: ${escapeHtml(c.setting)} ${fmtNum(c.old)} → ${fmtNum(c.new)}` +
    (c.note ? ` <span class="dim">(${escapeHtml(c.note)})</span>` : "") + "</li>").join("") || '<li class="dim">none yet</li>';
  if (s.filters !== undefined) drawFilters(s.filters);
  if (s.probe) drawProbe(s.probe);
  drawConfusion(s.confusion, s.class_names);
  if (s.layers) { drawLayers(s.layers); drawFlow(s.layers, s.flow_start); }
  document.body.dataset.steps = String(s.step);
  document.body.dataset.status = s.status;
  document.body.dataset.changes = String(s.changes.length);
}

function renderRace() {
  if (!race) return;
  $("race-card").hidden = false;
  const entries = race.ids.map((id, i) => ({ id, colour: RACE_COLOURS[i % RACE_COLOURS.length], ...race.runs[id] }))
    .filter((e) => e.snap);
  lineChart($("race-loss"), entries.map((e) => ({ points: smooth(e.steps), colour: e.colour, width: 2 })), { xLabel: "step", yMin: 0 });
  lineChart($("race-acc"), entries.map((e) => ({ points: epochPoints(e.snap, "val_acc"), colour: e.colour, dots: true })),
    { xLabel: "epoch", yMin: 0, yMax: 1, xMax: Math.max(...entries.map((e) => e.snap.epochs)) });
  $("race-legend").innerHTML = entries.map((e) => {
    const s = e.snap, va = (s.history.val_acc || []).slice(-1)[0];
    return `<span><span class="sw" style="background:${e.colour}"></span><b>${escapeHtml(s.label)}</b> lr ${fmtNum(s.settings.lr)}` +
      ` · ${s.status} · step ${s.step}${va !== undefined ? ` · val acc ${(100 * va).toFixed(1)}%` : ""}</span>`;
  }).join("");
}

async function pull(entry, id, lite) {
  const last = entry.steps.length ? entry.steps[entry.steps.length - 1][0] : 0;
  const snap = await getJSON(`/api/train/runs/${id}`, lite ? { since: last, lite: 1 } : { since: last });
  entry.steps.push(...snap.steps);
  if (entry.steps.length > MAX_STEPS) entry.steps.splice(0, entry.steps.length - MAX_STEPS);
  entry.snap = snap;
  return snap;
}

async function poll() {
  timer = null;
  let active = false;
  try {
    if (focus) active = ACTIVE.has((await pull(focus, focus.id, false)).status);
    if (race) for (const id of race.ids) {
      const entry = id === focus?.id ? focus : race.runs[id];
      if (id === focus?.id) { race.runs[id] = focus; continue; }
      if (!entry.snap || ACTIVE.has(entry.snap.status)) active = ACTIVE.has((await pull(entry, id, true)).status) || active;
    }
    $("live-error").hidden = true;
  } catch (e) {
    showError("live-error", e.message);
    active = true;
  }
  polls += 1;
  document.body.dataset.polls = String(polls);
  render();
  renderRace();
  if (active) timer = setTimeout(poll, POLL_MS);
  else loadOptions(false);
}

function follow(id, raceIds = null) {
  focus = { id, steps: [], snap: null };
  race = raceIds ? { ids: raceIds, runs: Object.fromEntries(raceIds.map((r) => [r, { steps: [], snap: null }])) } : null;
  $("race-card").hidden = !race;
  $("layers").innerHTML = "";
  if (timer) clearTimeout(timer);
  poll().then(() => syncKnobs(true));
}

// ------------------------------------------------------------------------------------------ the form
function showError(where, message) {
  const el = $(where);
  el.textContent = message;
  el.hidden = !message;
}

function settings() {
  const num = (id) => { const v = $(id).value; return v === "" ? undefined : Number(v); };
  return {
    dataset: $("dataset").value, model: $("model").value.trim(), optimizer: $("optimizer").value,
    epochs: num("epochs"), seed: num("seed"), lr: num("k-lr"), momentum: num("k-momentum"),
    weight_decay: num("k-weight_decay"), batch_size: num("k-batch_size"),
  };
}

function syncKnobs(force) {
  if (!focus?.snap) return;
  for (const k of KNOBS) if (force || document.activeElement !== $(`k-${k}`)) $(`k-${k}`).value = focus.snap.settings[k];
}

async function checkModel() {
  showError("setup-error", "");
  try {
    const r = await postJSON("/api/train/check", { dataset: $("dataset").value, model: $("model").value.trim() });
    $("summary").textContent = r.summary;
    $("summary").hidden = false;
    return true;
  } catch (e) {
    $("summary").hidden = true;
    showError("setup-error", e.message);
    return false;
  }
}

async function start() {
  showError("setup-error", "");
  try {
    if (!(await checkModel())) return;
    const r = await postJSON("/api/train/start", settings());
    follow(r.id);
  } catch (e) { showError("setup-error", e.message); }
}

async function startRace() {
  showError("setup-error", "");
  try {
    if (!(await checkModel())) return;
    const s = settings();
    const r = await postJSON("/api/train/race", { dataset: s.dataset, model: s.model, epochs: s.epochs, seed: s.seed,
      batch_size: s.batch_size, weight_decay: s.weight_decay });
    follow(r.runs[0], r.runs);
  } catch (e) { showError("setup-error", e.message); }
}

async function control(action, doc) {
  if (!focus) return;
  try {
    await postJSON(`/api/train/runs/${focus.id}/${action}`, doc || {});
    $("live-error").hidden = true;
    if (!timer) poll();
  } catch (e) { showError("live-error", e.message); }
}

function applyKnobs() {
  const changes = {};
  for (const k of KNOBS) {
    const v = $(`k-${k}`).value;
    if (v !== "" && Number(v) !== focus.snap.settings[k]) changes[k] = Number(v);
  }
  if (Object.keys(changes).length) control("set", changes);
}

async function loadOptions(fillForm) {
  const o = await getJSON("/api/train/options");
  if (fillForm) {
    $("dataset").innerHTML = o.datasets.map((d) => `<option value="${escapeHtml(d.name)}">${escapeHtml(d.title)}</option>`).join("");
    const zoo = [...new Set(Object.values(o.models).flat())];
    $("zoo").innerHTML = [o.defaults.model, ...zoo].map((m) => `<option value="${escapeHtml(m)}">`).join("");
    $("model").value = o.defaults.model;
    $("optimizer").value = o.defaults.optimizer;
    for (const k of ["epochs", "seed"]) $(k).value = o.defaults[k];
    for (const k of KNOBS) $(`k-${k}`).value = o.defaults[k];
  }
  $("unfinished").hidden = !o.unfinished.length;
  $("unfinished-list").innerHTML = o.unfinished.map((u, i) =>
    `<li><span title="${escapeHtml(u.path)}">${escapeHtml(u.name)} — ${escapeHtml(u.model)} on ${escapeHtml(u.dataset)}, ` +
    `${escapeHtml(u.optimizer)}, epoch ${u.epoch}/${u.epochs}</span><button type="button" data-resume="${i}">Resume</button></li>`).join("");
  $("unfinished-list").querySelectorAll("button").forEach((b) => b.addEventListener("click", async () => {
    try {
      const r = await postJSON("/api/train/resume", { name: o.unfinished[Number(b.dataset.resume)].name });
      follow(r.id);
      loadOptions(false);
    } catch (e) { showError("setup-error", e.message); }
  }));
}

$("check").addEventListener("click", checkModel);
$("start").addEventListener("click", start);
$("race").addEventListener("click", startRace);
$("pause").addEventListener("click", () => control("pause"));
$("resume").addEventListener("click", () => control("resume"));
$("stop").addEventListener("click", () => control("stop"));
$("apply").addEventListener("click", applyKnobs);
for (const k of KNOBS) $(`k-${k}`).addEventListener("keydown", (e) => { if (e.key === "Enter" && focus) applyKnobs(); });
// A page opened (or reloaded) while runs train follows the newest of them, and its race.
async function rejoin() {
  const listing = await getJSON("/api/train/runs");
  const live = listing.runs.filter((r) => ["running", "paused"].includes(r.status)).pop();
  if (!live) return;
  const raceIds = Object.values(listing.races).find((ids) => ids.includes(live.id));
  follow(raceIds ? raceIds[0] : live.id, raceIds || null);
}

loadOptions(true).then(rejoin).then(() => { document.body.dataset.ready = "1"; })
  .catch((e) => showError("setup-error", e.message));
lineChart($("loss-chart"), []);
lineChart($("acc-chart"), []);
