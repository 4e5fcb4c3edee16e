// Declared pre- and post-processing: how raw input (an image's pixels, audio samples) becomes a
// model's input tensor, and how its outputs become a result (classes, boxes, a mask), as a
// manifest entry's `preprocess` / `postprocess` say. Pure functions on typed arrays, no DOM: the
// sandbox runs them on what the user picked or what the camera/microphone gave, so raw input
// never leaves it; node runs them in the tests against the same steps in numpy and Pillow.
//
// Image resizing is Pillow's BILINEAR (`Image.resize(size, Image.BILINEAR)`, what Hugging Face
// image processors and torchvision do on PIL images): a separable convolution with the triangle
// filter, widened by the downscale factor so that shrinking averages instead of aliasing. Done
// in float here; Pillow rounds each of its two passes to 8 bits, so the two agree within about
// one level of 255 (tests/media measures it).

import { checkProcessing } from "./processing.js";

/** @typedef {{data: Float32Array, shape: number[]}} Tensor */

/**
 * @typedef {object} ImageSpec
 * @property {[number, number]} size         [height, width] of the model's input
 * @property {"stretch"|"crop"|"letterbox"} [resize]  stretch to size (default); resize the
 *   shorter side to `shorter` then center-crop to size; or fit inside size and pad
 * @property {number} [shorter]              the shorter side before cropping (default: max(size))
 * @property {number} [scale]                multiply 0..255 values by this first (default 1/255)
 * @property {number[]} [mean]               per channel, subtracted after scaling (default 0)
 * @property {number[]} [std]                per channel, divided after (default 1)
 * @property {"rgb"|"bgr"|"gray"} [channels] (default rgb)
 * @property {"nchw"|"nhwc"} [layout]        (default nchw)
 * @property {number} [pad]                  0..255 value of letterbox padding (default 0)
 */

/** Checks an image spec (processing.json's `image`, with or without `kind`); defaults filled in. */
export function imageSpec(spec) {
  const s = checkProcessing("preprocess", { ...spec, kind: "image" });
  s.shorter ??= Math.max(...s.size);
  return s;
}

/**
 * RGBA pixels (as ImageData gives them) to the model's input tensor, batch 1.
 * @param {{data: Uint8ClampedArray|Uint8Array, width: number, height: number}} image
 * @param {ImageSpec} spec
 * @returns {Tensor}
 */
export function imageToTensor(image, spec) {
  const s = imageSpec(spec);
  const { width: iw, height: ih } = image;
  if (!isSide(iw) || !isSide(ih) || image.data.length !== iw * ih * 4) throw new Error("the image's pixels do not match its size");
  const [h, w] = s.size;
  const c = s.channels === "gray" ? 1 : 3;
  // One channel plane at a time (0..255, exact in f32), so a large photo costs one plane, not three.
  const fit = (p) => {
    if (s.resize === "stretch") return resize(p, iw, ih, w, h);
    if (s.resize === "crop") {
      const k = s.shorter / Math.min(iw, ih);
      const rw = Math.max(w, Math.round(iw * k)), rh = Math.max(h, Math.round(ih * k));
      return crop(resize(p, iw, ih, rw, rh), rw, rh, w, h);
    }
    const k = Math.min(w / iw, h / ih);
    const rw = Math.max(1, Math.round(iw * k)), rh = Math.max(1, Math.round(ih * k));
    return pad(resize(p, iw, ih, rw, rh), rw, rh, w, h, s.pad);
  };
  const planes = [];
  for (let ch = 0; ch < c; ch++) planes.push(fit(plane(image.data, iw * ih, s.channels, ch)));
  const out = new Float32Array(c * h * w);
  for (let ch = 0; ch < c; ch++) {
    const p = planes[ch], m = s.mean[ch], sd = s.std[ch];
    for (let i = 0; i < h * w; i++) {
      const v = (p[i] * s.scale - m) / sd;
      out[s.layout === "nchw" ? ch * h * w + i : i * c + ch] = v;
    }
  }
  return { data: out, shape: s.layout === "nchw" ? [1, c, h, w] : [1, h, w, c] };
}

const MAX_SIDE = 16384;

function isSide(v) { return Number.isInteger(v) && v >= 1 && v <= MAX_SIDE; }

/** ITU-R 601 luma, as Pillow's convert("L") uses (L = R*299/1000 + G*587/1000 + B*114/1000). */
const LUMA = [0.299, 0.587, 0.114];

