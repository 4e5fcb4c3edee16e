// Input mode for a model whose manifest entry declares `preprocess: {kind: "image", ...}`: the
// user picks an image file inside the sandbox document; it is decoded here, turned into the
// model's input tensor by media.js exactly as the manifest says, run, and the manifest's
// `postprocess` (classes, boxes, a mask) is applied and shown here. The embedding page gets the
// outputs and that result only when the user presses Send (and only with report: true); never
// the image, its name or its size. The decoded pixels are dropped after each run.
//
// Decoding: createImageBitmap with no colour-space conversion and no premultiplication, then a
// 2D canvas's getImageData: for an image without an embedded colour profile (a plain PNG, most
// JPEGs) these are the file's own sRGB values, what Pillow's Image.open(...).convert("RGB")
// gives (tests/browser/image-input.test.mjs checks it on PNGs).

import { imageToTensor, postprocess } from "./media.js";
import { el, keptNote, oneShot, onPick } from "./sandbox-ui.js";

const MAX_FILE_BYTES = 32 * 1024 * 1024;
const MAX_SIDE = 16384;
const PREVIEW_PX = 256;

/** @typedef {Record<string, { data: Float32Array, shape: number[] }>} Outputs */
/** @typedef {{ width: number, height: number, data: Uint8ClampedArray<ArrayBuffer> }} Pixels */
/** @typedef {{ sx: number, sy: number, sw: number, sh: number, dx: number, dy: number, dw: number, dh: number }} Placement */
/**
 * pixels -> {outputs, result (sent to the app on Send), placement (where a mask lies on the picture),
 * boxes (each box's rectangle on the picture); the last two for display only}
 * @typedef {(pixels: Pixels) => Promise<{ outputs: Outputs, result: any, placement: Placement | null, boxes?: PictureBox[] | null }>} Pipeline
 */
/** @typedef {{ rect: [number, number, number, number], label: string, score: number }} PictureBox */

/**
 * The picked file's pixels, RGBA, as the file stores them.
 * @param {Blob} file @returns {Promise<Pixels>}
 */
