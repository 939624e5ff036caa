// The explanation panel shared by the Network and 3D views: how one unit got its value, with the
// real numbers of GET /api/explain, and what the backward pass sends to it (GET /api/gradient).
// Every number shown carries its exact value in data-v, so a test can compare it with the API's.
import { $, escapeHtml, getJSON } from "./common.js";

const SHOWN_CELLS = 49;     // kernels up to 7x7 show every number; larger ones colour only
let panel = null;
let current = null;         // {key, layer, index, model, explanation}
let timer = null;           // the kernel animation

// A number as 4 significant digits (exact value in data-v; the product is shown as data).
export function num(v, cls = "") {
  if (v === null || v === undefined) return `<span class="n pad ${cls}" title="padding">pad</span>`;
  return `<span class="n ${cls}" data-v="${v}" title="${v}">${fmt4(v)}</span>`;
}
// A grid cell: at most 5 characters (the exact value stays in data-v and the tooltip).
function fmtCell(v) {
  const a = Math.abs(v);
  if (v === 0) return "0";
  if (a >= 100) return v.toFixed(0);
  if (a >= 0.005) return v.toFixed(2);
  return v.toExponential(0);
}
export function fmt4(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(3);
  return String(Number(v.toPrecision(4)));
}

function ensurePanel() {
  if (panel) return panel;
  panel = document.createElement("aside");
  panel.id = "explain-panel";
  panel.hidden = true;
  panel.innerHTML = `<div class="ep-head"><h2 id="ep-title">Explain a unit</h2>
    <button type="button" id="ep-close" aria-label="close">×</button></div><div id="ep-body"></div>`;
  document.body.appendChild(panel);
  $("ep-close").addEventListener("click", closePanel);
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closePanel(); });
  return panel;
}

export function closePanel() {
  if (!panel) return;
  panel.hidden = true;
  stopAnimation();
  document.body.classList.remove("with-panel");
}

function stopAnimation() { if (timer) { clearInterval(timer); timer = null; } }

// Open the panel for unit `index` (array) of `layer`, on the image the server knows as `key`.
export async function openPanel({ key, layer, index, model }) {
  ensurePanel();
  stopAnimation();
  panel.hidden = false;
  document.body.classList.add("with-panel");
  const body = $("ep-body");
  $("ep-title").textContent = `${layer} · unit (${index.join(", ")})`;
  body.innerHTML = `<p class="caption">computing…</p>`;
  panel.dataset.state = "loading";
  const t0 = performance.now();
  try {
    const e = await getJSON("/api/explain", { input: key, layer, index: index.join(",") });
    current = { key, layer, index, model, explanation: e };
    body.innerHTML = render(e, model) + backwardSection(model) +
      `<p class="caption timing">server ${e.ms.toFixed(1)} ms${e.recorded_now ? " (this image's forward recorded now)" : ""}, ` +
      `round trip ${(performance.now() - t0).toFixed(0)} ms</p>`;
    wireAnimation(e);
    wireBackward();
    panel.dataset.state = "ready";
    panel.dataset.layer = layer;
    panel.dataset.index = index.join(",");
  } catch (err) {
    body.innerHTML = `<div class="error">${escapeHtml(err.message)}</div>`;
    panel.dataset.state = "error";
  }
}

// ------------------------------------------------------------------------------------------ per kind
function grid(a, { mark = null, cls = "", numbers = true } = {}) {
  // a 2-D array as a table of cells; `mark` = [i, j] highlights one cell
  const cells = a.length * (a[0] ? a[0].length : 0);
  const show = numbers && cells <= SHOWN_CELLS;
  let lo = Infinity, hi = -Infinity;
  for (const row of a) for (const v of row) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const m = Math.max(Math.abs(lo), Math.abs(hi), 1e-12);
  const rows = a.map((row, i) => "<tr>" + row.map((v, j) => {
    const marked = mark && mark[0] === i && mark[1] === j ? " mark" : "";
    const bg = v === null ? "#ddd" : colour(v / m);
    const text = v === null ? "pad" : fmtCell(v);
    return `<td class="c${marked}" style="background:${bg}"><span class="n" data-v="${v}" title="${v}">${show ? text : ""}</span></td>`;
  }).join("") + "</tr>").join("");
  return `<table class="grid ${cls}${show ? "" : " tiny"}">${rows}</table>`;
}
function colour(t) {
  // diverging blue-white-red for t in [-1, 1]
  const a = Math.min(1, Math.abs(t));
  const [r, g, b] = t >= 0 ? [255, 255 - 150 * a, 255 - 170 * a] : [255 - 170 * a, 255 - 110 * a, 255];
  return `rgb(${r | 0},${g | 0},${b | 0})`;
}
const slice = (a3, k) => a3.map((row) => row.map((cell) => cell[k]));   // (kh, kw, c) -> (kh, kw) of channel k