/** Channel `ch` of the model's channel order, from RGBA pixels. */
function plane(rgba, n, channels, ch) {
  const p = new Float32Array(n);
  if (channels === "gray") {
    for (let i = 0; i < n; i++) p[i] = rgba[4 * i] * LUMA[0] + rgba[4 * i + 1] * LUMA[1] + rgba[4 * i + 2] * LUMA[2];
  } else {
    const k = channels === "bgr" ? 2 - ch : ch;
    for (let i = 0; i < n; i++) p[i] = rgba[4 * i + k];
  }
  return p;
}

/**
 * One plane (w x h, row-major) resized to ow x oh: Pillow's bilinear convolution, horizontal
 * pass first, in float.
 */
export function resize(plane, w, h, ow, oh) {
  if (w === ow && h === oh) return Float64Array.from(plane);
  const tmp = new Float64Array(ow * h);
  const cx = coefficients(w, ow);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < ow; x++) {
      const { start, k } = cx[x];
      let acc = 0;
      for (let j = 0; j < k.length; j++) acc += plane[y * w + start + j] * k[j];
      tmp[y * ow + x] = acc;
    }
  }
  const out = new Float64Array(ow * oh);
  const cy = coefficients(h, oh);
  for (let y = 0; y < oh; y++) {
    const { start, k } = cy[y];
    for (let x = 0; x < ow; x++) {
      let acc = 0;
      for (let j = 0; j < k.length; j++) acc += tmp[(start + j) * ow + x] * k[j];
      out[y * ow + x] = acc;
    }
  }
  return out;
}

/** For each output index: the first input index it reads and the normalized filter weights. */
function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const widen = Math.max(scale, 1);
  const support = widen; // the triangle's support (1) times the widening
  const out = [];
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const start = Math.max(Math.trunc(center - support + 0.5), 0);
    const end = Math.min(Math.trunc(center + support + 0.5), inSize);
    const k = [];
    let sum = 0;
    for (let x = start; x < end; x++) {
      const t = Math.abs((x - center + 0.5) / widen);
      const v = t < 1 ? 1 - t : 0;
      k.push(v);
      sum += v;
    }
    out.push({ start, k: k.map((v) => (sum ? v / sum : 0)) });
  }
  return out;
}

function crop(plane, w, h, cw, chh) {
  const x0 = Math.floor((w - cw) / 2), y0 = Math.floor((h - chh) / 2);
  const out = new Float64Array(cw * chh);
  for (let y = 0; y < chh; y++) out.set(plane.subarray((y0 + y) * w + x0, (y0 + y) * w + x0 + cw), y * cw);
  return out;
}

function pad(plane, w, h, pw, ph, value) {
  const x0 = Math.floor((pw - w) / 2), y0 = Math.floor((ph - h) / 2);
  const out = new Float64Array(pw * ph).fill(value);
  for (let y = 0; y < h; y++) out.set(plane.subarray(y * w, (y + 1) * w), (y0 + y) * pw + x0);
  return out;
}

/**
 * @typedef {object} AudioSpec
 * @property {number} sample_rate   the model's rate in Hz
 * @property {boolean} [mono]       mix channels down (default true)
 * @property {number} [window]      samples per model call; the signal is cut into windows (the
 *                                  last one zero-padded). Without it, one window of everything.
 */

/**
 * Decoded audio (one Float32Array per channel, at `rate` Hz) to windows for the model.
 * Resampling is linear interpolation at the output instants (numpy.interp's definition).
 * @param {Float32Array[]} channels
 * @param {number} rate
 * @param {AudioSpec} spec
 * @returns {Float32Array[]} windows, each [window] samples (or the whole signal)
 */
