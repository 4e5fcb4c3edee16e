// The sandbox's input mode: a draw pad and a file picker inside the sandbox document, so raw
// input exists only in the serving origin's isolated context. The embedding page (another
// origin) cannot read this document, sees none of its pointer events, and receives at most
// the model's outputs, and only when the user presses Send (sandbox.js posts them as
// `input-result`, when the parent asked for them in `init`): strokes and picks run here and
// show their result here, and post nothing. Built with DOM calls only: no innerHTML, nothing
// for Trusted Types to refuse.

import { el, keptNote, oneShot, onPick } from "./sandbox-ui.js";

const PAD_PX = 224;
const MAX_FILE_BYTES = 16 * 1024 * 1024;

/**
 * Shows the input UI for the model's single input.
 * @param {{ spec: {name: string, shape: (number|string|null)[]}, labels?: string[],
 *           run: (input: {name: string, data: Float32Array, shape: number[]}) => Promise<{outputs: Record<string, {data: Float32Array, shape: number[]}>}>,
 *           send: ((outputs: Record<string, {data: Float32Array, shape: number[]}>) => void) | null }} options
 *   run: runs the engine on the input and returns its outputs.
 *   send: posts outputs to the app (sandbox.js); null when nothing may be sent (report: false).
 */
export function mountInput({ spec, labels, run, send }) {
  const out = el("output", { className: "in-out", dataset: { role: "result" } });
  const pick = el("input", { type: "file", accept: ".npy,.json,.csv,.txt", dataset: { role: "file" } });
  const box = el("section", { className: "in-box", dataset: { role: "input" } }, keptNote("Your input", send !== null));
  const runs = oneShot(box, send);
  const fixed = spec.shape.map((d) => (typeof d === "number" ? d : null));
  const dims = fixed.slice(-2);
  let pad = null;
  if (dims.length === 2 && dims.every((x) => Number.isInteger(x) && x <= 64)) {
    pad = new Pad(dims[0], dims[1], () => submit(pad.grid()));
    const clear = el("button", { type: "button", className: "in-btn", dataset: { role: "clear" } }, "Clear");
    const again = el("button", { type: "button", className: "in-btn in-primary", dataset: { role: "run" } }, "Run");
    clear.addEventListener("click", () => { pad.clear(); out.value = ""; runs.drop(); });
    again.addEventListener("click", () => submit(pad.grid()));
    box.append(el("div", { className: "in-row" }, pad.canvas,
      el("div", { className: "in-col" }, again, clear, el("label", {}, "or a file (.npy, .json, .csv): ", pick))));
  } else {
    box.append(el("label", {}, "Input file (.npy float32, .json or .csv numbers): ", pick));
  }
  box.append(out);
  if (runs.sendRow) box.append(runs.sendRow);
  onPick(pick, async (file) => {
    try {
      submit(await readNumbers(file));
    } catch (e) {
      out.value = `cannot use this file: ${e.message}`;
    }
  });
  document.body.append(box);
  document.documentElement.dataset.ui = "input";

  function submit(flat) {
    if (!flat) return;
    const per = fixed.reduce((a, b) => a * (b ?? 1), 1);
    if (flat.length === 0 || flat.length % per !== 0) {
      out.value = `the input has ${flat.length} values; the model wants a multiple of ${per}`;
      return;
    }
    // At most one free dimension (the batch) absorbs the rest.
    const shape = fixed.map((d) => d ?? flat.length / per);
    const data = Float32Array.from(flat);
    runs.run(async () => {
      out.value = "running…";
      const r = await run({ name: spec.name, data, shape });
      out.value = describe(r.outputs, labels);
      return [r.outputs];
    }, (e) => { out.value = e?.message ?? String(e); });
  }
}

function describe(outputs, labels) {
  const [name, o] = Object.entries(outputs)[0] ?? [];
  if (!o) return "";
  if (labels && labels.length === o.data.length) {
    let best = 0;
    for (let i = 1; i < o.data.length; i++) if (o.data[i] > o.data[best]) best = i;
    return `${name}: ${labels[best]} (${(o.data[best] * 100).toFixed(1)}%)`;
  }
  const head = Array.from(o.data.slice(0, 8), (v) => v.toPrecision(4)).join(", ");
  return `${name}: [${o.shape.join(", ")}] ${head}${o.data.length > 8 ? ", …" : ""}`;
}

