// The demo page: draw a digit, run it through the sandboxed engine, show the probabilities
// and what the runtime reports about itself. Uses only the public client API.
import { SecureContext, pageIsolation } from "./secure-context.js";

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const pad = /** @type {HTMLCanvasElement} */ ($("pad"));
const preview = /** @type {HTMLCanvasElement} */ ($("preview"));
const barsEl = $("bars");
const LABELS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/** @type {SecureContext | null} */
let ctx = null;
let labels = LABELS;

// ------------------------------------------------------------------ bars

const bars = LABELS.map((label) => {
  const li = document.createElement("li");
  const name = document.createElement("span");
  name.className = "bar-label";
  name.textContent = label;
  const track = document.createElement("span");
  track.className = "bar-track";
  const fill = document.createElement("span");
  fill.className = "bar-fill";
  track.append(fill);
  const pct = document.createElement("span");
  pct.className = "bar-pct";
  pct.textContent = "–";
  li.append(name, track, pct);
  barsEl.append(li);
  return { li, name, fill, pct };
});

function showProbabilities(p) {
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
  bars.forEach((b, i) => {
    const v = p[i] ?? 0;
    b.fill.style.width = `${(v * 100).toFixed(2)}%`; // CSSOM, allowed by style-src 'self'
    b.pct.textContent = `${(v * 100).toFixed(1)}%`;
    b.li.classList.toggle("winner", i === best);
    b.name.textContent = labels[i] ?? String(i);
  });
  $("top-digit").textContent = labels[best] ?? String(best);
  $("top-digit").classList.add("has-value");
  const conf = p[best];
  $("top-label").textContent = conf > 0.9 ? `That's a ${labels[best]}.` : conf > 0.6 ? `Probably a ${labels[best]}.` : `Maybe a ${labels[best]}?`;
  $("top-conf").textContent = `${(conf * 100).toFixed(1)}% confident`;
  document.body.dataset.prediction = labels[best] ?? String(best);
}

function resetProbabilities() {
  bars.forEach((b) => {
    b.fill.style.width = "0%";
    b.pct.textContent = "–";
    b.li.classList.remove("winner");
  });
  $("top-digit").textContent = "?";
  $("top-digit").classList.remove("has-value");
  $("top-label").textContent = "Waiting for a drawing";
  $("top-conf").textContent = "Probabilities for every class appear below.";
  $("latency").textContent = "";
  delete document.body.dataset.prediction;
}

// ------------------------------------------------------------------ drawing pad

const g = /** @type {CanvasRenderingContext2D} */ (pad.getContext("2d", { willReadFrequently: true }));
let drawing = false;
let inked = false;
let last = null;
/** Pen width in the model's 32x32 box. */
const PEN = 5;
/** The strokes as drawn, in pad pixels: the model input is rendered from these. */
/** @type {{x: number, y: number}[][]} */
let strokes = [];

function sizePad() {
  const rect = pad.getBoundingClientRect();
  const dpr = Math.min(window.devicePixelRatio || 1, 3);
  const w = Math.round(rect.width * dpr);
  if (w > 0 && pad.width !== w) {
    pad.width = w;
    pad.height = w;
    repaint(); // resizing a canvas wipes it: paint the strokes again at the new size
  }
}

function penStyle() {
  g.lineCap = "round";
  g.lineJoin = "round";
  g.strokeStyle = "#111827";
  g.lineWidth = pad.width * 0.075;
}

function repaint() {
  g.clearRect(0, 0, pad.width, pad.height);
  penStyle();
  for (const stroke of strokes) {
    g.beginPath();
    stroke.forEach((p, i) => (i === 0 ? g.moveTo : g.lineTo).call(g, p.x * pad.width, p.y * pad.height));
    if (stroke.length === 1) g.lineTo(stroke[0].x * pad.width + 0.01, stroke[0].y * pad.height);
    g.stroke();
  }
}

function clearPad() {
  g.clearRect(0, 0, pad.width, pad.height);
  strokes = [];
  inked = false;
  pad.parentElement.classList.remove("inked");
  const p = preview.getContext("2d");
  p.clearRect(0, 0, 8, 8);
  resetProbabilities();
}

function point(ev) {
  const r = pad.getBoundingClientRect();
  return { x: ((ev.clientX - r.left) / r.width) * pad.width, y: ((ev.clientY - r.top) / r.height) * pad.height };
}

function strokeTo(p) {
  penStyle();
  g.beginPath();
  g.moveTo(last.x, last.y);
  g.lineTo(p.x + 0.01, p.y);
  g.stroke();
  last = p;
  strokes[strokes.length - 1]?.push({ x: p.x / pad.width, y: p.y / pad.height });
}

