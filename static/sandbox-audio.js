// Audio input modes, in the sandbox document only: an audio file (init.input.kind "audio") or
// the microphone ("microphone"). The samples become the model's input exactly as the manifest's
// audio `preprocess` says (media.js: mono, the model's sample rate by linear interpolation,
// windows of `window` samples), each window is run, and the manifest's `postprocess` (Silero
// VAD: a speech probability per window, kind "scores") is shown here. The embedding page gets
// only the outputs and that result: for a file when the user presses Send, for the microphone at
// most `rate` times a second; never a sample, the file's name, its size or its length beyond
// what the number of windows says.
//
// A model with other inputs than the samples declares how they are fed (processing.json):
// `rate_input` gets the sample rate as a scalar, `state_input` starts at zeros and then gets the
// previous window's `state_output` (the recurrent state Silero VAD carries between windows, as
// its own Python loop does); state outputs are not part of what is sent. `context` prepends that
// many samples of the signal before each window (Silero's 64: it sees 576 samples, advancing 512).
//
// The microphone is reachable only where both say so: sandbox.html's Permissions-Policy
// (microphone=(self) there alone) and the embedder's iframe allow="microphone" (the app's
// choice); the user starts it with a button in this frame. Samples are taken with a
// ScriptProcessorNode: it needs no extra script (an AudioWorklet's module would be code
// outside the integrity chain), and is supported everywhere.
//
// Decoding a file: decodeAudioData resamples to its context's rate, so for a WAV file the
// context gets the file's own rate (read from its header) and the manifest's resampling is
// applied here, as in numpy; other formats are decoded at the model's rate by the browser.

import { audioWindows, LinearResampler, postprocess } from "./media.js";
import { el, deviceError, keptNote, oneShot, onPick } from "./sandbox-ui.js";

const MAX_FILE_BYTES = 64 * 1024 * 1024;
const MAX_SECONDS = 30 * 60;

/** @typedef {import("./sandbox-image.js").Outputs} Outputs */
/** @typedef {{ name: string, shape: number[], data: Float32Array | BigInt64Array | Int32Array, type: string }} Feed */

/** A scalar or zeros of an input's declared type. @param {string | null} carrier @param {number} n @param {number} [v] */
function typed(carrier, n, v = 0) {
  if (carrier === "I64") return { type: "I64", data: new BigInt64Array(n).fill(BigInt(Math.round(v))) };
  if (carrier === "I32") return { type: "I32", data: new Int32Array(n).fill(Math.round(v)) };
  if (carrier === "FP32" || carrier === null) return { type: "FP32", data: new Float32Array(n).fill(v) };
  throw new Error(`input type ${carrier} cannot be fed by an audio preprocess`);
}

/**
 * The declared steps around the engine for audio: windows in, per-window outputs and the
 * postprocess's result out, the state carried from window to window.
 * @param {{ preprocess: Record<string, any>, postprocess?: Record<string, any>, labels?: string[],
 *           graph: { inputs: { name: string, carrier: string | null, shape: (number | string | null)[] | null }[] },
 *           run: (inputs: Feed[]) => Promise<Outputs> }} o
 */
export function audioPipeline({ preprocess, postprocess: post, labels, graph, run }) {
  const spec = preprocess;
  const decl = (/** @type {string} */ name) => {
    const d = graph.inputs.find((t) => t.name === name);
    if (!d) throw new Error(`the model has no input "${name}"`);
    return d;
  };
  const input = decl(spec.input ?? graph.inputs[0].name);
  /** @type {Feed[]} */ const fixed = [];
  if (spec.rate_input) {
    const d = decl(spec.rate_input);
    fixed.push({ name: d.name, shape: [], ...typed(d.carrier, 1, spec.sample_rate) });
  }
  const stateDecl = spec.state_input ? decl(spec.state_input) : null;
  const stateShape = (stateDecl?.shape ?? []).map((d) => (typeof d === "number" ? d : 1));
  /** @type {Feed | null} */ let state = null;
  const context = spec.context ?? 0;
  let before = new Float32Array(context); // the signal just before the next window
  const zeroState = () => {
    state = stateDecl ? { name: stateDecl.name, shape: stateShape, ...typed(stateDecl.carrier, stateShape.reduce((a, b) => a * b, 1)) } : null;
    before = new Float32Array(context);
  };
  zeroState();
  return {
    /** Back to the first window's state (a new file, the microphone restarted). */
    reset: zeroState,
    /**
     * Runs windows in order. @param {Float32Array[]} windows
     * @returns {Promise<{ outputs: Outputs, result: any, windows: number }>} outputs concatenated
     *   along the first axis, one row block per window (the state output left out)
     */
    async runWindows(windows) {
      /** @type {Outputs[]} */ const per = [];
      for (const win of windows) {
        let w = win;
        if (context) {
          w = new Float32Array(context + win.length);
          w.set(before);
          w.set(win, context);
          before = w.slice(w.length - context);
        }
        const feeds = [{ name: input.name, shape: [1, w.length], data: w, type: "FP32" }, ...fixed, ...(state ? [state] : [])];
        const outs = await run(feeds);
        if (stateDecl) {
          const s = outs[spec.state_output];
          if (!s) throw new Error(`the model gave no output "${spec.state_output}" (preprocess.state_output)`);
          if (s.data.length !== state.data.length) throw new Error(`state output ${spec.state_output} has ${s.data.length} values, state input ${stateDecl.name} ${state.data.length}`);
          state = { ...state, data: Float32Array.from(s.data) };
          delete outs[spec.state_output];
        }
        per.push(outs);
      }
      /** @type {Outputs} */ const outputs = {};
      for (const name of Object.keys(per[0] ?? {})) {
        const parts = per.map((o) => o[name]);
        const data = new Float32Array(parts.reduce((a, p) => a + p.data.length, 0));
        let at = 0;
        for (const p of parts) { data.set(p.data, at); at += p.data.length; }
        const [first, ...rest] = parts[0].shape;
        outputs[name] = { data, shape: [first * parts.length, ...rest] };
      }
      const result = post && per.length ? postprocess(outputs, post, labels) : null;
      if (result?.kind === "scores" && spec.window) result.step = spec.window / spec.sample_rate; // seconds per score
      return { outputs, result, windows: windows.length };
    },
  };
}

