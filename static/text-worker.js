// Text models in the engine worker: the model's tokenizer (the `tokenizer` component: its jco glue,
// text/tokenizer.js, is bundled into the worker; its core wasm is pinned and verified like the
// engine's) turns the text into token ids right here, next to the engine, so the
// text itself never leaves the sandbox. Long texts are cut into windows of at most `maxLength`
// tokens that overlap by `stride`, run as one batch (padded, attention mask 0 on the padding).
//
// Requests (sandbox -> worker, handled from worker.js):
//   {type:'load-tokenizer', id, bytes: ArrayBuffer, maxLength, stride}  -> {type:'tokenizer-loaded', id, info}
//   {type:'run-text', id, text}   -> {type:'result', id, outputs, windows, timings}
// where windows[i] = {offsets: Uint32Array (start, end pairs, UTF-16 units of `text`),
//                     specialTokensMask: Uint8Array, length}: what maps each output row back to the text.

import { instantiateVerified } from "./engine-loader.js";
import { instantiate } from "./text/tokenizer.js";

/** @type {Promise<any> | null} */ let tokenizerModule = null;
/** @type {any} */ let tokenizer = null;
let window_ = { maxLength: 512, stride: 64 };

/** jco turns a WIT `result::err(error)` into a ComponentError whose payload is our `error` record. */
export function tokenizerFailure(e) {
  const p = e && typeof e === "object" && "payload" in e ? /** @type {any} */ (e).payload : null;
  if (p && typeof p === "object" && typeof p.code === "string" && typeof p.message === "string") {
    return Object.assign(new Error(p.message), { code: p.code === "too-large" ? "too-large" : "invalid-argument" });
  }
  return null;
}

/**
 * @param {Uint8Array} bytes @param {number} maxLength @param {number} stride
 * @param {import("./engine-loader.js").ComponentPins | undefined} pins the tokenizer component's core wasm
 */
export async function loadTokenizer(bytes, maxLength, stride, pins) {
  // Instantiated once, on the first text model (its core wasm verified like the engine's).
  tokenizerModule ??= instantiateVerified(instantiate, pins, "the tokenizer");
  tokenizerModule.catch(() => { tokenizerModule = null; });
  const component = await tokenizerModule;
  let t;
  try {
    t = component.tokenizer.Tokenizer.load(bytes);
  } catch (e) {
    throw tokenizerFailure(e) ?? e;
  }
  tokenizer?.[Symbol.dispose]?.();
  tokenizer = t;
  window_ = { maxLength, stride };
  const info = t.info();
  return { model: info.model, vocabSize: info.vocabSize };
}

/** The inputs a BERT-family token classifier takes, by the names exporters give them. */
const TEXT_INPUTS = ["input_ids", "attention_mask", "token_type_ids"];

/**
 * Tokenizes `text` and runs the model on every window at once.
 * @param {string} text
 * @param {string[]} inputNames the graph's inputs
 * @param {(inputs: {name: string, shape: number[], data: ArrayBufferView, type: string}[]) => any} run
 *   worker.js's run(): the engine, through wasi-nn
 */
export function runText(text, inputNames, run) {
  const unknown = inputNames.filter((n) => !TEXT_INPUTS.includes(n));
  if (unknown.length || !inputNames.includes("input_ids")) {
    throw Object.assign(new Error(`a text model takes ${TEXT_INPUTS.join(", ")}; this one takes ${inputNames.join(", ")}`), { code: "invalid-argument" });
  }
  if (!tokenizer) throw Object.assign(new Error("this model has no tokenizer loaded"), { code: "not-loaded" });
  const t0 = performance.now();
  let encoded;
  try {
    encoded = tokenizer.encode(text, undefined, {
      addSpecialTokens: true,
      offsets: "utf16",
      truncation: { maxLength: window_.maxLength, stride: window_.stride },
    });
  } catch (e) {
    throw tokenizerFailure(e) ?? e;
  }
  const encs = [encoded.encoding, ...encoded.overflowing];
  const n = Math.max(...encs.map((e) => e.ids.length));
  const ids = new BigInt64Array(encs.length * n);
  const mask = new BigInt64Array(encs.length * n);
  const types = new BigInt64Array(encs.length * n);
  encs.forEach((e, w) => {
    for (let i = 0; i < e.ids.length; i++) {
      ids[w * n + i] = BigInt(e.ids[i]);
      mask[w * n + i] = BigInt(e.attentionMask[i]);
      types[w * n + i] = BigInt(e.typeIds[i]);
    }
  });
  const windows = encs.map((e) => {
    const offsets = new Uint32Array(e.offsets.length * 2);
    e.offsets.forEach((o, i) => { offsets[2 * i] = o.start; offsets[2 * i + 1] = o.end; });
    return { offsets, specialTokensMask: Uint8Array.from(e.specialTokensMask), length: e.ids.length };
  });
  const t1 = performance.now();
  const shape = [encs.length, n];
  const data = { input_ids: ids, attention_mask: mask, token_type_ids: types };
  const r = run(inputNames.map((name) => ({ name, shape, data: data[name], type: "I64" })));
  return { ...r, windows, timings: { tokenizeMs: t1 - t0, ...r.timings } };
}
