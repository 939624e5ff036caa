// What every view of striate serve shares: the API's JSON (and its one-line errors), number
// formats, and drawing pictures and maps on a canvas with a unit's receptive field.

export const $ = (id) => document.getElementById(id);

// An answer of the API that is not 2xx: its one-line `error`, and the HTTP status.
export class ApiError extends Error {
  constructor(message, status) { super(message); this.name = "ApiError"; this.status = status; }
}

// fetch + JSON: resolves to the parsed body, or rejects with an ApiError whose message is the
// server's one line (or says that the server did not answer).
export async function api(url, options = {}) {
  let res;
  try {
    res = await fetch(url, options);
  } catch (e) {
    throw new ApiError(`the server did not answer (${e.message}). Is \`striate serve\` still running?`, 0);
  }
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) throw new ApiError((body && body.error) || `HTTP ${res.status}`, res.status);
  if (body === null) throw new ApiError(`the server's answer to ${url} is not JSON`, res.status);
  return body;
}

export const getJSON = (url, params) => api(params ? `${url}?${new URLSearchParams(params)}` : url);
export const postJSON = (url, doc) =>
  api(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(doc) });

export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
export function fmtShape(shape) { return shape.join("×"); }
export function fmtNum(v) {
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1000 || a < 0.01) return v.toExponential(1);
  return v.toFixed(a >= 10 ? 1 : 2);
}

// The input unit box seen by unit (row, col) of a layer whose field is
// {size: [h, w], jump: [h, w], start: [h, w]}: inclusive input rows r0..r1, columns c0..c1
// (they may reach into the padding: negative or past the input's edge).
export function fieldBox(field, row, col) {
  const r0 = field.start[0] + row * field.jump[0], c0 = field.start[1] + col * field.jump[1];
  return { r0, c0, r1: r0 + field.size[0] - 1, c1: c0 + field.size[1] - 1 };
}

// Draw `image` (an <img> of rows x cols values, or null) over the whole of `canvas`, one square
// per value, with a faint grid when the squares are large enough to tell apart.
export function drawMap(canvas, image, rows, cols, { background = "#000", grid = rows <= 32 } = {}) {
  const g = canvas.getContext("2d");
  g.imageSmoothingEnabled = false;
  g.fillStyle = background;
  g.fillRect(0, 0, canvas.width, canvas.height);
  if (image) g.drawImage(image, 0, 0, canvas.width, canvas.height);
  if (!grid) return;
  const sy = canvas.height / rows, sx = canvas.width / cols;
  g.strokeStyle = "rgba(255,255,255,0.08)";
  g.lineWidth = 1;
  for (let i = 1; i < rows; i++) { g.beginPath(); g.moveTo(0, i * sy + .5); g.lineTo(canvas.width, i * sy + .5); g.stroke(); }
  for (let j = 1; j < cols; j++) { g.beginPath(); g.moveTo(j * sx + .5, 0); g.lineTo(j * sx + .5, canvas.height); g.stroke(); }
}

// Outline a box of a rows x cols map drawn over the whole canvas: `box` is {r0, r1, c0, c1}
// (clipped to the map) or {whole: true} for a unit that sees everything.
export function outlineBox(canvas, rows, cols, box, colour = "#ffb000", fill = "rgba(255,176,0,0.22)") {
  const g = canvas.getContext("2d");
  g.lineWidth = 3;
  g.strokeStyle = colour;
  g.fillStyle = fill;
  if (box.whole) {
    g.fillRect(0, 0, canvas.width, canvas.height);
    g.strokeRect(1.5, 1.5, canvas.width - 3, canvas.height - 3);
    return;
  }
  const sy = canvas.height / rows, sx = canvas.width / cols;
  const x0 = Math.max(0, box.c0) * sx, y0 = Math.max(0, box.r0) * sy;
  const x1 = (Math.min(cols - 1, box.c1) + 1) * sx, y1 = (Math.min(rows - 1, box.r1) + 1) * sy;
  g.fillRect(x0, y0, x1 - x0, y1 - y0);
  g.strokeRect(x0 + 1.5, y0 + 1.5, x1 - x0 - 3, y1 - y0 - 3);
}
