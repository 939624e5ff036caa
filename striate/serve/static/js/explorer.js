// The convolution arithmetic explorer: striate computes the geometry (GET /api/conv), this script
// animates the kernel sliding over the padded input, one output unit per step.
import { $, getJSON } from "./common.js";

const knobs = ["input", "kernel", "stride", "padding", "dilation"];
const anim = { geo: null, pos: 0, playing: true, timer: null };
// the numbers view: frames of striate.vis.animate for the same settings (GET /api/conv/frames)
const numbers = { frames: [], pos: 0, timer: null, request: 0 };

function params() {
  const p = {};
  for (const k of knobs) p[k] = Number($("k-" + k).value);
  if ($("k-same").checked) p.padding = "same";
  return p;
}

async function update() {
  for (const k of knobs) $("o-" + k).textContent = $("k-" + k).value;
  $("k-padding").disabled = $("k-same").checked;
  let g;
  try {
    g = await getJSON("/api/conv", params());
  } catch (e) {
    showImpossible(e.message);
    return;
  }
  if (!g.ok) { showImpossible(g.error); return; }
  anim.geo = g;
  anim.pos = 0;
  const [pt, pb] = g.pads;
  $("out-size").textContent = `output ${g.output}×${g.output}`;
  $("formula").innerHTML = g.padding === "same"
    ? `'same': out = ⌈${g.input} / ${g.stride}⌉ = ${g.output}<br>pads: ${pt} before, ${pb} after`
    : `out = ⌊(in + 2p − d(k − 1) − 1) / s⌋ + 1<br>&nbsp;&nbsp;&nbsp;&nbsp;= ⌊(${g.input} + ${pt + pb} − ${g.dilation}·${g.kernel - 1} − 1) / ${g.stride}⌋ + 1 = ${g.output}`;
  $("notes").innerHTML = [`effective kernel ${g.effective_kernel}×${g.effective_kernel}` +
    (g.dilation > 1 ? ` (dilation ${g.dilation} spreads ${g.kernel} taps)` : ""),
    ...g.notes.map((n) => n.replace(/^layer 1: /, ""))].join("<br>");
  draw();
  scheduleFrames();
}

function scheduleFrames() {
  clearTimeout(numbers.timer);
  numbers.timer = setTimeout(loadFrames, 250);   // drawing frames takes the server ~20 ms each
}

async function loadFrames() {
  const q = new URLSearchParams(params());
  q.set("kind", $("kind").value);
  const ticket = ++numbers.request;
  $("n-status").textContent = "drawing the frames…";
  let body;
  try {
    body = await getJSON("/api/conv/frames?" + q);
  } catch (e) {
    if (ticket !== numbers.request) return;
    numbers.frames = [];
    $("frame").hidden = true;
    $("n-error").textContent = e.message;
    $("n-status").textContent = "";
    return;
  }
  if (ticket !== numbers.request) return;        // the settings changed meanwhile
  numbers.frames = body.frames;
  numbers.pos = 0;
  $("n-error").textContent = "";
  $("n-status").textContent = `${body.describe} · ${body.count} frames`;
  showFrame();
}

function showFrame() {
  if (!numbers.frames.length) return;
  // a convolution's frames follow the output cells in the order of the window above: keep them in step
  if ($("kind").value === "conv" && anim.geo && numbers.frames.length === anim.geo.output * anim.geo.output) {
    numbers.pos = anim.pos;
  }
  const img = $("frame");
  img.src = numbers.frames[numbers.pos % numbers.frames.length];
  img.hidden = false;
}

function showImpossible(message) {
  anim.geo = null;
  numbers.request++;                             // drop frames still being drawn for older settings
  numbers.frames = [];
  $("frame").hidden = true;
  $("n-status").textContent = "";
  $("n-error").textContent = "";
  $("out-size").textContent = "impossible";
  $("formula").textContent = message || "";
  $("notes").textContent = "";
  const c = $("stage").getContext("2d");
  c.clearRect(0, 0, $("stage").width, $("stage").height);
  $("where").textContent = "";
}

