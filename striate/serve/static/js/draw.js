// The draw view of striate serve. All inference happens on the server (POST /api/predict);
// this module draws strokes, sends the canvas, and lays out what comes back.
import { $, api, drawMap, escapeHtml, fieldBox, fmtNum, fmtShape, getJSON, outlineBox, postJSON } from "./common.js";
import { openPanel } from "./explain_panel.js";

const state = {
  model: null,          // GET /api/model
  result: null,         // last POST /api/predict answer
  inflight: false,      // one request at a time ...
  pending: false,       // ... and one more if the drawing changed meanwhile
  timer: null,
  hasInk: false,
  upload: null,         // a File when the input is an uploaded image
  inputImage: null,     // the model's input as an Image, for the receptive-field overlay
  hover: null,          // {layer, unit} under the mouse
  layerEls: [],         // per layer: {maps: [{img, unit}], legend elements}
};
const DEBOUNCE_MS = 60;   // at most ~16 requests a second while drawing: live, without flooding the server

// ------------------------------------------------------------------------------------------ drawing
const pad = $("pad");
const ctx = pad.getContext("2d");

function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  state.hasInk = false;
  state.upload = null;
  $("upload-preview").hidden = true;
  $("pad-hint").hidden = false;
}

function strokeStyle() {
  ctx.strokeStyle = "#fff";
  ctx.fillStyle = "#fff";
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  // ~1/12 of the pad: after the bounding-box normalisation a stroke is as thick as in the data sets
  ctx.lineWidth = 24;
}

let last = null;
function padPoint(ev) {
  const r = pad.getBoundingClientRect();
  return [(ev.clientX - r.left) * pad.width / r.width, (ev.clientY - r.top) * pad.height / r.height];
}
pad.addEventListener("pointerdown", (ev) => {
  if (state.upload) clearPad();
  pad.setPointerCapture(ev.pointerId);
  last = padPoint(ev);
  strokeStyle();
  ctx.beginPath();
  ctx.arc(last[0], last[1], ctx.lineWidth / 2, 0, 2 * Math.PI);
  ctx.fill();
  state.hasInk = true;
  $("pad-hint").hidden = true;
  schedule();
  ev.preventDefault();
});
pad.addEventListener("pointermove", (ev) => {
  if (!last) return;
  const p = padPoint(ev);
  strokeStyle();
  ctx.beginPath();
  ctx.moveTo(last[0], last[1]);
  ctx.lineTo(p[0], p[1]);
  ctx.stroke();
  last = p;
  schedule();
  ev.preventDefault();
});
for (const kind of ["pointerup", "pointercancel", "pointerleave"]) {
  pad.addEventListener(kind, () => { if (last) { last = null; schedule(); } });
}
$("clear").addEventListener("click", () => { clearPad(); resetOutputs(); });

$("file").addEventListener("change", (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  clearPad();
  state.upload = file;
  const preview = $("upload-preview");
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  $("pad-hint").hidden = true;
  ev.target.value = "";
  send();
});
$("preprocess").addEventListener("change", () => send());
$("invert").addEventListener("change", () => send());

// ------------------------------------------------------------------------------------------ requests
// While the pen moves, a request goes out at most every DEBOUNCE_MS (the timer is not restarted by
// each move, so the page updates during a stroke, not only after it); send() keeps one in flight
// and sends once more if the drawing changed meanwhile, so the last answer is for the last stroke.
function schedule() {
  if (state.timer) return;
  state.timer = setTimeout(() => { state.timer = null; send(); }, DEBOUNCE_MS);
}

async function send() {
  if (!state.hasInk && !state.upload) return;
  if (state.inflight) { state.pending = true; return; }
  state.inflight = true;
  state.pending = false;
  const mode = $("preprocess").value;
  let req;
  if (state.upload) {
    const q = new URLSearchParams({ preprocess: mode, invert: $("invert").value });
    req = api("/api/predict?" + q, { method: "POST", body: state.upload,
      headers: { "Content-Type": state.upload.type || "application/octet-stream" } });
    remember(state.upload, mode, $("invert").value);
  } else {
    const doc = { image: pad.toDataURL("image/png"), preprocess: mode, invert: false };
    req = postJSON("/api/predict", doc);
    remember(doc);
  }
  try {
    const body = await req;
    showError(null);
    show(body);
  } catch (e) {
    showError(e.message);
  } finally {
    state.inflight = false;
    if (state.pending) send();
  }
}

// The last picture, kept in the session so that the 3D view shows the same input.
function remember(what, mode, invert) {
  const keep = (doc) => { try { sessionStorage.setItem("striate.input", JSON.stringify(doc)); } catch (e) { /* full */ } };
  if (!(what instanceof Blob)) { keep(what); return; }
  const reader = new FileReader();
  reader.onload = () => keep({ image: reader.result, preprocess: mode, invert });
  reader.readAsDataURL(what);
}