function equation(parts) { return `<div class="eq">${parts.join(" ")}</div>`; }

function activationLine(e) {
  if (!e.activation) return "";
  return equation([`${e.activation}(`, num(e.pre_activation, "pre"), `) =`, num(e.result, "result")]);
}

function convSection(e) {
  const w = e.window;
  const [kh, kw] = [e.kernel.length, e.kernel[0].length];
  let html = `<p class="caption">The ${kh}×${kw} kernel of output channel ${e.index[2]} laid on rows ${w.rows[0]}…${w.rows[w.rows.length - 1]}, ` +
    `columns ${w.cols[0]}…${w.cols[w.cols.length - 1]} of <b>${escapeHtml(e.input_layer)}</b> (stride ${w.stride.join("×")}, ` +
    `dilation ${w.dilation.join("×")}${e.groups > 1 ? `, group ${e.group} of ${e.groups}` : ""}). Per input channel: patch × kernel, summed.` +
    ` ${e.terms.length} channels; the largest contributions first.</p>`;
  const parts = e.top.map((t) => num(t.term, "term"));
  if (e.rest_count) parts.push(`<span class="restlab">(the other ${e.rest_count} channels)</span> ${num(e.rest, "rest")}`);
  const sum = e.pre_activation - e.bias;
  html += equation(["sum over channels =", parts.join(" + "), "=", num(sum, "sum")]);
  html += equation(["sum", num(sum), "+ bias", num(e.bias, "bias"), "=", num(e.pre_activation, "pre")]);
  if (e.epilogue) {
    const p = e.epilogue;
    html += equation([`fused batch norm: `, num(e.pre_activation), "×", num(p.scale), "+", num(p.shift),
      p.relu ? ", then relu" : "", "=", num(e.result, "result")]);
  }
  html += activationLine(e);
  if (e.animation) html += animationBlock(e.animation);
  html += `<div class="terms">`;
  for (const t of e.top) {
    html += `<div class="term" data-channel="${t.channel}"><div class="tlabel">channel ${t.channel}</div>` +
      `<div class="tgrids"><div><div class="gl">input patch</div>${grid(t.patch)}</div><div class="op">×</div>` +
      `<div><div class="gl">kernel</div>${grid(t.kernel)}</div><div class="op">=</div>` +
      `<div><div class="gl">products</div>${grid(t.products)}</div><div class="op">Σ</div>` +
      `<div class="tsum">${num(t.term, "term")}</div></div></div>`;
  }
  html += `</div>`;
  return html;
}

function animationBlock(a) {
  return `<div class="anim"><div class="gl">The kernel sliding over input channel ${a.channel} around the unit; each ` +
    `position's sum fills the map (the clicked unit is outlined)</div>` +
    `<canvas id="ep-anim" width="460" height="200"></canvas>` +
    `<div class="stage-controls"><button type="button" id="ep-play">Pause</button><span id="ep-anim-step"></span></div></div>`;
}