function draw() {
  const g = anim.geo;
  const canvas = $("stage");
  const c = canvas.getContext("2d");
  if (!g) { c.clearRect(0, 0, canvas.width, canvas.height); return; }
  const [pt, pb] = g.pads;
  const padded = g.input + pt + pb;
  const out = g.output;
  const cell = Math.max(8, Math.min(34, Math.floor(460 / padded)));
  const ocell = Math.max(8, Math.min(34, Math.floor(260 / Math.max(out, 1))));
  const ox0 = 20, oy0 = 30;
  // size the stage to the grids: padded input, a gap, the output
  const needW = ox0 + padded * cell + 60 + out * ocell + 20, needH = oy0 + Math.max(padded * cell, out * ocell) + 10;
  if (canvas.width !== needW || canvas.height !== needH) { canvas.width = needW; canvas.height = needH; }
  c.clearRect(0, 0, canvas.width, canvas.height);
  const pos = anim.pos % (out * out);
  const orow = Math.floor(pos / out), ocol = pos % out;
  c.font = "13px system-ui, sans-serif";
  c.fillStyle = "#6b7385";
  c.fillText(`input ${g.input}×${g.input}` + (pt + pb ? ` + padding` : ""), ox0, oy0 - 10);
  // the padded input
  for (let i = 0; i < padded; i++) {
    for (let j = 0; j < padded; j++) {
      const inside = i >= pt && i < pt + g.input && j >= pt && j < pt + g.input;
      c.fillStyle = inside ? "#ffffff" : "#e9ebf0";
      c.fillRect(ox0 + j * cell, oy0 + i * cell, cell - 1, cell - 1);
      c.strokeStyle = "#ccd2dd";
      c.strokeRect(ox0 + j * cell + .5, oy0 + i * cell + .5, cell - 2, cell - 2);
    }
  }
  // the window of the current output unit: taps at (orow*s + a*d, ocol*s + b*d) in padded coordinates
  const top = orow * g.stride, left = ocol * g.stride;
  const span = g.effective_kernel;
  c.fillStyle = "rgba(47,111,222,0.10)";
  c.fillRect(ox0 + left * cell, oy0 + top * cell, span * cell - 1, span * cell - 1);
  for (let a = 0; a < g.kernel; a++) {
    for (let b = 0; b < g.kernel; b++) {
      const i = top + a * g.dilation, j = left + b * g.dilation;
      c.fillStyle = "rgba(47,111,222,0.75)";
      c.fillRect(ox0 + j * cell + 2, oy0 + i * cell + 2, cell - 5, cell - 5);
    }
  }
  c.strokeStyle = "#2f6fde";
  c.lineWidth = 2;
  c.strokeRect(ox0 + left * cell + 1, oy0 + top * cell + 1, span * cell - 3, span * cell - 3);
  c.lineWidth = 1;
  // the output
  const px0 = ox0 + padded * cell + 60, py0 = oy0;
  c.fillStyle = "#6b7385";
  c.fillText(`output ${out}×${out}`, px0, py0 - 10);
  for (let i = 0; i < out; i++) {
    for (let j = 0; j < out; j++) {
      const k = i * out + j;
      c.fillStyle = k === pos ? "#ffb000" : (k < pos ? "#fde7b0" : "#ffffff");
      c.fillRect(px0 + j * ocell, py0 + i * ocell, ocell - 1, ocell - 1);
      c.strokeStyle = "#ccd2dd";
      c.strokeRect(px0 + j * ocell + .5, py0 + i * ocell + .5, ocell - 2, ocell - 2);
    }
  }
  // an arrow from the window to its output unit
  c.strokeStyle = "rgba(255,176,0,0.9)";
  c.lineWidth = 2;
  c.beginPath();
  c.moveTo(ox0 + (left + span) * cell, oy0 + (top + span / 2) * cell);
  c.lineTo(px0 + ocol * ocell, py0 + (orow + 0.5) * ocell);
  c.stroke();
  c.lineWidth = 1;
  $("where").textContent = `— output unit (${orow}, ${ocol}) reads padded rows ${top}–${top + span - 1}, columns ${left}–${left + span - 1}`;
}

function tick() {
  if (!anim.playing) return;
  if (anim.geo) { anim.pos = (anim.pos + 1) % (anim.geo.output * anim.geo.output); draw(); }
  if (numbers.frames.length) { numbers.pos = (numbers.pos + 1) % numbers.frames.length; showFrame(); }
}

for (const k of knobs) $("k-" + k).addEventListener("input", update);
$("k-same").addEventListener("change", update);
$("play").addEventListener("click", () => { anim.playing = !anim.playing; $("play").textContent = anim.playing ? "Pause" : "Play"; });
$("step").addEventListener("click", () => {
  if (anim.geo) { anim.pos = (anim.pos + 1) % (anim.geo.output * anim.geo.output); draw(); }
  if (numbers.frames.length) { numbers.pos = (numbers.pos + 1) % numbers.frames.length; showFrame(); }
});
$("kind").addEventListener("change", scheduleFrames);
anim.timer = setInterval(tick, 700);
update();
