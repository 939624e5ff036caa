// The 3D view of striate serve: every layer of the network on the current input as a slab of its
// maps, drawn on a canvas with a small perspective projection of our own (no library). Drag turns
// the network, the wheel zooms, hovering a unit draws its connections to the units of the previous
// layer that it reads (from GET /api/explain), clicking it opens the explanation panel.
import { $, api, escapeHtml, getJSON, postJSON } from "./common.js";
import { openPanel } from "./explain_panel.js";

const GAP = 90;            // world units between consecutive slabs (less in a deep network: gapFor)
const SLAB = 170;          // a slab's width in world units
const FOCAL = 760;         // the projection's focal length, in canvas pixels
const MAX_LINES = 400;     // connections drawn for one unit
const HOVER_MS = 60;       // a unit must stay under the mouse this long before its window is asked for

const view = { yaw: -0.55, pitch: 0.22, distance: 900, pan: [0, 0] };
const state = { model: null, result: null, slabs: [], byName: new Map(), hover: null, links: [], cache: new Map(),
                hoverTimer: null, dirty: true, maxMaps: 16 };
const canvas = $("scene");
const g = canvas.getContext("2d");

// ------------------------------------------------------------------------------------------ geometry
function project([x, y, z]) {
  // turn about the vertical axis (yaw), then tilt (pitch); the camera looks down +z from `distance`
  const cy = Math.cos(view.yaw), sy = Math.sin(view.yaw), cp = Math.cos(view.pitch), sp = Math.sin(view.pitch);
  const x1 = x * cy - z * sy, z1 = x * sy + z * cy;
  const y2 = y * cp - z1 * sp, z2 = y * sp + z1 * cp;
  const depth = z2 + view.distance;
  const s = FOCAL / Math.max(depth, 1);
  return { x: canvas.width / 2 + view.pan[0] + x1 * s, y: canvas.height / 2 + view.pan[1] - y2 * s, depth };
}

// Slabs: the input, then every layer; each holds maps laid out on a grid in its plane z = const.
function buildSlabs(result) {
  const m = state.model;
  const [H, W] = m.input_shape;
  const slabs = [{ name: "input", label: "input", spatial: true, shape: m.input_shape, maps: [result.input], h: H, w: W }];
  for (const L of result.layers) {
    const spatial = L.shape.length === 3;
    const maps = spatial ? L.maps.slice(0, state.maxMaps) : L.maps;
    slabs.push({ name: L.name, label: `${L.name} · ${L.type}`, spatial, shape: L.shape, maps, type: L.type,
                 h: spatial ? L.shape[0] : L.grid[0], w: spatial ? L.shape[1] : L.grid[1], channels: L.channels });
  }
  const gap = gapFor(slabs.length), zc = (slabs.length - 1) * gap / 2;
  slabs.forEach((s, i) => {
    s.z = i * gap - zc;
    const n = s.maps.length;
    const cols = s.spatial ? Math.ceil(Math.sqrt(n)) : 1, rows = Math.ceil(n / cols);
    const aspect = s.h / s.w;
    const side = s.spatial ? Math.min(SLAB / cols, 90) : Math.min(SLAB, 5 * s.w);
    const mw = side, mh = side * aspect, pad = side * 0.1;
    const total = [cols * mw + (cols - 1) * pad, rows * mh + (rows - 1) * pad];
    s.quads = s.maps.map((url, k) => {
      const r = Math.floor(k / cols), c = k % cols;
      const x0 = -total[0] / 2 + c * (mw + pad), y0 = total[1] / 2 - r * (mh + pad);
      return { k, tl: [x0, y0, s.z], tr: [x0 + mw, y0, s.z], bl: [x0, y0 - mh, s.z], img: loadImage(url) };
    });
    s.top = total[1] / 2;
  });
  state.slabs = slabs;
  state.byName = new Map(slabs.map((s) => [s.name, s]));
}