/** A canvas the user draws on; the strokes become an h x w grid of ink coverage in [0, 1]. */
class Pad {
  constructor(h, w, onStroke) {
    this.h = h;
    this.w = w;
    this.strokes = [];
    this.canvas = el("canvas", { className: "in-pad", width: PAD_PX, height: PAD_PX, dataset: { role: "pad" } });
    const g = this.canvas.getContext("2d");
    let drawing = false;
    const pt = (ev) => {
      const r = this.canvas.getBoundingClientRect();
      return { x: (ev.clientX - r.left) / r.width, y: (ev.clientY - r.top) / r.height };
    };
    this.paint = () => {
      const c = this.canvas;
      g.clearRect(0, 0, c.width, c.height);
      Object.assign(g, { lineCap: "round", lineJoin: "round", strokeStyle: "#111827", lineWidth: c.width * 0.075 });
      for (const s of this.strokes) {
        g.beginPath();
        s.forEach((p, i) => (i ? g.lineTo(p.x * c.width, p.y * c.height) : g.moveTo(p.x * c.width, p.y * c.height)));
        if (s.length === 1) g.lineTo(s[0].x * c.width + 0.5, s[0].y * c.height);
        g.stroke();
      }
    };
    this.canvas.addEventListener("pointerdown", (ev) => {
      ev.preventDefault();
      this.canvas.setPointerCapture(ev.pointerId);
      drawing = true;
      this.strokes.push([pt(ev)]);
      this.paint();
    });
    this.canvas.addEventListener("pointermove", (ev) => {
      if (!drawing) return;
      this.strokes[this.strokes.length - 1].push(pt(ev));
      this.paint();
    });
    const end = () => {
      if (!drawing) return;
      drawing = false;
      onStroke();
    };
    this.canvas.addEventListener("pointerup", end);
    this.canvas.addEventListener("pointercancel", end);
  }

  clear() {
    this.strokes = [];
    this.paint();
  }

  /** optdigits-style: fit the strokes to the grid, count inked sub-pixels per cell. */
  grid() {
    const pts = this.strokes.flat();
    if (!pts.length) return null;
    const { h, w } = this;
    const S = 4; // sub-pixels per cell
    const W = w * S, H = h * S, pen = Math.max(1, Math.round(Math.min(W, H) * 0.16));
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const p of pts) { x0 = Math.min(x0, p.x); x1 = Math.max(x1, p.x); y0 = Math.min(y0, p.y); y1 = Math.max(y1, p.y); }
    const s = (Math.min(W, H) - pen) / Math.max(x1 - x0, y1 - y0, 0.05);
    const ox = (W - (x1 - x0) * s) / 2, oy = (H - (y1 - y0) * s) / 2;
    const c = new OffscreenCanvas(W, H);
    const k = c.getContext("2d", { willReadFrequently: true });
    Object.assign(k, { lineCap: "round", lineJoin: "round", lineWidth: pen, strokeStyle: "#000" });
    for (const st of this.strokes) {
      k.beginPath();
      st.forEach((p, i) => (i ? k.lineTo : k.moveTo).call(k, ox + (p.x - x0) * s, oy + (p.y - y0) * s));
      if (st.length === 1) k.lineTo(ox + (st[0].x - x0) * s + 0.01, oy + (st[0].y - y0) * s);
      k.stroke();
    }
    const a = k.getImageData(0, 0, W, H).data;
    const out = new Array(h * w).fill(0);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if (a[(y * W + x) * 4 + 3] > 127) out[Math.floor(y / S) * w + Math.floor(x / S)] += 1 / (S * S);
    return out;
  }
}

/** A picked file's numbers: .npy (C order; f4, f8, i4, i8, u1), .json (nested arrays) or text. */
async function readNumbers(file) {
  if (file.size > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES} bytes`);
  const buf = await file.arrayBuffer();
  let data;
  if (/\.npy$/i.test(file.name)) data = parseNpy(buf);
  else {
    const text = new TextDecoder().decode(buf);
    data = /\.json$/i.test(file.name) ? [JSON.parse(text)].flat(Infinity) : text.split(/[\s,;]+/).filter(Boolean).map(Number);
  }
  if (!data.length || data.some((v) => typeof v !== "number" || !Number.isFinite(v))) throw new Error("the file must hold finite numbers");
  return data;
}

function parseNpy(buf) {
  const b = new Uint8Array(buf);
  if (b.length < 10 || b[0] !== 0x93 || String.fromCharCode(...b.slice(1, 6)) !== "NUMPY") throw new Error("not an .npy file");
  const major = b[6];
  const hlen = major === 1 ? b[8] | (b[9] << 8) : new DataView(buf).getUint32(8, true);
  const off = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(b.slice(off, off + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error("Fortran-order arrays are not supported");
  const views = { "<f4": Float32Array, "<f8": Float64Array, "<i4": Int32Array, "|u1": Uint8Array, "<i8": BigInt64Array };
  const V = views[descr];
  if (!V) throw new Error(`unsupported dtype ${descr}`);
  const body = buf.slice(off + hlen);
  if (body.byteLength % V.BYTES_PER_ELEMENT) throw new Error("truncated data");
  return Array.from(new V(body), Number);
}