pad.addEventListener("pointerdown", (ev) => {
  ev.preventDefault();
  pad.setPointerCapture(ev.pointerId);
  drawing = true;
  last = point(ev);
  strokes.push([]);
  strokeTo(last);
  if (!inked) {
    inked = true;
    pad.parentElement.classList.add("inked");
  }
});
pad.addEventListener("pointermove", (ev) => {
  if (!drawing) return;
  ev.preventDefault();
  for (const e of ev.getCoalescedEvents?.() ?? [ev]) strokeTo(point(e));
  schedulePredict();
});
const endStroke = () => {
  if (!drawing) return;
  drawing = false;
  schedulePredict(true);
};
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
$("clear").addEventListener("click", clearPad);
window.addEventListener("resize", sizePad);

/**
 * The drawing as the model's input, made the way the UCI optdigits data behind sklearn's
 * load_digits was: the digit scaled so its longer side fills a 32x32 box and centred, then
 * the inked pixels of each 4x4 block counted (0..16) and divided by 16. The strokes are
 * re-drawn at the dataset's pen width (about 5 px of 32) whatever size they were drawn at.
 * @returns {Float32Array | null} 64 values in [0, 1], row-major
 */
function toModelInput() {
  const pts = strokes.flat();
  if (pts.length === 0) return null;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const p of pts) {
    x0 = Math.min(x0, p.x); x1 = Math.max(x1, p.x);
    y0 = Math.min(y0, p.y); y1 = Math.max(y1, p.y);
  }
  const w = x1 - x0;
  const h = y1 - y0;
  const s = (32 - PEN) / Math.max(w, h, 0.05);
  const ox = (32 - w * s) / 2;
  const oy = (32 - h * s) / 2;
  const c = document.createElement("canvas");
  c.width = 32;
  c.height = 32;
  const k = /** @type {CanvasRenderingContext2D} */ (c.getContext("2d", { willReadFrequently: true }));
  k.lineCap = "round";
  k.lineJoin = "round";
  k.lineWidth = PEN;
  k.strokeStyle = "#000";
  for (const stroke of strokes) {
    k.beginPath();
    stroke.forEach((p, i) => {
      const x = ox + (p.x - x0) * s;
      const y = oy + (p.y - y0) * s;
      if (i === 0) k.moveTo(x, y);
      else k.lineTo(x, y);
    });
    if (stroke.length === 1) k.lineTo(ox + (stroke[0].x - x0) * s + 0.01, oy + (stroke[0].y - y0) * s);
    k.stroke();
  }
  const alpha = k.getImageData(0, 0, 32, 32).data;
  const input = new Float32Array(64);
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      if (alpha[(y * 32 + x) * 4 + 3] > 127) input[(y >> 2) * 8 + (x >> 2)] += 1 / 16;
    }
  }
  return input;
}

function drawPreview(input) {
  const p = /** @type {CanvasRenderingContext2D} */ (preview.getContext("2d"));
  const img = p.createImageData(8, 8);
  for (let i = 0; i < 64; i++) {
    const v = Math.round(255 - input[i] * 255 * 0.92);
    img.data.set([v, v, Math.min(255, v + 6), 255], i * 4);
  }
  p.putImageData(img, 0, 0);
}

// ------------------------------------------------------------------ predicting

let inFlight = false;
let again = false;
let timer = 0;

function schedulePredict(now = false) {
  clearTimeout(timer);
  timer = setTimeout(predict, now ? 0 : 120);
}

async function predict() {
  if (!ctx || !inked) return;
  if (inFlight) {
    again = true;
    return;
  }
  const input = toModelInput();
  if (!input) return;
  drawPreview(input);
  inFlight = true;
  try {
    const out = await ctx.run({ input: { data: input, shape: [1, 1, 8, 8] } });
    if (inked) showProbabilities(out.probabilities.data);
    const t = out.timings;
    $("latency").textContent = `${fmtMs(t.roundTripMs)} round trip`;
    $("st-t-compute").textContent = fmtMs(t.computeMs);
    $("st-t-rtt").textContent = fmtMs(t.roundTripMs);
    document.body.dataset.runs = String(Number(document.body.dataset.runs ?? 0) + 1);
  } catch (e) {
    showError(e);
  } finally {
    inFlight = false;
    if (again) {
      again = false;
      schedulePredict(true);
    }
  }
}

// ------------------------------------------------------------------ status

