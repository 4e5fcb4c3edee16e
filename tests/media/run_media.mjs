// Runs static/media.js on requests from tests/media/test_media.py: one JSON object per line on
// stdin ({op, ...}, arrays as base64 little-endian), one JSON answer per line on stdout.
import readline from "node:readline";
import { audioWindows, imageToTensor, LinearResampler, postprocess } from "../../static/media.js";

const f32 = (b64) => new Float32Array(new Uint8Array(Buffer.from(b64, "base64")).buffer);
const b64 = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");

function handle(req) {
  if (req.op === "image") {
    const data = new Uint8ClampedArray(Buffer.from(req.rgba, "base64"));
    const t = imageToTensor({ data, width: req.width, height: req.height }, req.spec);
    return { shape: t.shape, data: b64(t.data) };
  }
  if (req.op === "audio") {
    const w = audioWindows(req.channels.map(f32), req.rate, req.spec);
    return { windows: w.map(b64) };
  }
  if (req.op === "resample-stream") {
    // The microphone's path: mono chunks of the given sizes through one LinearResampler.
    const x = f32(req.mono);
    const r = new LinearResampler(req.rate, req.target);
    const parts = [];
    let at = 0;
    for (const n of req.chunks) { parts.push(...r.push(x.subarray(at, at + n))); at += n; }
    return { samples: b64(Float32Array.from(parts)) };
  }
  if (req.op === "post") {
    const outputs = Object.fromEntries(Object.entries(req.outputs).map(([k, v]) => [k, { data: f32(v.data), shape: v.shape }]));
    const r = postprocess(outputs, req.spec, req.labels);
    if (r.mask) r.mask = Buffer.from(r.mask).toString("base64");
    return r;
  }
  throw new Error(`unknown op ${req.op}`);
}

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  let out;
  try { out = handle(JSON.parse(line)); } catch (e) { out = { error: String(e?.message ?? e) }; }
  process.stdout.write(JSON.stringify(out) + "\n");
}