// Deep networks get their slabs closer together, so that the whole network fits one view.
function gapFor(n) { return Math.max(34, Math.min(GAP, 2600 / n)); }

function loadImage(url) {
  const img = new Image();
  img.onload = () => { state.dirty = true; };
  img.src = url;
  return img;
}

// The projected affine frame of a quad: screen point = o + u * ex + v * ey for u, v in [0, 1].
function frame(q) {
  const a = project(q.tl), b = project(q.tr), c = project(q.bl);
  return { o: [a.x, a.y], ex: [b.x - a.x, b.y - a.y], ey: [c.x - a.x, c.y - a.y], depth: (a.depth + b.depth + c.depth) / 3 };
}
function at(f, u, v) { return [f.o[0] + u * f.ex[0] + v * f.ey[0], f.o[1] + u * f.ex[1] + v * f.ey[1]]; }

// The unit of a slab's map at fractions (u, v) of the quad: its index as /api/explain wants it.
function unitOf(s, q, u, v) {
  const r = Math.min(s.h - 1, Math.floor(v * s.h)), c = Math.min(s.w - 1, Math.floor(u * s.w));
  if (s.spatial) return [r, c, q.k];
  const k = r * s.w + c;
  return k < s.shape[0] ? [k] : null;
}

// Where unit `index` of slab `s` is drawn: {f, u, v, du, dv} (the cell's corner and size), or null.
function cellOf(s, index) {
  let q, r, c;
  if (s.spatial) {
    q = s.quads[s.name === "input" ? 0 : index[2]];
    [r, c] = index;
  } else {
    q = s.quads[0];
    r = Math.floor(index[0] / s.w);
    c = index[0] % s.w;
  }
  if (!q || r >= s.h || c >= s.w) return null;
  return { f: frame(q), u: c / s.w, v: r / s.h, du: 1 / s.w, dv: 1 / s.h };
}
const centreOf = (cell) => at(cell.f, cell.u + cell.du / 2, cell.v + cell.dv / 2);

function hit(px, py) {
  const found = [];
  for (const s of state.slabs) {
    if (s.name === "input") continue;           // the input is not a unit with an explanation
    for (const q of s.quads) {
      const f = frame(q);
      const det = f.ex[0] * f.ey[1] - f.ex[1] * f.ey[0];
      if (Math.abs(det) < 1e-6) continue;
      const dx = px - f.o[0], dy = py - f.o[1];
      const u = (dx * f.ey[1] - dy * f.ey[0]) / det, v = (f.ex[0] * dy - f.ex[1] * dx) / det;
      if (u >= 0 && u < 1 && v >= 0 && v < 1) found.push({ s, q, u, v, depth: f.depth });
    }
  }
  found.sort((a, b) => a.depth - b.depth);     // the nearest map under the mouse
  for (const h of found) {
    const index = unitOf(h.s, h.q, h.u, h.v);
    if (index) return { layer: h.s.name, index };
  }
  return null;
}