function showError(message) {
  const el = $("error");
  el.hidden = !message;
  el.textContent = message || "";
}

// ------------------------------------------------------------------------------------------ model
async function loadModel() {
  const m = await getJSON("/api/model");
  state.model = m;
  const [h, w, c] = m.input_shape;
  $("model-line").textContent = `${m.name} · ${m.total_params.toLocaleString()} parameters · ${h}×${w}×${c} input`;
  $("model-line").title = m.source;
  $("model-source").textContent = m.source;
  const sel = $("preprocess");
  sel.value = m.default_preprocess;
  if (!(c === 1 && h === w)) sel.querySelector('option[value="digit"]').disabled = true;
  if (c !== 1) {
    $("invert-label").hidden = true;
    $("input-title").textContent = "1 · Upload a picture (or draw)";
    $("pad-hint").textContent = `this model takes ${c === 3 ? "RGB" : c + "-channel"} pictures: upload one (or draw)`;
  }
  sel.querySelector('option[value="none"]').textContent = `as is (exactly ${w}×${h})`;
  $("input-caption").textContent = inputCaption(m);
  // bars, one per class
  const bars = $("bars");
  bars.innerHTML = "";
  for (const name of m.classes) {
    bars.insertAdjacentHTML("beforeend",
      `<div class="name">${escapeHtml(name)}</div><div class="track"><div class="fill"></div></div><div class="pct">–</div>`);
  }
  // first-layer filters
  if (m.filters) {
    $("filters-card").hidden = false;
    const f = m.filters;
    $("filters-meta").textContent = `${f.layer} · ${f.shape[3]} kernels of ${f.shape[0]}×${f.shape[1]}×${f.shape[2]}`;
    const box = $("filters");
    for (const url of f.images) {
      const img = new Image();
      img.src = url;
      img.alt = "filter";
      box.appendChild(img);
    }
  }
  buildSummary(m);
  buildLayers(m);
  drawInput(null);
}

function inputCaption(m) {
  const [h, w, c] = m.input_shape;
  const mode = $("preprocess").value;
  if (mode === "digit" && h === 8) return `${h}×${w}: the ink's bounding box fills a 32×32 frame, then each 4×4 block is averaged — how scikit-learn's digits were made.`;
  if (mode === "digit") return `${h}×${w}: the ink's bounding box scaled to fit ${Math.round(h * 20 / 28)}×${Math.round(h * 20 / 28)}, then centred by its centre of mass — LeCun's MNIST recipe.`;
  if (mode === "resize") return `${h}×${w}×${c}: the whole image resized (bilinear).`;
  return `${h}×${w}×${c}: the image as sent.`;
}

function buildSummary(m) {
  const rows = m.rows.map((r) => {
    const rf = r.rf ? (r.rf[0] === r.rf[1] ? r.rf[0] : r.rf.join("×")) : (r.field === "global" ? "whole input" : "–");
    const jump = r.jump ? (r.jump[0] === r.jump[1] ? r.jump[0] : r.jump.join("×")) : "–";
    return `<tr><td>${escapeHtml(r.name)}</td><td>${r.type}</td><td>${fmtShape(r.output_shape)}</td>` +
      `<td class="num">${r.params.toLocaleString()}</td><td class="num">${r.macs ? r.macs.toLocaleString() : "–"}</td>` +
      `<td class="num">${rf}</td><td class="num">${jump}</td></tr>`;
  }).join("");
  $("summary-table").innerHTML =
    "<tr><th>layer</th><th>type</th><th>output</th><th>params</th><th>MACs</th><th>receptive field</th><th>jump</th></tr>" +
    rows + `<tr><td colspan="3"><b>total</b></td><td class="num"><b>${m.total_params.toLocaleString()}</b></td>` +
    `<td class="num"><b>${m.total_macs.toLocaleString()}</b></td><td></td><td></td></tr>`;
}

// Display size of one map: each unit an integer number of CSS pixels, maps about 48 px across;
// a map larger than MAX_MAP_PX (a 224x224 layer) is shown downsampled, but a click or a hover
// still finds the exact unit (from the layer's own height and width).
const MAX_MAP_PX = 112;
function unitPx(h) { return Math.min(Math.max(1, Math.round(48 / h)), MAX_MAP_PX / h); }