function wireAnimation(e) {
  const a = e.animation;
  if (!a) return;
  const canvas = $("ep-anim");
  const g = canvas.getContext("2d");
  const nin = [a.in_rows.length, a.in_cols.length], nout = [a.rows.length, a.cols.length];
  const [kh, kw] = [a.kernel.length, a.kernel[0].length];
  const cell = Math.max(8, Math.min(26, Math.floor(Math.min(250 / nin[1], 190 / nin[0]))));
  const ocell = Math.max(14, Math.min(30, Math.floor(Math.min(160 / nout[1], 190 / nout[0]))));
  const ox = nin[1] * cell + 40;
  const inMax = Math.max(1e-12, ...a.input.flat().filter((v) => v !== null).map(Math.abs));
  const outMax = Math.max(1e-12, ...a.sums.flat().map(Math.abs));
  const total = nout[0] * nout[1];
  let step = 0, playing = true;
  function draw() {
    const i = Math.floor(step / nout[1]), j = step % nout[1];
    g.clearRect(0, 0, canvas.width, canvas.height);
    g.font = `${Math.min(11, cell - 3)}px system-ui`;
    g.textAlign = "center"; g.textBaseline = "middle";
    a.input.forEach((row, r) => row.forEach((v, c) => {
      g.fillStyle = v === null ? "#ddd" : colour(v / inMax);
      g.fillRect(c * cell, r * cell, cell - 1, cell - 1);
    }));
    const top = i * a.stride[0], left = j * a.stride[1];
    for (let u = 0; u < kh; u++) for (let v = 0; v < kw; v++) {
      const r = top + u * a.dilation[0], c = left + v * a.dilation[1];
      g.strokeStyle = "#ffb000"; g.lineWidth = 2;
      g.strokeRect(c * cell + 1, r * cell + 1, cell - 3, cell - 3);
    }
    for (let r = 0; r < nout[0]; r++) for (let c = 0; c < nout[1]; c++) {
      const k = r * nout[1] + c;
      g.fillStyle = k <= step ? colour(a.sums[r][c] / outMax) : "#f2f3f6";
      g.fillRect(ox + c * ocell, r * ocell, ocell - 1, ocell - 1);
      if (k <= step && ocell >= 26) {
        g.fillStyle = "#1d2330"; g.font = "9px system-ui";
        g.fillText(fmt4(a.sums[r][c]).slice(0, 5), ox + c * ocell + ocell / 2, r * ocell + ocell / 2);
      }
    }
    g.strokeStyle = "#1d2330"; g.lineWidth = 2;
    g.strokeRect(ox + a.unit[1] * ocell, a.unit[0] * ocell, ocell - 1, ocell - 1);
    g.strokeStyle = "#ffb000";
    g.strokeRect(ox + j * ocell + 1, i * ocell + 1, ocell - 3, ocell - 3);
    $("ep-anim-step").innerHTML = `output (${a.rows[i]}, ${a.cols[j]}): channel ${a.channel}'s sum ${num(a.sums[i][j])}`;
  }
  draw();
  timer = setInterval(() => { if (playing) { step = (step + 1) % total; draw(); } }, 650);
  $("ep-play").addEventListener("click", () => { playing = !playing; $("ep-play").textContent = playing ? "Pause" : "Play"; });
}

function denseSection(e) {
  let html = `<p class="caption">w<sub>i</sub> × x<sub>i</sub> over ${e.x ? e.x.length : e.top.length + e.rest_count} inputs of ` +
    `<b>${escapeHtml(e.input_layer)}</b>, the largest first.</p><table class="ep-table"><tr><th>input</th><th>x</th><th>w</th><th>w × x</th></tr>`;
  for (const t of e.top) {
    const where = t.source_index ? ` <span class="dim">(${t.source_index.join(", ")})</span>` : "";
    html += `<tr class="term"><td>${t.input}${where}</td><td>${num(t.x)}</td><td>${num(t.w)}</td><td>${num(t.term, "term")}</td></tr>`;
  }
  if (e.rest_count) html += `<tr><td colspan="3">the other ${e.rest_count} inputs</td><td>${num(e.rest, "rest")}</td></tr>`;
  html += `<tr><td colspan="3">bias</td><td>${num(e.bias, "bias")}</td></tr></table>`;
  html += equation(["sum + bias =", num(e.pre_activation, "pre")]) + activationLine(e);
  return html;
}