// ------------------------------------------------------------------------------------------ drawing
function draw() {
  state.dirty = false;
  g.setTransform(1, 0, 0, 1, 0, 0);
  g.fillStyle = "#11151f";
  g.fillRect(0, 0, canvas.width, canvas.height);
  if (!state.slabs.length) return;
  g.imageSmoothingEnabled = false;
  const quads = [];
  for (const s of state.slabs) for (const q of s.quads) quads.push({ s, q, f: frame(q) });
  quads.sort((a, b) => b.f.depth - a.f.depth);  // far to near: the painter's algorithm
  for (const { q, f } of quads) {
    if (f.depth < 20) continue;
    const iw = q.img.naturalWidth, ih = q.img.naturalHeight;
    if (iw && ih) {
      g.setTransform(f.ex[0] / iw, f.ex[1] / iw, f.ey[0] / ih, f.ey[1] / ih, f.o[0], f.o[1]);
      g.globalAlpha = 0.93;
      g.drawImage(q.img, 0, 0);
      g.globalAlpha = 1;
    }
    g.setTransform(1, 0, 0, 1, 0, 0);
    outline([f.o, at(f, 1, 0), at(f, 1, 1), at(f, 0, 1)], "rgba(170,185,215,0.35)", 1);
  }
  // slab labels, above each slab
  g.font = "11px system-ui";
  g.fillStyle = "#aab3c5";
  g.textAlign = "center";
  state.slabs.forEach((s, i) => {
    if (i % Math.ceil(state.slabs.length / 16) && s !== hoveredSlab()) return;   // deep networks: some names
    const p = project([0, s.top + 12, s.z]);
    if (p.depth > 20) g.fillText(s.name, p.x, p.y);
  });
  // the hovered unit and its connections
  let n = 0;
  if (state.hover) {
    const src = cellOf(state.byName.get(state.hover.layer), state.hover.index);
    if (src) {
      const from = centreOf(src);
      g.strokeStyle = "rgba(255,190,40,0.8)";
      g.lineWidth = 1.2;
      for (const link of state.links) {
        const cell = cellOf(state.byName.get(link.layer), link.index);
        if (!cell) continue;
        const to = centreOf(cell);
        g.beginPath(); g.moveTo(from[0], from[1]); g.lineTo(to[0], to[1]); g.stroke();
        cellBox(cell, "#ffb000", 1.5);
        n++;
      }
      cellBox(src, "#ffffff", 2.5);
    }
  }
  document.body.dataset.connections = String(n);
  document.body.dataset.yaw = view.yaw.toFixed(3);
  document.body.dataset.distance = view.distance.toFixed(1);
}
function hoveredSlab() { return state.hover ? state.byName.get(state.hover.layer) : null; }

function outline(points, colour, width) {
  g.strokeStyle = colour;
  g.lineWidth = width;
  g.beginPath();
  points.forEach((p, i) => (i ? g.lineTo(p[0], p[1]) : g.moveTo(p[0], p[1])));
  g.closePath();
  g.stroke();
}
function cellBox(cell, colour, width) {
  const { f, u, v, du, dv } = cell;
  outline([at(f, u, v), at(f, u + du, v), at(f, u + du, v + dv), at(f, u, v + dv)], colour, width);
}

function loop() {
  if (state.dirty) draw();
  requestAnimationFrame(loop);
}

// ------------------------------------------------------------------------------------------ connections
// The units of the previous layer(s) that unit `e` reads, from its explanation.
function sources(e) {
  const k = e.index[e.index.length - 1];
  const src = e.input_layer === undefined ? null : e.input_layer;
  const out = [];
  const windowCells = (channels) => {
    const w = e.window;
    for (const c of channels) for (const r of w.rows) for (const col of w.cols) {
      if (r >= 0 && col >= 0 && r < w.input_shape[0] && col < w.input_shape[1]) out.push({ layer: src, index: [r, col, c] });
    }
  };
  switch (e.kind) {
    case "conv": windowCells(e.top.map((t) => t.channel)); break;
    case "max_pool": case "avg_pool": windowCells([k]); break;
    case "dense":
      for (const t of e.top) out.push({ layer: src, index: t.source_index || [t.input] });
      break;
    case "flatten": out.push({ layer: src, index: e.source_index }); break;
    case "add": for (const o of e.operands) out.push({ layer: o.layer, index: e.index }); break;
    case "concat": out.push({ layer: e.operands[e.operand].layer, index: e.operand_index }); break;
    case "global_avg_pool": case "global_max_pool": {
      const [h, w] = [e.patch.length, e.patch[0].length];
      for (const [r, c] of [[0, 0], [0, w - 1], [h - 1, 0], [h - 1, w - 1], [h >> 1, w >> 1]]) out.push({ layer: src, index: [r, c, k] });
      break;
    }
    case "softmax": for (let i = 0; i < e.logits.length; i++) out.push({ layer: src, index: [i] }); break;
    default:
      if (e.add) for (const o of e.add.operands) out.push({ layer: o.layer, index: e.index });
      else if (src) out.push({ layer: src, index: e.index });
  }
  return out.filter((l) => state.byName.has(l.layer)).slice(0, MAX_LINES);
}