/** The sample rate a WAV file's header declares, or null (not a RIFF/WAVE file). @param {ArrayBuffer} buf */
export function wavRate(buf) {
  const v = new DataView(buf);
  const tag = (/** @type {number} */ o) => String.fromCharCode(v.getUint8(o), v.getUint8(o + 1), v.getUint8(o + 2), v.getUint8(o + 3));
  if (buf.byteLength < 12 || tag(0) !== "RIFF" || tag(8) !== "WAVE") return null;
  for (let o = 12; o + 8 <= buf.byteLength;) {
    const size = v.getUint32(o + 4, true);
    if (tag(o) === "fmt " && o + 16 <= buf.byteLength) return v.getUint32(o + 12, true);
    o += 8 + size + (size & 1);
  }
  return null;
}

/**
 * A picked audio file's channels and rate, decoded in this document.
 * @param {Blob} file @param {number} modelRate
 * @returns {Promise<{ channels: Float32Array[], rate: number }>}
 */
export async function decodeAudio(file, modelRate) {
  if (file.size > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES} bytes`);
  const buf = await file.arrayBuffer();
  const own = wavRate(buf);
  const rate = own !== null && own >= 3000 && own <= 768000 ? own : modelRate;
  let audio;
  try {
    audio = await new OfflineAudioContext(1, 1, rate).decodeAudioData(buf);
  } catch {
    throw new Error("not an audio file this browser can decode");
  }
  if (audio.duration > MAX_SECONDS) throw new Error(`longer than ${MAX_SECONDS / 60} minutes`);
  const channels = [];
  for (let c = 0; c < audio.numberOfChannels; c++) channels.push(audio.getChannelData(c));
  return { channels, rate: audio.sampleRate };
}

/** A line of text for an audio result. @param {any} result @param {Outputs} outputs @param {number} windows */
export function describeAudio(result, outputs, windows) {
  if (result?.kind === "scores") {
    const on = result.scores.filter((/** @type {number} */ s) => s >= result.threshold).length;
    const last = result.scores[result.scores.length - 1];
    return `${windows} window${windows === 1 ? "" : "s"}: ${on} at or above ${result.threshold} (${((on / Math.max(1, result.scores.length)) * 100).toFixed(0)}%), last ${last?.toFixed(3) ?? "-"}`;
  }
  const [name, o] = Object.entries(outputs)[0] ?? [];
  return o ? `${windows} windows; ${name}: [${o.shape.join(", ")}]` : "";
}

/**
 * The audio file picker, wired to the pipeline.
 * @param {{ pipeline: ReturnType<typeof audioPipeline>, spec: Record<string, any>,
 *           send: ((outputs: Outputs, result: any) => void) | null }} o
 */
export function mountAudioFileInput({ pipeline, spec, send }) {
  const out = el("output", { className: "in-out", dataset: { role: "result" } });
  const pick = el("input", { type: "file", accept: "audio/*,.wav", dataset: { role: "file" } });
  const box = el("section", { className: "in-box", dataset: { role: "input" } },
    keptNote("Your recording", send !== null), el("label", {}, "Audio: ", pick), out);
  const runs = oneShot(box, send);
  if (runs.sendRow) box.append(runs.sendRow);
  document.body.append(box);
  document.documentElement.dataset.ui = "input";

  onPick(pick, (file) => runs.run(async () => {
    out.value = "running…";
    const { channels, rate } = await decodeAudio(file, spec.sample_rate);
    pipeline.reset();
    const r = await pipeline.runWindows(audioWindows(channels, rate, /** @type {any} */ (spec)));
    out.value = describeAudio(r.result, r.outputs, r.windows);
    return [r.outputs, r.result];
  }, (e) => { out.value = `cannot use this recording: ${e?.message ?? e}`; }));
  return box;
}

/**
 * The microphone UI: Start opens it, its samples go through the pipeline window by window.
 * @param {{ pipeline: ReturnType<typeof audioPipeline>, spec: Record<string, any>,
 *           send: ((outputs: Outputs, result: any) => void) | null, rate: number }} o
 */
export function mountMicrophoneInput({ pipeline, spec, send, rate }) {
  const out = el("output", { className: "in-out", dataset: { role: "result" } });
  const start = el("button", { type: "button", className: "in-btn in-primary", dataset: { role: "microphone-start" } }, "Start the microphone");
  const stop = el("button", { type: "button", className: "in-btn", dataset: { role: "microphone-stop" }, disabled: true }, "Stop");
  const note = el("p", { className: "in-note" },
    send
      ? `Microphone samples stay in this sandbox; only the model's output goes to the app, at most ${rate} time${rate === 1 ? "" : "s"} a second.`
      : "Microphone samples stay in this sandbox; nothing is sent to the app.");
  const box = el("section", { className: "in-box", dataset: { role: "input", windows: "0", sent: "0" } }, note,
    el("div", { className: "in-row" }, start, stop), out);
  document.body.append(box);
  document.documentElement.dataset.ui = "input";

  const win = spec.window ?? spec.sample_rate; // without a window: one call a second
  /** @type {{ stream: MediaStream, ctx: AudioContext } | null} */ let open = null;
  let running = false;
  let lastSent = -Infinity;
  /** @type {{ outputs: Outputs, result: any }[]} */ let pending = [];
  let work = Promise.resolve();
  const halt = () => {
    running = false;
    for (const t of open?.stream.getTracks() ?? []) t.stop();
    open?.ctx.close().catch(() => {});
    open = null;
    start.disabled = false;
    stop.disabled = true;
  };
  stop.addEventListener("click", () => { halt(); box.dataset.state = "stopped"; });
  start.addEventListener("click", async () => {
    if (running) return;
    start.disabled = true;
    let stream, ctx;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false }, video: false });
      ctx = new AudioContext();
      await ctx.resume();
    } catch (e) {
      for (const t of stream?.getTracks() ?? []) t.stop();
      halt();
      out.value = deviceError("microphone", e);
      box.dataset.state = "error";
      return;
    }
    open = { stream, ctx };
    running = true;
    stop.disabled = false;
    pipeline.reset();
    pending = [];
    const resampler = new LinearResampler(ctx.sampleRate, spec.sample_rate);
    let acc = new Float32Array(0);
    const source = ctx.createMediaStreamSource(stream);
    // One channel in: the browser mixes the microphone's channels down (their mean for stereo).
    const tap = ctx.createScriptProcessor(4096, 1, 1);
    tap.onaudioprocess = (ev) => {
      if (!running) return;
      const got = resampler.push(Float32Array.from(ev.inputBuffer.getChannelData(0)));
      const joined = new Float32Array(acc.length + got.length);
      joined.set(acc);
      joined.set(got, acc.length);
      const windows = [];
      let at = 0;
      for (; at + win <= joined.length; at += win) windows.push(joined.slice(at, at + win));
      acc = joined.slice(at);
      if (windows.length) work = work.then(() => step(windows));
    };
    source.connect(tap);
    tap.connect(ctx.destination); // a ScriptProcessorNode runs only when connected; it outputs silence
    box.dataset.state = "running";
  });

  /** @param {Float32Array[]} windows */
  async function step(windows) {
    if (!running) return;
    try {
      const r = await pipeline.runWindows(windows);
      if (!running) return;
      out.value = describeAudio(r.result, r.outputs, Number(box.dataset.windows) + r.windows);
      box.dataset.windows = String(Number(box.dataset.windows) + r.windows);
      pending.push(r);
      const now = performance.now();
      if (send && now - lastSent >= 1000 / rate) {
        lastSent = now;
        const batch = pending;
        pending = [];
        send(...joinResults(batch));
        box.dataset.sent = String(Number(box.dataset.sent) + 1);
      } else if (!send) {
        pending = [];
      }
    } catch (e) {
      out.value = `cannot run on the microphone: ${e?.message ?? e}`;
      box.dataset.state = "error";
      halt();
    }
  }
  return box;
}

/**
 * The windows run since the last post, as one post: outputs concatenated along the first axis,
 * a "scores" result's scores joined. @param {{ outputs: Outputs, result: any }[]} batch
 * @returns {[Outputs, any]}
 */
function joinResults(batch) {
  /** @type {Outputs} */ const outputs = {};
  for (const name of Object.keys(batch[0].outputs)) {
    const parts = batch.map((b) => b.outputs[name]);
    const data = new Float32Array(parts.reduce((a, p) => a + p.data.length, 0));
    let at = 0;
    for (const p of parts) { data.set(p.data, at); at += p.data.length; }
    outputs[name] = { data, shape: [parts.reduce((a, p) => a + p.shape[0], 0), ...parts[0].shape.slice(1)] };
  }
  const r0 = batch[0].result;
  const result = r0?.kind === "scores" ? { ...r0, scores: batch.flatMap((b) => b.result.scores) } : batch[batch.length - 1].result;
  return [outputs, result];
}