function convTransposeSection(e) {
  const sc = e.scatter;
  let html = `<p class="caption">A transposed conv scatters: input pixel (i, j) of <b>${escapeHtml(e.input_layer)}</b> adds ` +
    `x × kernel[u, v] to output (i·${sc.stride[0]} − ${sc.padding[0]} + u·${sc.dilation[0]}, j·${sc.stride[1]} − ${sc.padding[2]} + v·${sc.dilation[1]})` +
    `${e.groups > 1 ? ` (group ${e.group} of ${e.groups})` : ""}. ${e.sources.length} input pixels land on this unit.</p>` +
    `<table class="ep-table"><tr><th>input (i, j)</th><th>kernel offset (u, v)</th><th>Σ over channels of x × w</th></tr>`;
  for (const s of e.sources.slice(0, 16)) {
    html += `<tr class="source"><td>(${s.input.join(", ")})</td><td>(${s.offset.join(", ")})</td><td>${num(s.sum)}</td></tr>`;
  }
  if (e.sources.length > 16) html += `<tr><td colspan="3">… and ${e.sources.length - 16} more</td></tr>`;
  html += `</table>`;
  const parts = e.top.map((t) => `<span class="restlab">ch ${t.channel}</span> ${num(t.term, "term")}`);
  if (e.rest_count) parts.push(`<span class="restlab">(the other ${e.rest_count} channels)</span> ${num(e.rest, "rest")}`);
  const sum = e.pre_activation - e.bias;
  if (parts.length) html += equation(["per input channel:", parts.join(" + "), "=", num(sum, "sum")]);
  html += equation(["sum", num(sum), "+ bias", num(e.bias, "bias"), "=", num(e.pre_activation, "pre")]) + activationLine(e);
  return html;
}

function upsampleSection(e) {
  let html = `<p class="caption">${escapeHtml(e.mode)} interpolation${e.align_corners ? " (align_corners)" : ""} of ` +
    `<b>${escapeHtml(e.input_layer)}</b>: a weighted sum of its source pixels, the weights summing to 1.</p>` +
    `<table class="ep-table"><tr><th>input (row, col, channel)</th><th>weight</th><th>x</th><th>weight × x</th></tr>`;
  for (const s of e.sources) {
    html += `<tr class="source"><td>(${s.input.join(", ")})</td><td>${num(s.weight)}</td><td>${num(s.x)}</td><td>${num(s.product, "term")}</td></tr>`;
  }
  return html + `</table>` + equation(["sum =", num(e.result, "result")]);
}

function maxUnpoolSection(e) {
  if (!e.sources.length) {
    return `<p class="caption">No pooling window's maximum came from this cell (switch ${e.switch}), so unpooling leaves 0.</p>` +
      equation(["=", num(e.result, "result")]);
  }
  return `<p class="caption">Unpooling sends each pooled value of <b>${escapeHtml(e.input_layer)}</b> back to where its maximum ` +
    `was; these pooled cells have switch ${e.switch} (this cell).</p>` +
    equation([e.sources.map((s) => `(${s.input.join(", ")}) ${num(s.x)}`).join(" + "), "=", num(e.result, "result")]);
}

function poolSection(e) {
  const w = e.window;
  const mark = e.kind === "max_pool" ? e.argmax : null;
  let html = `<p class="caption">The ${e.patch.length}×${e.patch[0].length} window at rows ${w.rows[0]}…${w.rows[w.rows.length - 1]}, ` +
    `columns ${w.cols[0]}…${w.cols[w.cols.length - 1]} of channel ${e.index[2]} of <b>${escapeHtml(e.input_layer)}</b>.</p>` + grid(e.patch, { mark });
  if (e.kind === "max_pool") html += equation(["max =", num(e.max, "result"), `at window cell (${e.argmax.join(", ")})`]);
  else html += equation(["mean = sum", num(e.sum), "/", num(e.divisor), "=", num(e.result, "result"),
    e.count_include_pad ? "(padded cells count as zeros)" : ""]);
  return html;
}