export function audioWindows(channels, rate, spec) {
  const s = checkProcessing("preprocess", { ...spec, kind: "audio" });
  const target = s.sample_rate;
  if (!channels.length || !(rate > 0)) throw new Error("no audio");
  const n = channels[0].length;
  if (channels.some((c) => c.length !== n)) throw new Error("channels differ in length");
  const mono = new Float64Array(n);
  if (s.mono === false && channels.length > 1) throw new Error("the model wants one channel: set preprocess.mono");
  for (const c of channels) for (let i = 0; i < n; i++) mono[i] += c[i] / channels.length;
  const m = Math.max(1, Math.floor((n * target) / rate));
  const x = new Float32Array(m);
  for (let j = 0; j < m; j++) {
    const t = (j * rate) / target; // position in input samples
    const i = Math.floor(t);
    const f = t - i;
    x[j] = i + 1 < n ? mono[i] * (1 - f) + mono[i + 1] * f : mono[Math.min(i, n - 1)];
  }
  const win = s.window;
  if (win === undefined) return [x];
  const out = [];
  for (let s = 0; s < x.length; s += win) {
    const w = new Float32Array(win);
    w.set(x.subarray(s, s + win));
    out.push(w);
  }
  return out;
}

/**
 * audioWindows' resampling for a live stream: mono chunks at `rate` Hz in, samples at the model's
 * rate out, the same instants (j * rate / target) and the same linear interpolation, so a stream
 * cut into chunks gives what audioWindows gives on the whole (up to its last sample).
 */
export class LinearResampler {
  /** @param {number} rate @param {number} target */
  constructor(rate, target) {
    if (!(rate > 0 && target > 0)) throw new Error("sample rates must be positive");
    this.rate = rate;
    this.target = target;
    this.j = 0; // the next output sample
    this.base = 0; // the input index of prev[0]
    this.prev = new Float32Array(0); // input samples still needed
  }

  /** @param {Float32Array} chunk @returns {Float32Array} the output samples it completes */
  push(chunk) {
    const buf = new Float32Array(this.prev.length + chunk.length);
    buf.set(this.prev);
    buf.set(chunk, this.prev.length);
    const end = this.base + buf.length; // input samples seen
    const out = [];
    for (;;) {
      const t = (this.j * this.rate) / this.target;
      const i = Math.floor(t);
      if (i + 1 >= end) break; // its right neighbour has not arrived yet
      const f = t - i;
      out.push(buf[i - this.base] * (1 - f) + buf[i + 1 - this.base] * f);
      this.j++;
    }
    const keep = Math.min(buf.length, Math.max(0, Math.floor((this.j * this.rate) / this.target) - this.base));
    this.prev = buf.slice(keep);
    this.base += keep;
    return Float32Array.from(out);
  }
}

// ---- post-processing -------------------------------------------------------------------------

/** Softmax over the last axis (numerically stable). */
export function softmax(data, classes) {
  const out = new Float32Array(data.length);
  for (let o = 0; o < data.length; o += classes) {
    let max = -Infinity;
    for (let i = 0; i < classes; i++) max = Math.max(max, data[o + i]);
    let sum = 0;
    for (let i = 0; i < classes; i++) sum += (out[o + i] = Math.exp(data[o + i] - max));
    for (let i = 0; i < classes; i++) out[o + i] /= sum;
  }
  return out;
}

/**
 * Classes: the top k of the last axis of one output, with labels.
 * @param {Tensor} t
 * @param {{softmax?: boolean, top_k?: number}} spec
 * @param {string[]} [labels]
 * @returns {{label: string, index: number, score: number}[][]} one list per row
 */
export function classes(t, spec, labels) {
  const k = t.shape[t.shape.length - 1];
  const p = spec.softmax ? softmax(t.data, k) : t.data;
  const top = Math.min(spec.top_k ?? 5, k);
  const rows = [];
  for (let o = 0; o < p.length; o += k) {
    const idx = Array.from({ length: k }, (_, i) => i).sort((a, b) => p[o + b] - p[o + a] || a - b).slice(0, top);
    rows.push(idx.map((i) => ({ label: labels?.[i] ?? String(i), index: i, score: p[o + i] })));
  }
  return rows;
}

/**
 * Boxes: decoded boxes [..., N, 4] with scores [..., N] (one class) or [..., N, C]; keeps those
 * over `score_threshold`, then greedy non-maximum suppression per class at `iou_threshold`.
 * @param {Tensor} boxes
 * @param {Tensor} scores
 * @param {{format?: "xyxy"|"yxyx"|"cxcywh", score_threshold?: number, iou_threshold?: number, max?: number}} spec
 * @param {string[]} [labels]
 */
