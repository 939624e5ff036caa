// The dense view of striate serve: draw several digits anywhere; a detector's boxes or a segmenter's
// mask are drawn over the canvas as the pen moves. All inference happens on the server
// (POST /api/dense); this module draws strokes, sends the canvas, and lays out what comes back.
import { $, escapeHtml, getJSON, postJSON } from "./common.js";

const state = {
  model: null,          // GET /api/model
  result: null,         // last POST /api/dense answer
  inflight: false,      // one request at a time ...
  pending: false,       // ... and one more if the drawing changed meanwhile
  timer: null,
  strokes: [],          // [[x, y], ...] per stroke, in canvas pixels (for undo)
  maskImage: null,      // the last mask as an Image
};
const DEBOUNCE_MS = 60;   // at most ~16 requests a second while drawing, as the Network view
const SIDE = 384;         // the longer side of the canvas, in canvas pixels

const pad = $("dense-pad"), overlay = $("dense-overlay");
const ctx = pad.getContext("2d");

// ------------------------------------------------------------------------------------------ drawing
// The pen is as wide, relative to the canvas, as the strokes of the training canvases (the model's
// description gives the fraction), light on a dark ground as they are.
function penWidth() { return Math.max(2, Math.round((state.model ? state.model.stroke : 0.052) * Math.max(pad.width, pad.height))); }
// ... and its edge as soft as the training digits' edges (they are small pictures enlarged bilinearly)
function pen() {
  ctx.strokeStyle = ctx.fillStyle = "#fff";
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.lineWidth = penWidth();
  const soft = state.model ? state.model.soft * Math.max(pad.width, pad.height) : 0;
  ctx.filter = soft > 0 ? `blur(${soft.toFixed(1)}px)` : "none";
}

function paint() {
  ctx.filter = "none";
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  pen();
  for (const s of state.strokes) drawStroke(s, 0);
}