async function explainHover(h) {
  const id = `${h.layer}|${h.index.join(",")}`;
  let e = state.cache.get(id);
  if (!e) {
    e = await getJSON("/api/explain", { input: state.result.input_key, layer: h.layer, index: h.index.join(","), top_k: 4 });
    state.cache.set(id, e);
  }
  if (!state.hover || `${state.hover.layer}|${state.hover.index.join(",")}` !== id) return;
  state.links = sources(e);
  $("hover-line").innerHTML = `<b>${escapeHtml(h.layer)}</b> (${h.index.join(", ")}) = ${e.value.toPrecision(4)}` +
    ` <span class="dim">[${e.kind}]</span>: reads ${state.links.length} unit${state.links.length === 1 ? "" : "s"} shown`;
  state.dirty = true;
}

// ------------------------------------------------------------------------------------------ the mouse
function canvasPoint(ev) {
  const r = canvas.getBoundingClientRect();
  return [(ev.clientX - r.left) * canvas.width / r.width, (ev.clientY - r.top) * canvas.height / r.height];
}
let drag = null;
canvas.addEventListener("pointerdown", (ev) => {
  drag = { x: ev.clientX, y: ev.clientY, yaw: view.yaw, pitch: view.pitch, moved: false };
  canvas.setPointerCapture(ev.pointerId);
});
canvas.addEventListener("pointermove", (ev) => {
  if (drag) {
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    if (drag.moved) {
      canvas.classList.add("dragging");
      view.yaw = drag.yaw + dx * 0.008;
      view.pitch = Math.max(-1.4, Math.min(1.4, drag.pitch + dy * 0.008));
      state.dirty = true;
      return;
    }
  }
  if (!state.result) return;
  const [px, py] = canvasPoint(ev);
  const h = hit(px, py);
  const same = h && state.hover && h.layer === state.hover.layer && h.index.join() === state.hover.index.join();
  if (same) return;
  state.hover = h;
  state.links = [];
  state.dirty = true;
  clearTimeout(state.hoverTimer);
  if (h) state.hoverTimer = setTimeout(() => explainHover(h).catch((e) => showError(e.message)), HOVER_MS);
  else $("hover-line").textContent = "";
});
canvas.addEventListener("pointerup", (ev) => {
  const wasDrag = drag && drag.moved;
  drag = null;
  canvas.classList.remove("dragging");
  if (wasDrag || !state.result) return;
  const h = hit(...canvasPoint(ev));
  if (h) openPanel({ key: state.result.input_key, layer: h.layer, index: h.index, model: state.model });
});
canvas.addEventListener("wheel", (ev) => {
  ev.preventDefault();
  view.distance = Math.max(120, Math.min(20000, view.distance * Math.exp(ev.deltaY * 0.001)));
  state.dirty = true;
}, { passive: false });

// For tests and scripts: where unit `index` of `layer` is on the page (client pixels), or null.
window.striate3d = {
  clientPointOf(layer, index) {
    const s = state.byName.get(layer);
    const cell = s && cellOf(s, index);
    if (!cell) return null;
    const [x, y] = centreOf(cell);
    const r = canvas.getBoundingClientRect();
    return [r.left + x * r.width / canvas.width, r.top + y * r.height / canvas.height];
  },
  view,
};

// ------------------------------------------------------------------------------------------ the input
const pad = $("pad");
const pctx = pad.getContext("2d");
let last = null, hasInk = false, timer = null, inflight = false, pending = false, upload = null;