function buildLayers(m) {
  const box = $("layers");
  box.innerHTML = "";
  state.layerEls = m.layers.map((layer, li) => {
    const el = document.createElement("div");
    el.className = "layer";
    el.dataset.layer = layer.name;
    const spatial = layer.shape.length === 3;
    const rfText = describeField(layer.field);
    el.innerHTML =
      `<div class="meta"><div><span class="lname">${escapeHtml(layer.name)}</span><span class="ltype">${layer.type}</span></div>` +
      `<div>output <span class="shape">${fmtShape(layer.shape)}</span></div>` +
      `<div class="range">values –</div>` +
      `<div class="legend"><span class="lo"></span><span class="ramp seq"></span><span class="hi"></span></div>` +
      `<div class="rf">${rfText}</div></div><div class="maps"></div>`;
    box.appendChild(el);
    return { el, layer, index: li, spatial, maps: [], mapsBox: el.querySelector(".maps"),
             range: el.querySelector(".range"), lo: el.querySelector(".lo"), hi: el.querySelector(".hi"),
             ramp: el.querySelector(".ramp") };
  });
}

function describeField(f) {
  if (f === "global") return "each unit sees the whole input";
  if (!f) return "receptive field: not known";
  const s = f.size[0] === f.size[1] ? `${f.size[0]}×${f.size[0]}` : f.size.join("×");
  return `receptive field ${s}, jump ${f.jump[0] === f.jump[1] ? f.jump[0] : f.jump.join("×")}`;
}

function ensureMaps(L, entry) {
  // (re)build the <img> elements of a layer when their number changes
  if (L.maps.length === entry.maps.length) return;
  L.mapsBox.innerHTML = "";
  L.maps = [];
  const spatial = L.spatial;
  const h = spatial ? L.layer.shape[0] : entry.grid[0];
  const w = spatial ? L.layer.shape[1] : entry.grid[1];
  const px = spatial ? unitPx(h) : Math.max(10, Math.min(22, Math.floor(440 / w)));
  entry.maps.forEach((_, k) => {
    const wrap = document.createElement("div");
    wrap.className = "map";
    const img = new Image();
    img.width = Math.round(w * px);
    img.height = Math.round(h * px);
    img.alt = `${L.layer.name} map ${k}`;
    img.dataset.channel = k;
    const unit = document.createElement("div");
    unit.className = "unit";
    wrap.appendChild(img);
    wrap.appendChild(unit);
    L.mapsBox.appendChild(wrap);
    img.addEventListener("mousemove", (ev) => hoverUnit(L, k, img, unit, ev, h, w, px));
    img.addEventListener("click", (ev) => clickUnit(L, k, img, ev, h, w));
    img.addEventListener("mouseleave", () => { unit.style.display = "none"; state.hover = null; drawInput(null);
      $("rf-caption").textContent = "Hover over any unit of a layer below to see its receptive field here."; });
    L.maps.push({ img, unit });
  });
  const classes = state.model.classes;
  if (!spatial && L.index === state.layerEls.length - 1 && entry.channels === classes.length && entry.grid[0] === 1) {
    // the output layer: name each unit by its class
    const labels = document.createElement("div");
    labels.className = "unit-labels";
    labels.style.gridTemplateColumns = `repeat(${w}, ${px}px)`;
    labels.innerHTML = classes.map((c) => `<span>${escapeHtml(c)}</span>`).join("");
    L.mapsBox.firstChild.appendChild(labels);
  }
  if (spatial && entry.channels > entry.maps.length) {
    L.mapsBox.insertAdjacentHTML("beforeend", `<span class="more">+ ${entry.channels - entry.maps.length} more channels</span>`);
  }
}

// ------------------------------------------------------------------------------------------ results
function resetOutputs() {
  state.result = null;
  state.inputImage = null;
  drawInput(null);
  $("verdict").textContent = "—";
  for (const el of document.querySelectorAll(".bars .fill")) { el.style.width = "0"; el.classList.remove("top"); }
  for (const el of document.querySelectorAll(".bars .pct")) el.textContent = "–";
  for (const L of state.layerEls) { L.mapsBox.innerHTML = ""; L.maps = []; L.range.textContent = "values –"; }
  $("timing").textContent = "";
}