function softmaxSection(s, k, classes) {
  const order = s.probs.map((p, i) => i).sort((a, b) => s.probs[b] - s.probs[a]).slice(0, 10);
  if (!order.includes(k)) order.push(k);
  let html = `<p class="caption">softmax: p<sub>i</sub> = exp(z<sub>i</sub> − ${fmt4(s.shift)}) / Σ<sub>j</sub> exp(z<sub>j</sub> − ${fmt4(s.shift)})` +
    ` (the largest logit is subtracted first, which leaves p unchanged).</p>` +
    `<table class="ep-table softmax"><tr><th>class</th><th>logit z</th><th>exp</th><th>p</th></tr>`;
  for (const i of order) {
    const name = classes && classes[i] !== undefined ? escapeHtml(classes[i]) : i;
    html += `<tr${i === k ? ' class="mark"' : ""}><td>${name}</td><td>${num(s.logits[i])}</td><td>${num(s.exps[i])}</td><td>${num(s.probs[i])}</td></tr>`;
  }
  html += `</table>` + equation([`p(${classes && classes[k] !== undefined ? escapeHtml(classes[k]) : k}) =`, num(s.exps[k]), "/",
    num(s.sum, "sum"), "=", num(s.probs[k], "prob")]);
  return html;
}

function render(e, model) {
  const classes = model ? model.classes : null;
  let html = `<div class="ep-value">${escapeHtml(e.layer)} <span class="ltype">${escapeHtml(e.type)}</span> ` +
    `(${e.index.join(", ")}) = ${num(e.value, "value")} <span class="dim">[${e.kind}]</span></div>`;
  switch (e.kind) {
    case "conv": html += convSection(e); break;
    case "dense": html += denseSection(e); break;
    case "conv_transpose": html += convTransposeSection(e); break;
    case "upsample": html += upsampleSection(e); break;
    case "max_unpool": html += maxUnpoolSection(e); break;
    case "batch_norm":
      html += `<p class="caption">Batch norm with the running statistics of channel ${e.index[e.index.length - 1]}:</p>` +
        equation(["(x − mean) / √(var + eps) × γ + β ="]) +
        equation(["(", num(e.x, "x"), "−", num(e.mean), ") / √(", num(e.var), "+", num(e.eps), ") ×", num(e.gamma), "+", num(e.beta),
          "=", num(e.normalized), "×", num(e.gamma), "+", num(e.beta), "=", num(e.pre_activation, "pre")]) + activationLine(e);
      break;
    case "relu": case "leaky_relu": case "sigmoid": case "tanh":
      if (e.add) html += equation(["x =", e.add.operands.map((o) => `${escapeHtml(o.layer)} ${num(o.value)}`).join(" + "), "=", num(e.add.result), "(residual sum)"]);
      html += equation([`${e.kind}(x) = ${e.kind}(`, num(e.x, "x"), ") =", num(e.result, "result")]);
      if (e.kind === "relu") html += `<p class="caption">ReLU keeps a positive input and turns a negative one into 0.</p>`;
      break;
    case "max_pool": case "avg_pool": html += poolSection(e); break;
    case "global_avg_pool":
      html += `<p class="caption">The mean of channel ${e.index[0]}'s whole map of ${escapeHtml(e.input_layer)}:</p>` + grid(e.patch) +
        equation(["sum", num(e.sum), "/", num(e.divisor), "=", num(e.result, "result")]);
      break;
    case "global_max_pool":
      html += grid(e.patch, { mark: e.argmax }) + equation(["max =", num(e.max, "result")]);
      break;
    case "add":
      html += equation([e.operands.map((o) => `${escapeHtml(o.layer)} ${num(o.value)}`).join(" + "), "=", num(e.pre_activation ?? e.result, "pre")]) +
        (e.activation ? equation(["relu →", num(e.result, "result")]) : "");
      break;
    case "concat": {
      const o = e.operands[e.operand];
      html += `<p class="caption">Concatenation along axis ${e.axis} of ` +
        e.operands.map((p) => `${escapeHtml(p.layer)} [${p.start}, ${p.stop})`).join(", ") + `.</p>` +
        equation([`this unit is ${escapeHtml(o.layer)} at (${e.operand_index.join(", ")}) =`, num(e.result, "result")]);
      break;
    }
    case "flatten": html += equation([`element (${e.source_index.join(", ")}) of ${escapeHtml(e.input_layer)} =`, num(e.result, "result")]); break;
    case "identity": html += equation([`the input (${escapeHtml(e.input_layer)}) unchanged =`, num(e.result, "result")]); break;
    case "softmax": html += softmaxSection(e, e.index[0], classes); break;
    case "local_response_norm":
      html += equation(["x / (k + α/n · Σx²)^β =", num(e.x), "/ (", num(e.k), "+", num(e.alpha), "/", e.size, "· Σx²)^", num(e.beta), "=", num(e.result, "result")]);
      break;
    default: html += `<p class="caption">computed by ${escapeHtml(e.op || "an op")}, which has no explanation yet.</p>`;
  }
  if (e.softmax) html += `<h3>The class scores' softmax</h3>` + softmaxSection(e.softmax, e.index[0], classes);
  const rf = e.receptive_field;
  if (rf && rf.box_in_image) {
    // past an upsampling the field sits between the input's pixels: fractional rows and columns
    const [t, l, b, r] = rf.box_in_image.map((v) => (Number.isInteger(v) ? v : fmt4(v)));
    html += `<p class="caption">Receptive field: ${rf.size[0]}×${rf.size[1]} input pixels, rows ${t}…${b}, columns ${l}…${r}.</p>`;
  }
  if (e.folded_batch_norm) html += `<p class="caption">Batch norm ${escapeHtml(e.folded_batch_norm)} is folded into this conv's weights and bias.</p>`;
  return html;
}