export function detections(boxes, scores, spec, labels) {
  const n = boxes.data.length / 4;
  if (!Number.isInteger(n) || boxes.shape[boxes.shape.length - 1] !== 4) throw new Error("boxes must be [..., N, 4]");
  const c = scores.data.length / n;
  if (!Number.isInteger(c) || c < 1) throw new Error("scores must be [..., N] or [..., N, C] for the N boxes");
  const fmt = spec.format ?? "xyxy";
  const thr = spec.score_threshold ?? 0.5;
  const cand = [];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < c; j++) {
      const s = scores.data[i * c + j];
      if (s >= thr) cand.push({ box: corners(boxes.data.subarray(4 * i, 4 * i + 4), fmt), score: s, index: j });
    }
  }
  cand.sort((a, b) => b.score - a.score);
  const keep = [];
  const iouMax = spec.iou_threshold ?? 0.5;
  for (const d of cand) {
    if (keep.some((k) => k.index === d.index && iou(k.box, d.box) > iouMax)) continue;
    keep.push(d);
    if (keep.length >= (spec.max ?? 100)) break;
  }
  return keep.map((d) => ({ ...d, label: labels?.[d.index] ?? String(d.index) }));
}

function corners(b, fmt) {
  if (fmt === "xyxy") return [b[0], b[1], b[2], b[3]];
  if (fmt === "yxyx") return [b[1], b[0], b[3], b[2]];
  if (fmt === "cxcywh") return [b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2];
  throw new Error(`postprocess.format ${JSON.stringify(fmt)}: use xyxy, yxyx or cxcywh`);
}

export function iou(a, b) {
  const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = iw * ih;
  const area = (r) => Math.max(0, r[2] - r[0]) * Math.max(0, r[3] - r[1]);
  const u = area(a) + area(b) - inter;
  return u > 0 ? inter / u : 0;
}

/**
 * A mask from a segmentation output [1, H, W, C] (nhwc) or [1, C, H, W] (nchw): per pixel the
 * class (argmax over C), or for C = 1 the foreground where the value passes `threshold`.
 * @param {Tensor} t
 * @param {{layout?: "nhwc"|"nchw", threshold?: number}} spec
 * @returns {{width: number, height: number, data: Uint8Array}} class index (or 0/1) per pixel
 */
export function mask(t, spec) {
  const layout = spec.layout ?? "nhwc";
  if (t.shape.length !== 4 || t.shape[0] !== 1) throw new Error("a mask output must be [1, H, W, C] or [1, C, H, W]");
  const [h, w, c] = layout === "nhwc" ? [t.shape[1], t.shape[2], t.shape[3]] : [t.shape[2], t.shape[3], t.shape[1]];
  const at = (y, x, k) => t.data[layout === "nhwc" ? (y * w + x) * c + k : k * h * w + y * w + x];
  const out = new Uint8Array(h * w);
  const thr = spec.threshold ?? 0.5;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (c === 1) { out[y * w + x] = at(y, x, 0) > thr ? 1 : 0; continue; }
      let best = 0;
      for (let k = 1; k < c; k++) if (at(y, x, k) > at(y, x, best)) best = k;
      out[y * w + x] = best;
    }
  }
  return { width: w, height: h, data: out };
}

/**
 * Applies a manifest entry's `postprocess` to the outputs; what the app (and Python) receives.
 * @param {Record<string, Tensor>} outputs
 * @param {any} spec       e.g. {"kind": "classes", "output": "probabilities", "softmax": false, "top_k": 3}
 * @param {string[]} [labels]
 */
export function postprocess(outputs, spec, labels) {
  spec = checkProcessing("postprocess", spec);
  const pick = (name) => {
    const key = name ?? Object.keys(outputs)[0];
    const t = outputs[key];
    if (!t) throw new Error(`postprocess: the model has no output ${JSON.stringify(key)}`);
    return t;
  };
  switch (spec.kind) {
    case "classes": return { kind: "classes", classes: classes(pick(spec.output), spec, labels) };
    case "boxes": return { kind: "boxes", boxes: detections(pick(spec.boxes), pick(spec.scores), spec, labels) };
    case "mask": {
      const m = mask(pick(spec.output), spec);
      return { kind: "mask", width: m.width, height: m.height, mask: m.data };
    }
    // One score per value of the output (an audio window's: Silero VAD's speech probability).
    case "scores": return { kind: "scores", scores: Array.from(pick(spec.output).data), threshold: spec.threshold };
    default: throw new Error(`postprocess.kind ${JSON.stringify(spec.kind)}: use classes, boxes, mask or scores`);
  }
}