export async function decodeImage(file) {
  if (file.size > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES} bytes`);
  let bmp;
  try {
    bmp = await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none", imageOrientation: "from-image" });
  } catch {
    throw new Error("not an image this browser can decode");
  }
  try {
    return framePixels(bmp, bmp.width, bmp.height);
  } finally {
    bmp.close();
  }
}

/**
 * A drawable's pixels (an ImageBitmap, a video frame), RGBA.
 * @param {CanvasImageSource} source @param {number} width @param {number} height
 * @returns {Pixels}
 */
export function framePixels(source, width, height) {
  if (!(width >= 1 && height >= 1 && width <= MAX_SIDE && height <= MAX_SIDE)) throw new Error(`image size ${width}x${height} is outside 1..${MAX_SIDE}`);
  const c = new OffscreenCanvas(width, height);
  const g = c.getContext("2d", { willReadFrequently: true, colorSpace: "srgb" });
  g.drawImage(source, 0, 0);
  const d = g.getImageData(0, 0, width, height, { colorSpace: "srgb" });
  return { width, height, data: d.data };
}

/**
 * The declared steps around the engine: pixels -> tensor -> engine -> postprocess.
 * @param {{ preprocess: Record<string, any>, postprocess?: Record<string, any>, labels?: string[], inputName: string,
 *           run: (input: {name: string, data: Float32Array, shape: number[]}) => Promise<{outputs: Outputs}> }} o
 * @returns {Pipeline}
 */
export function imagePipeline({ preprocess, postprocess: post, labels, inputName, run }) {
  const { kind: _kind, input, ...spec } = preprocess;
  const name = input ?? inputName;
  return async (pixels) => {
    const t = imageToTensor(pixels, /** @type {any} */ (spec));
    const { outputs } = await run({ name, data: t.data, shape: t.shape });
    const result = post ? postprocess(outputs, post, labels) : null;
    const placement = result?.kind === "mask" ? maskPlacement(spec, pixels.width, pixels.height, result.width, result.height) : null;
    const boxes = result?.kind === "boxes" ? boxesOnPicture(result.boxes, spec, post?.units, pixels.width, pixels.height) : null;
    return { outputs, result, placement, boxes };
  };
}

/**
 * Where a mask of the model's input lies on the picture, by the preprocess's resize (media.js's
 * geometry: crop takes the centre of the resized picture, letterbox pads it centred): the part of
 * the mask [sx, sy, sw, sh] that covers the picture's rectangle [dx, dy, dw, dh]. For display.
 * @param {Record<string, any>} spec @param {number} iw @param {number} ih @param {number} mw @param {number} mh
 */
export function maskPlacement(spec, iw, ih, mw, mh) {
  const [h, w] = spec.size;
  const fx = mw / w, fy = mh / h;
  if (spec.resize === "crop") {
    const k = (spec.shorter ?? Math.max(h, w)) / Math.min(iw, ih);
    const rw = Math.max(w, Math.round(iw * k)), rh = Math.max(h, Math.round(ih * k));
    const x0 = Math.floor((rw - w) / 2), y0 = Math.floor((rh - h) / 2);
    return { sx: 0, sy: 0, sw: mw, sh: mh, dx: (x0 * iw) / rw, dy: (y0 * ih) / rh, dw: (w * iw) / rw, dh: (h * ih) / rh };
  }
  if (spec.resize === "letterbox") {
    const k = Math.min(w / iw, h / ih);
    const rw = Math.max(1, Math.round(iw * k)), rh = Math.max(1, Math.round(ih * k));
    const x0 = Math.floor((w - rw) / 2), y0 = Math.floor((h - rh) / 2);
    return { sx: x0 * fx, sy: y0 * fy, sw: rw * fx, sh: rh * fy, dx: 0, dy: 0, dw: iw, dh: ih };
  }
  return { sx: 0, sy: 0, sw: mw, sh: mh, dx: 0, dy: 0, dw: iw, dh: ih };
}

/**
 * The picture's coordinates of a point of the model's input: picture = o + model * k, by the
 * preprocess's resize (the same geometry as maskPlacement).
 * @param {Record<string, any>} spec @param {number} iw @param {number} ih
 */
export function pictureMap(spec, iw, ih) {
  const [h, w] = spec.size;
  if (spec.resize === "crop") {
    const k = (spec.shorter ?? Math.max(h, w)) / Math.min(iw, ih);
    const rw = Math.max(w, Math.round(iw * k)), rh = Math.max(h, Math.round(ih * k));
    const x0 = Math.floor((rw - w) / 2), y0 = Math.floor((rh - h) / 2);
    return { kx: iw / rw, ky: ih / rh, ox: (x0 * iw) / rw, oy: (y0 * ih) / rh };
  }
  if (spec.resize === "letterbox") {
    const k = Math.min(w / iw, h / ih);
    const rw = Math.max(1, Math.round(iw * k)), rh = Math.max(1, Math.round(ih * k));
    const x0 = Math.floor((w - rw) / 2), y0 = Math.floor((h - rh) / 2);
    return { kx: iw / rw, ky: ih / rh, ox: (-x0 * iw) / rw, oy: (-y0 * ih) / rh };
  }
  return { kx: iw / w, ky: ih / h, ox: 0, oy: 0 };
}

/**
 * Each detected box (xyxy in the model's input, in its pixels or, with units "normalized", in
 * fractions of its size) as a rectangle on the picture, clipped to it. For display.
 * @param {{box: number[], label: string, score: number}[]} boxes @param {Record<string, any>} spec
 * @param {string | undefined} units @param {number} iw @param {number} ih @returns {PictureBox[]}
 */
export function boxesOnPicture(boxes, spec, units, iw, ih) {
  const m = pictureMap(spec, iw, ih);
  const [h, w] = spec.size;
  const ux = units === "normalized" ? w : 1, uy = units === "normalized" ? h : 1;
  const cx = (/** @type {number} */ v) => Math.min(iw, Math.max(0, m.ox + v * ux * m.kx));
  const cy = (/** @type {number} */ v) => Math.min(ih, Math.max(0, m.oy + v * uy * m.ky));
  return boxes.map((b) => ({ rect: [cx(b.box[0]), cy(b.box[1]), cx(b.box[2]), cy(b.box[3])], label: b.label, score: b.score }));
}

/** A line of text for a post-processed result (or the first output). */
export function describeResult(/** @type {any} */ result, /** @type {Outputs} */ outputs) {
  if (result?.kind === "classes") {
    return result.classes[0].map((/** @type {any} */ c) => `${c.label} ${(c.score * 100).toFixed(1)}%`).join(", ");
  }
  if (result?.kind === "mask") {
    let on = 0;
    for (const v of result.mask) if (v) on++;
    return `mask ${result.width}×${result.height}: ${((on / result.mask.length) * 100).toFixed(1)}% foreground`;
  }
  if (result?.kind === "boxes") {
    return result.boxes.length ? result.boxes.map((/** @type {any} */ b) => `${b.label} ${(b.score * 100).toFixed(0)}%`).join(", ") : "no boxes";
  }
  const [name, o] = Object.entries(outputs)[0] ?? [];
  return o ? `${name}: [${o.shape.join(", ")}]` : "";
}

/** The colour boxes are drawn in (tests/browser/classify.test.mjs looks for it on the canvas). */
export const BOX_COLOR = [220, 38, 38];

/**
 * Draws the picture (scaled to fit) and, for a mask, the mask over the part of the picture it
 * covers (maskPlacement); for boxes, each box's outline and label (boxesOnPicture).
 * @param {HTMLCanvasElement} canvas @param {CanvasImageSource} picture @param {number} w @param {number} h @param {any} result
 * @param {Placement | null} [placement] @param {PictureBox[] | null} [boxes]
 */
export function drawResult(canvas, picture, w, h, result, placement, boxes) {
  const k = Math.min(1, PREVIEW_PX / Math.max(w, h));
  canvas.width = Math.max(1, Math.round(w * k));
  canvas.height = Math.max(1, Math.round(h * k));
  const g = canvas.getContext("2d");
  g.drawImage(picture, 0, 0, canvas.width, canvas.height);
  if (result?.kind === "mask") {
    const m = new OffscreenCanvas(result.width, result.height);
    const mg = m.getContext("2d");
    const img = mg.createImageData(result.width, result.height);
    for (let i = 0; i < result.mask.length; i++) if (result.mask[i]) img.data.set([37, 99, 235, 140], i * 4);
    mg.putImageData(img, 0, 0);
    const p = placement ?? { sx: 0, sy: 0, sw: result.width, sh: result.height, dx: 0, dy: 0, dw: w, dh: h };
    g.drawImage(m, p.sx, p.sy, p.sw, p.sh, p.dx * k, p.dy * k, p.dw * k, p.dh * k);
  }
  if (boxes?.length) {
    const color = `rgb(${BOX_COLOR.join(", ")})`;
    g.lineWidth = 2;
    g.strokeStyle = color;
    g.font = "11px sans-serif";
    g.textBaseline = "bottom";
    for (const b of boxes) {
      const [x0, y0, x1, y1] = b.rect.map((v) => v * k);
      g.strokeRect(x0 + 1, y0 + 1, Math.max(0, x1 - x0 - 2), Math.max(0, y1 - y0 - 2));
      const text = `${b.label} ${(b.score * 100).toFixed(0)}%`;
      const tw = g.measureText(text).width + 4;
      const ty = y0 >= 14 ? y0 : Math.min(canvas.height, y0 + 14);
      g.fillStyle = color;
      g.fillRect(x0, ty - 14, tw, 14);
      g.fillStyle = "#fff";
      g.fillText(text, x0 + 2, ty - 1);
    }
  }
}

/**
 * Shows the image file picker and wires it to the pipeline.
 * @param {{ pipeline: Pipeline, send: ((outputs: Outputs, result: any) => void) | null }} o
 *   send: posts outputs and result to the app; null when nothing may be sent (report: false).
 */
export function mountImageInput({ pipeline, send }) {
  const out = el("output", { className: "in-out", dataset: { role: "result" } });
  const pick = el("input", { type: "file", accept: "image/*", dataset: { role: "file" } });
  const view = el("canvas", { className: "in-view", width: 1, height: 1, dataset: { role: "view" } });
  const box = el("section", { className: "in-box", dataset: { role: "input" } }, keptNote("Your image", send !== null),
    el("label", {}, "Image: ", pick), el("div", { className: "in-row" }, view), out);
  const runs = oneShot(box, send);
  if (runs.sendRow) box.append(runs.sendRow);
  document.body.append(box);
  document.documentElement.dataset.ui = "input";

  onPick(pick, (file) => runs.run(async () => {
    out.value = "running…";
    const pixels = await decodeImage(file);
    const r = await pipeline(pixels);
    const bmp = await createImageBitmap(new ImageData(pixels.data, pixels.width, pixels.height));
    drawResult(view, bmp, pixels.width, pixels.height, r.result, r.placement, r.boxes);
    bmp.close();
    out.value = describeResult(r.result, r.outputs);
    return [r.outputs, r.result];
  }, (e) => { out.value = `cannot use this image: ${e?.message ?? e}`; }));
  return box;
}