function show(r) {
  state.result = r;
  // probabilities
  const fills = document.querySelectorAll(".bars .fill");
  const pcts = document.querySelectorAll(".bars .pct");
  const best = r.probabilities.indexOf(Math.max(...r.probabilities));
  r.probabilities.forEach((p, i) => {
    fills[i].style.width = (100 * p).toFixed(1) + "%";
    fills[i].classList.toggle("top", i === best);
    pcts[i].textContent = (100 * p).toFixed(1) + "%";
  });
  const t = r.top[0];
  $("verdict").innerHTML = `<b>${escapeHtml(t.class)}</b> with probability ${(100 * t.probability).toFixed(1)}%`;
  $("timing").textContent = `server: ${r.ms.toFixed(1)} ms (forward pass and rendering ${r.compute_ms.toFixed(1)} ms)`;
  $("input-caption").textContent = inputCaption(state.model);
  // the input as the model sees it
  const img = new Image();
  img.onload = () => { state.inputImage = img; drawInput(state.hover); };
  img.src = r.input;
  // layers
  r.layers.forEach((entry, li) => {
    const L = state.layerEls[li];
    ensureMaps(L, entry);
    entry.maps.forEach((url, k) => { L.maps[k].img.src = url; });
    L.range.textContent = `values ${fmtNum(entry.min)} … ${fmtNum(entry.max)}`;
    L.ramp.className = "ramp " + (entry.signed ? "div" : "seq");
    L.lo.textContent = fmtNum(entry.scale[0]);
    L.hi.textContent = fmtNum(entry.scale[1]);
    L.entry = entry;
  });
  document.body.dataset.inputKey = r.input_key;       // the image the server remembers, for /api/explain
  document.body.dataset.predictions = String((Number(document.body.dataset.predictions) || 0) + 1);
}

// ------------------------------------------------------------------------------------------ explaining a unit
// The exact unit under the mouse: (row, col) of the layer's own grid, whatever the display size.
function unitAt(img, ev, h, w) {
  const r = img.getBoundingClientRect();
  const col = Math.min(w - 1, Math.max(0, Math.floor((ev.clientX - r.left) / r.width * w)));
  const row = Math.min(h - 1, Math.max(0, Math.floor((ev.clientY - r.top) / r.height * h)));
  return [row, col];
}

function clickUnit(L, channel, img, ev, h, w) {
  if (!state.result) return;
  const [row, col] = unitAt(img, ev, h, w);
  let index;
  if (L.spatial) index = [row, col, channel];
  else {
    const k = row * w + col;
    if (k >= L.layer.shape[0]) return;
    index = [k];
  }
  openPanel({ key: state.result.input_key, layer: L.layer.name, index, model: state.model });
}

// ------------------------------------------------------------------------------------------ receptive fields
function hoverUnit(L, channel, img, unitEl, ev, h, w, px) {
  const [row, col] = unitAt(img, ev, h, w);
  unitEl.style.display = "block";
  unitEl.style.left = (col * px - 1) + "px";
  unitEl.style.top = (row * px - 1) + "px";
  unitEl.style.width = (px + 2) + "px";
  unitEl.style.height = (px + 2) + "px";
  const f = L.layer.field;
  if (!L.spatial) {
    const k = row * w + col;
    const n = L.layer.shape[0];
    if (k >= n) { unitEl.style.display = "none"; return; }
    const cls = L.index === state.layerEls.length - 1 && state.model.classes[k] !== undefined
      ? ` (class “${escapeHtml(state.model.classes[k])}”)` : "";
    state.hover = { whole: true };
    $("rf-caption").innerHTML = `<b>${escapeHtml(L.layer.name)}</b> unit ${k}${cls} depends on the whole input.`;
    drawInput(state.hover);
    return;
  }
  if (!f || f === "global") {
    state.hover = f === "global" ? { whole: true } : null;
    $("rf-caption").textContent = `${L.layer.name}: receptive field not known for this layer.`;
    drawInput(state.hover);
    return;
  }
  const { r0, r1, c0, c1 } = fieldBox(f, row, col);
  state.hover = { r0, r1, c0, c1 };
  const [H, W] = state.model.input_shape;
  const clip = (a, lo, hi) => Math.max(lo, Math.min(hi, a));
  const outside = (r0 < 0 || c0 < 0 || r1 >= H || c1 >= W) ? " (part of it lies in the zero padding)" : "";
  $("rf-caption").innerHTML =
    `<b>${escapeHtml(L.layer.name)}</b> channel ${channel}, unit (${row}, ${col}) sees input rows ` +
    `${clip(r0, 0, H - 1)}–${clip(r1, 0, H - 1)}, columns ${clip(c0, 0, W - 1)}–${clip(c1, 0, W - 1)}: a ` +
    `${f.size[0]}×${f.size[1]} field${outside}; neighbouring units are ${f.jump[0]} pixel${f.jump[0] > 1 ? "s" : ""} apart.`;
  drawInput(state.hover);
}

function drawInput(hover) {
  const view = $("input-view");
  if (!state.model) { drawMap(view, null, 1, 1, { grid: false }); return; }
  const [H, W] = state.model.input_shape;
  drawMap(view, state.inputImage, H, W);
  if (hover) outlineBox(view, H, W, hover);
}

clearPad();
loadModel().catch((e) => showError("could not load the model description: " + e.message));