// ------------------------------------------------------------------------------------------ backward
function backwardSection(model) {
  const options = (model ? model.classes : []).map((c, i) => `<option value="${i}">${escapeHtml(c)}</option>`).join("");
  return `<section class="backward"><h3>The backward pass</h3>
    <div class="controls small"><label>gradient of the score of class <select id="ep-target"><option value="">the predicted class</option>${options}</select></label>
    <button type="button" id="ep-backward">Show gradients</button></div><div id="ep-grad"></div></section>`;
}

function wireBackward() {
  $("ep-backward").addEventListener("click", showBackward);
  $("ep-target").addEventListener("change", () => { if ($("ep-grad").innerHTML) showBackward(); });
}

export async function showBackward() {
  const { key, layer, index, model } = current;
  const box = $("ep-grad");
  box.innerHTML = `<p class="caption">running the backward pass…</p>`;
  panel.dataset.grad = "loading";
  try {
    const q = { input: key, layer, index: index.join(","), maps: 6 };
    if ($("ep-target").value !== "") q.target = $("ep-target").value;
    const g = await getJSON("/api/gradient", q);
    let html = `<p class="caption">Backprop from the score (logit) of class <b>${escapeHtml(g.target_name)}</b> = ${num(g.score_value)}: ` +
      `d score / d unit = ${num(g.grad, "grad")}.</p>`;
    if (g.weight_grad !== undefined) {
      html += equation(["gradient at the unit before its activation:", num(g.pre_activation_grad), "· bias gradient", num(g.bias_grad)]);
      html += `<table class="ep-table"><tr><th>weight</th><th>value</th><th>d score/d w through this unit</th><th>d score/d w (all positions)</th></tr>` +
        g.top_weights.map((t) => `<tr class="tw"><td>(${t.index.join(", ")})</td><td>${num(t.weight)}</td><td>${num(t.grad_via_unit)}</td><td>${num(t.grad)}</td></tr>`).join("") +
        `</table><p class="caption">Through this unit each weight's gradient is the unit's gradient times the input it multiplied; ` +
        `over all positions the kernel visits these add up (the correlation of the input with the output's gradient).</p>`;
    }
    if (g.gamma_grad !== undefined) html += equation(["d score / d γ =", num(g.gamma_grad), "· d score / d β =", num(g.beta_grad)]);
    html += `<div class="gl">What backprop sends to every layer (blue negative, red positive; first maps of each)</div><div class="grad-layers">` +
      g.layers.map((L) => `<div class="grad-layer"><div class="gname">${escapeHtml(L.name)} <span class="dim">${fmt4(L.min)} … ${fmt4(L.max)}</span></div>` +
        L.maps.map((u) => `<img src="${u}" alt="gradient of ${escapeHtml(L.name)}"` +
          (L.grid ? ` style="width:${Math.min(320, 10 * L.grid[1])}px;height:${10 * L.grid[0]}px"` : "") + ">").join("") + `</div>`).join("") + `</div>`;
    box.innerHTML = html;
    panel.dataset.grad = "ready";
  } catch (err) {
    box.innerHTML = `<div class="error">${escapeHtml(err.message)}</div>`;
    panel.dataset.grad = "error";
  }
}