function clearPad() {
  pctx.fillStyle = "#000";
  pctx.fillRect(0, 0, pad.width, pad.height);
  hasInk = false;
  upload = null;
  $("upload-preview").hidden = true;
}
function padPoint(ev) {
  const r = pad.getBoundingClientRect();
  return [(ev.clientX - r.left) * pad.width / r.width, (ev.clientY - r.top) * pad.height / r.height];
}
pad.addEventListener("pointerdown", (ev) => {
  if (upload) clearPad();
  pad.setPointerCapture(ev.pointerId);
  last = padPoint(ev);
  hasInk = true;
  ev.preventDefault();
});
pad.addEventListener("pointermove", (ev) => {
  if (!last) return;
  const p = padPoint(ev);
  pctx.strokeStyle = "#fff"; pctx.lineCap = "round"; pctx.lineJoin = "round"; pctx.lineWidth = 15;
  pctx.beginPath(); pctx.moveTo(last[0], last[1]); pctx.lineTo(p[0], p[1]); pctx.stroke();
  last = p;
  ev.preventDefault();
});
for (const kind of ["pointerup", "pointercancel"]) pad.addEventListener(kind, () => { if (last) { last = null; send(); } });
$("clear").addEventListener("click", () => clearPad());
$("file").addEventListener("change", (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  clearPad();
  upload = file;
  $("upload-preview").src = URL.createObjectURL(file);
  $("upload-preview").hidden = false;
  ev.target.value = "";
  send();
});
$("all-maps").addEventListener("change", (ev) => {
  state.maxMaps = ev.target.checked ? 64 : 16;
  if (state.result) { buildSlabs(state.result); state.hover = null; state.dirty = true; }
});

function request(stored) {
  const mode = state.model.default_preprocess;
  if (stored) return postJSON("/api/predict", stored);
  if (upload) {
    return api(`/api/predict?${new URLSearchParams({ preprocess: mode === "digit" ? "digit" : "resize", invert: "auto" })}`,
      { method: "POST", body: upload, headers: { "Content-Type": upload.type || "application/octet-stream" } });
  }
  return postJSON("/api/predict", { image: pad.toDataURL("image/png"), preprocess: mode, invert: false });
}

async function send(stored = null) {
  if (!stored && !hasInk && !upload) return;
  if (inflight) { pending = true; return; }
  inflight = true;
  pending = false;
  try {
    const r = await request(stored);
    showError(null);
    state.result = r;
    state.cache.clear();
    state.hover = null;
    state.links = [];
    buildSlabs(r);
    const t = r.top[0];
    $("verdict").innerHTML = `<b>${escapeHtml(t.class)}</b> ${(100 * t.probability).toFixed(1)}%`;
    state.dirty = true;
    document.body.dataset.predictions = String((Number(document.body.dataset.predictions) || 0) + 1);
  } catch (e) {
    showError(e.message);
  } finally {
    inflight = false;
    if (pending) send();
  }
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

async function start() {
  const m = await getJSON("/api/model");
  state.model = m;
  const [h, w, c] = m.input_shape;
  $("model-line").textContent = `${m.name} · ${m.total_params.toLocaleString()} parameters · ${h}×${w}×${c} input`;
  // a deep network is seen more from the side, so that its slabs spread across the canvas
  const n = m.layers.length + 1, length = n * gapFor(n);
  if (n > 24) { view.yaw = -0.9; view.pitch = 0.35; }
  view.distance = Math.max(700, (n > 24 ? 1.0 : 0.85) * length);
  clearPad();
  let stored = null;
  try { stored = JSON.parse(sessionStorage.getItem("striate.input") || "null"); } catch (e) { stored = null; }
  if (stored && stored.image) {
    $("upload-preview").src = stored.image;
    $("upload-preview").hidden = false;
    send(stored);
  }
  draw();
}

loop();
start().catch((e) => showError("could not load the model: " + e.message));