// Draw stroke `s` from its point `from` on (a dot for a single point).
function drawStroke(s, from) {
  if (s.length === 1) {
    ctx.beginPath();
    ctx.arc(s[0][0], s[0][1], ctx.lineWidth / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(...s[Math.max(0, from - 1)]);
  for (let i = Math.max(1, from); i < s.length; i++) ctx.lineTo(...s[i]);
  ctx.stroke();
}

function padPoint(ev) {
  const r = pad.getBoundingClientRect();
  return [(ev.clientX - r.left) * pad.width / r.width, (ev.clientY - r.top) * pad.height / r.height];
}
let current = null;
pad.addEventListener("pointerdown", (ev) => {
  pad.setPointerCapture(ev.pointerId);
  current = [padPoint(ev)];
  state.strokes.push(current);
  pen();
  drawStroke(current, 0);
  $("dense-hint").hidden = true;
  schedule();
  ev.preventDefault();
});
pad.addEventListener("pointermove", (ev) => {
  if (!current) return;
  current.push(padPoint(ev));
  drawStroke(current, current.length - 1);
  schedule();
  ev.preventDefault();
});
for (const kind of ["pointerup", "pointercancel", "pointerleave"]) {
  pad.addEventListener(kind, () => { if (current) { current = null; schedule(); } });
}
$("dense-clear").addEventListener("click", () => { state.strokes = []; paint(); reset(); });
$("dense-undo").addEventListener("click", () => {
  state.strokes.pop();
  paint();
  if (state.strokes.length) send(); else reset();
});
$("min-score").addEventListener("input", () => {
  $("min-score-value").textContent = Number($("min-score").value).toFixed(2);
  schedule();
});
$("show-overlay").addEventListener("change", () => drawOverlay());

// ------------------------------------------------------------------------------------------ requests
// While the pen moves a request goes out at most every DEBOUNCE_MS (the timer is not restarted by
// each move, so the answer follows the stroke); one is in flight at a time, and one more is sent
// when the drawing changed meanwhile, so the last answer is for the last stroke.
function schedule() {
  if (state.timer) return;
  state.timer = setTimeout(() => { state.timer = null; send(); }, DEBOUNCE_MS);
}

async function send() {
  if (!state.strokes.length || !state.model) return;
  if (state.inflight) { state.pending = true; return; }
  state.inflight = true;
  state.pending = false;
  const doc = { image: pad.toDataURL("image/png"), invert: false };
  if (state.model.task === "detection") doc.min_score = Number($("min-score").value);
  const strokes = state.strokes.length;
  try {
    const r = await postJSON("/api/dense", doc);
    showError(null);
    if (state.strokes.length) show(r); else reset();   // cleared while the request was out
    document.body.dataset.strokes = String(strokes);
  } catch (e) {
    showError(e.message);
  } finally {
    state.inflight = false;
    if (state.pending) send();
  }
}

function showError(message) {
  const el = $("dense-error");
  el.hidden = !message;
  el.textContent = message || "";
}

// ------------------------------------------------------------------------------------------ model
async function loadModel() {
  const m = await getJSON("/api/model");
  if (!m.task || m.task === "classification") { showError("the served model is a classifier: open the Network view."); return; }
  state.model = m;
  const [h, w, c] = m.input_shape;
  // the canvas has the model's proportions, its longer side SIDE pixels
  const k = SIDE / Math.max(h, w);
  pad.width = overlay.width = Math.round(w * k);
  pad.height = overlay.height = Math.round(h * k);
  $("dense-wrap").style.width = pad.width + "px";
  $("dense-wrap").style.height = pad.height + "px";
  const what = { detection: "boxes", localisation: "its box", segmentation: "a mask" }[m.task];
  $("model-line").textContent = `${m.name} · ${m.task} · ${m.total_params.toLocaleString()} parameters · ${h}×${w}×${c} input`;
  $("model-line").title = m.source;
  $("dense-source").textContent = m.source;
  $("dense-title").textContent = m.task === "localisation" ? "1 · Draw a digit anywhere" : "1 · Draw several digits anywhere";
  $("found-title").textContent = m.task === "segmentation" ? "3 · Classes found (share of the pixels)" : "3 · Found, best first";
  $("score-label").hidden = m.task !== "detection";
  $("min-score").value = m.min_score;
  $("min-score-value").textContent = Number(m.min_score).toFixed(2);
  const [lo, hi] = m.digit_size.map((f) => Math.round(f * pad.height));
  $("dense-hint").textContent = `draw digits anywhere, each about ${lo}–${hi} px tall`;
  $("pen-caption").textContent = `The pen is ${penWidth()} px wide on this ${pad.width}×${pad.height} canvas ` +
    `(${(100 * m.stroke).toFixed(1)}% of its side), soft-edged, light on dark: the strokes of the digits_anywhere canvases, ` +
    `whose digits are ${lo}–${hi} px tall at this scale. The answer (${what}) follows the pen.`;
  $("dense-input-caption").textContent = `${h}×${w}: the whole canvas resized to the model's input, as its training canvases were made.`;
  if (m.task === "segmentation") buildLegend(m);
  paint();
  drawInput(null);
}

function buildLegend(m) {
  const el = $("legend");
  el.hidden = false;
  el.innerHTML = m.classes.map((name, i) => i === 0 ? "" :
    `<span class="entry"><span class="chip" style="background:${m.colours[i]}"></span>${escapeHtml(name)}</span>`).join("");
}

// ------------------------------------------------------------------------------------------ results
function reset() {
  state.result = null;
  state.maskImage = null;
  drawOverlay();
  drawInput(null);
  $("found").innerHTML = "";
  $("dense-timing").textContent = "";
  $("dense-hint").hidden = state.strokes.length > 0;
}

function show(r) {
  state.result = r;
  const img = new Image();
  img.onload = () => drawInput(img);
  img.src = r.input;
  if (r.mask) {
    const mask = new Image();
    mask.onload = () => { if (state.result === r) { state.maskImage = mask; drawOverlay(); } };
    mask.src = r.mask;
    $("found").innerHTML = r.present.length ? r.present.map((p) =>
      `<div class="item"><span class="chip" style="background:${state.model.colours[p.index]}"></span>` +
      `<span class="cls">${escapeHtml(p.class)}</span><span class="score">${(100 * p.fraction).toFixed(1)}%</span></div>`).join("")
      : `<div class="score">no digit pixels</div>`;
  } else {
    drawOverlay();
    $("found").innerHTML = r.boxes.length ? r.boxes.map((b) =>
      `<div class="item"><span class="chip" style="background:${state.model.colours[b.index]}"></span>` +
      `<span class="cls">${escapeHtml(b.class)}</span><span class="score">score ${b.score.toFixed(2)} · ` +
      `x ${Math.round(b.box[0])}–${Math.round(b.box[2])}, y ${Math.round(b.box[1])}–${Math.round(b.box[3])}</span></div>`).join("")
      : `<div class="score">nothing above the score threshold</div>`;
  }
  $("dense-timing").textContent = `server: ${r.ms.toFixed(1)} ms (forward pass and decoding ${r.compute_ms.toFixed(1)} ms)`;
  document.body.dataset.predictions = String((Number(document.body.dataset.predictions) || 0) + 1);
  document.body.dataset.found = String(r.boxes ? r.boxes.length : r.present.length);
}

// Boxes (class colour, "class score" label) or the mask (class colours, half transparent) over the canvas.
function drawOverlay() {
  const g = overlay.getContext("2d");
  g.clearRect(0, 0, overlay.width, overlay.height);
  const r = state.result;
  if (!r || !$("show-overlay").checked) return;
  if (r.mask) {
    if (!state.maskImage) return;
    g.globalAlpha = 0.6;
    g.imageSmoothingEnabled = false;
    g.drawImage(state.maskImage, 0, 0, overlay.width, overlay.height);
    g.globalAlpha = 1;
    return;
  }
  // the picture's pixels are the canvas's: boxes need no scaling
  const sx = overlay.width / r.width, sy = overlay.height / r.height;
  g.font = "600 15px system-ui, sans-serif";
  g.textBaseline = "top";
  for (const b of [...r.boxes].reverse()) {      // the best box is drawn last, on top
    const colour = state.model.colours[b.index];
    const [x0, y0, x1, y1] = [b.box[0] * sx, b.box[1] * sy, b.box[2] * sx, b.box[3] * sy];
    g.lineWidth = 3;
    g.strokeStyle = colour;
    g.strokeRect(x0, y0, x1 - x0, y1 - y0);
    const label = `${b.class} ${b.score.toFixed(2)}`;
    const tw = g.measureText(label).width + 8;
    const ty = y0 >= 20 ? y0 - 20 : y1;
    g.fillStyle = colour;
    g.fillRect(x0 - 1.5, ty, tw, 20);
    g.fillStyle = "#000";
    g.fillText(label, x0 + 2.5, ty + 2);
  }
}

function drawInput(img) {
  const view = $("dense-input");
  const g = view.getContext("2d");
  g.imageSmoothingEnabled = false;
  g.fillStyle = "#000";
  g.fillRect(0, 0, view.width, view.height);
  if (img) g.drawImage(img, 0, 0, view.width, view.height);
}

paint();
loadModel().catch((e) => showError("could not load the model description: " + e.message));