function fmtMs(ms) {
  if (typeof ms !== "number" || !isFinite(ms)) return "–";
  return ms < 10 ? `${ms.toFixed(2)} ms` : ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

function fmtBytes(n) {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function check(id, ok, yes, no) {
  const el = $(id);
  el.textContent = ok ? yes : no;
  el.dataset.ok = ok ? "yes" : "no";
}

function fmtTensor(t) {
  if (!t) return "–";
  const dims = t.shape ? t.shape.map((d) => (d === null ? "?" : String(d))).join(", ") : "?";
  return `${t.name}: ${t.elementType}[${dims}]`;
}

async function refreshStatus() {
  if (!ctx) return;
  const s = await ctx.status();
  const iso = s.isolation;
  check("st-page", iso.page.crossOriginIsolated, "Cross-origin isolated", "Not isolated");
  check("st-frame", iso.sandbox.crossOriginIsolated, "Cross-origin isolated", "Not isolated");
  check("st-worker", !!iso.worker?.crossOriginIsolated, "Cross-origin isolated", "Not isolated");
  check("st-sab", !!iso.worker?.sharedArrayBuffer, "Available", "Unavailable (single-threaded)");
  const pill = $("iso-pill");
  pill.dataset.ok = iso.mode === "isolated" ? "yes" : "no";
  pill.textContent = iso.mode === "isolated" ? "Isolated sandbox" : "Single-threaded sandbox";
  pill.title = iso.note;
  if (s.model) {
    $("st-model").textContent = `${s.model.file} · ${fmtBytes(s.model.size)}`;
    $("st-digest").textContent = `${s.model.sha256.slice(0, 12)}…${s.model.sha256.slice(-6)}`;
    $("st-digest").title = s.model.sha256;
    check("st-verified", s.model.verified, "Verified (SRI + SHA-256)", "Not verified");
    $("st-source").textContent = s.model.source === "cache" ? "Cache (re-verified)" : "Network";
    if (s.model.labels?.length === 10) labels = s.model.labels;
  }
  $("st-engine").textContent = s.engine?.version ?? "–";
  $("st-input").textContent = fmtTensor(s.graph?.inputs?.[0]);
  $("st-output").textContent = fmtTensor(s.graph?.outputs?.[0]);
  $("st-dropped").textContent = `${s.counters.dropped + s.client.dropped} dropped · ${s.counters.rejected} rejected`;
  const t = s.timings;
  $("st-t-fetch").textContent = fmtMs((t.manifestMs ?? 0) + (t.downloadMs ?? t.cacheReadMs ?? 0) + (t.verifyMs ?? 0));
  $("st-t-load").textContent = fmtMs((t.engineInitMs ?? 0) + (t.graphLoadMs ?? 0) + (t.warmupMs ?? 0));
  document.body.dataset.status = JSON.stringify({
    page: iso.page, sandbox: iso.sandbox, worker: iso.worker, mode: iso.mode,
    sha256: s.model?.sha256, verified: s.model?.verified, engine: s.engine?.version,
  });
}

function showError(e) {
  const el = $("error");
  el.hidden = false;
  el.textContent = e?.code ? `${e.message} (${e.code})` : String(e?.message ?? e);
  document.body.dataset.error = e?.code ?? "error";
}

function onProgress(p) {
  const bar = /** @type {HTMLProgressElement} */ ($("progress"));
  const label = $("progress-label");
  if (p.phase === "download" && p.total) {
    bar.value = p.loaded / p.total;
    label.textContent = `Downloading the model… ${fmtBytes(p.loaded)} of ${fmtBytes(p.total)}`;
  } else if (p.phase === "verify") {
    label.textContent = "Verifying the model's SHA-256…";
  } else if (p.phase === "cache") {
    bar.value = 1;
    label.textContent = "Model found in the cache; re-verifying…";
  } else if (p.phase === "graph") {
    bar.removeAttribute("value");
    label.textContent = "Compiling the engine and loading the graph…";
  } else if (p.phase === "manifest") {
    label.textContent = "Reading the model manifest…";
  }
}

// ------------------------------------------------------------------ start

async function start() {
  const iso = pageIsolation();
  check("st-page", iso.crossOriginIsolated, "Cross-origin isolated", "Not isolated");
  const frame = document.createElement("iframe");
  frame.setAttribute("sandbox", "allow-scripts allow-same-origin");
  frame.setAttribute("allow", "cross-origin-isolated");
  frame.setAttribute("aria-hidden", "true");
  frame.tabIndex = -1;
  frame.title = "secure-context engine";
  frame.className = "engine-frame";
  frame.src = new URL("./sandbox.html", import.meta.url).href;
  document.body.append(frame);
  try {
    ctx = await SecureContext.open({ frame, model: "digits", onProgress });
    $("loading").hidden = true;
    document.body.dataset.state = "ready";
    await refreshStatus();
    if (inked) schedulePredict(true);
  } catch (e) {
    document.body.dataset.state = "error";
    $("progress-label").textContent = "The engine could not start.";
    showError(e);
  }
}

$("purge").addEventListener("click", async () => {
  if (!ctx) return;
  await ctx.purgeCache();
  $("st-source").textContent = "Network (cache cleared)";
});

setInterval(() => { if (ctx && document.visibilityState === "visible") refreshStatus().catch(() => {}); }, 5000);
sizePad();
start();
