// The browser protocol, written once: every message that crosses a context of the runtime, and
// the checks each receiver applies. Imported by the sandbox document (sandbox.js), the engine
// worker (worker.js, run-port.js), the client (secure-context.js) and, bundled in by
// scripts/build-python, the Streamlit launcher (python/streamlit_secure_context/launcher.js),
// which runs on the Streamlit page and cannot import the runtime's modules.
//
// Three channels:
//   page <-> sandbox   window.postMessage, {v: 1, type, id, ...}; the sandbox checks event.origin
//                      and event.source first, then `checkRequest`; the page checks `checkReply`.
//   page <-> worker    the direct MessagePort (run-port.js): `run` only, `checkPortRequest`;
//                      replies `result` / `error`, the same shape as the sandbox's.
//   sandbox <-> worker a dedicated worker's own channel (no origin to check: only the sandbox that
//                      started the worker can post to it); WORKER_REQUESTS / WORKER_REPLIES.

import { LIMITS, validateInputs } from "./run-inputs.js";

export const PROTOCOL_VERSION = 1;

/** UTF-16 units; the tokenizer component's own limit is 4 MiB of UTF-8 (3 bytes a unit at most). */
export const MAX_TEXT_UNITS = 1 << 20;
/** The most outputs a result may carry. */
export const MAX_OUTPUTS = 64;
/** A model name in `init`: what a manifest entry may be called. */
export const MODEL_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/i;

/**
 * @typedef {{ data: Float32Array, shape: number[] }} TensorValue
 * @typedef {Record<string, TensorValue>} Outputs
 * @typedef {{ v: number, type: string, id: number, [field: string]: any }} Message
 * @typedef {{ fields: string[], check?: (msg: any) => string | null }} RequestSpec
 */

/** @returns {string | null} what is wrong with `text`, or null */
export function checkText(text) {
  if (typeof text !== "string") return "text must be a string";
  if (text.length === 0) return "text is empty";
  if (text.length > MAX_TEXT_UNITS) return `text is over ${MAX_TEXT_UNITS} characters`;
  return null;
}

/**
 * What the user gives in input mode (init.input.kind; default: what the model's manifest entry
 * implies): `tensor` numbers (draw pad, .npy/.json/.csv file), `image` an image file (the entry
 * declares preprocess {kind: "image"}), `text` typed text (the entry names a tokenizer),
 * `camera` live frames of the camera, each made into the tensor like an image (the embedder must
 * also delegate the camera with the iframe's allow="camera"); their results are posted at most
 * `rate` times a second (init.input.rate, default 1); `audio` an audio file (the entry declares
 * preprocess {kind: "audio"}), `microphone` live samples of the microphone, windowed like an audio
 * file (the embedder must delegate it with allow="microphone"), posted at most `rate` times a second.
 */
export const INPUT_KINDS = Object.freeze(["tensor", "image", "text", "camera", "audio", "microphone"]);

/** The live input kinds: results posted at most init.input.rate times a second. */
export const LIVE_KINDS = Object.freeze(["camera", "microphone"]);

/** @param {any} msg @returns {string | null} */
function checkInit(msg) {
  if (typeof msg.model !== "string" || !MODEL_NAME.test(msg.model)) return "init.model must be a model name";
  if (msg.requireIsolation !== undefined && typeof msg.requireIsolation !== "boolean") return "init.requireIsolation must be a boolean";
  if (msg.timeoutMs !== undefined && !(Number.isInteger(msg.timeoutMs) && msg.timeoutMs >= LIMITS.minTimeoutMs && msg.timeoutMs <= LIMITS.maxTimeoutMs)) {
    return `init.timeoutMs must be an integer in [${LIMITS.minTimeoutMs}, ${LIMITS.maxTimeoutMs}]`;
  }
  if (msg.input !== undefined) {
    const i = msg.input;
    if (!i || typeof i !== "object" || Object.getPrototypeOf(i) !== Object.prototype) return "init.input must be an object {report: boolean}";
    for (const k of Object.keys(i)) if (k !== "report" && k !== "kind" && k !== "rate") return `init.input: unexpected field ${JSON.stringify(k.slice(0, 40))}`;
    if (typeof i.report !== "boolean") return "init.input.report must be a boolean";
    if (i.kind !== undefined && !INPUT_KINDS.includes(i.kind)) return `init.input.kind must be one of ${INPUT_KINDS.join(", ")}`;
    if (i.rate !== undefined && (!LIVE_KINDS.includes(i.kind) || typeof i.rate !== "number" || !(i.rate > 0 && i.rate <= LIMITS.maxInputRate))) {
      return `init.input.rate must be a number in (0, ${LIMITS.maxInputRate}], with kind "camera" or "microphone"`;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------
// page -> sandbox

/**
 * Requests the sandbox serves, each with the fields it may carry besides v, type and id.
 *   ping                                  -> pong
 *   init   {model, requireIsolation?, timeoutMs?, input?: {report: boolean, kind?: INPUT_KINDS, rate?: number}}
 *                                         -> progress*, ready | error
 *   run    {inputs: {name: {data: Float32Array, shape: number[]}}} -> result | error
 *   run-text {text: string}  (a model whose manifest entry names a tokenizer)
 *                                         -> result {outputs, windows, timings} | error
 *   status                                -> status
 *   cancel                                -> cancelled {count}
 *   purge                                 -> purged {deleted}
 *   close                                 -> closed
 * @type {Readonly<Record<string, RequestSpec>>}
 */
export const REQUESTS = Object.freeze({
  ping: { fields: [] },
  init: { fields: ["model", "requireIsolation", "timeoutMs", "input"], check: checkInit },
  run: { fields: ["inputs"], check: (m) => validateInputs(m.inputs) },
  "run-text": { fields: ["text"], check: (m) => checkText(m.text) },
  status: { fields: [] },
  cancel: { fields: [] },
  purge: { fields: [] },
  close: { fields: [] },
});

/**
 * What is wrong with a request, or null. `types` narrows what this receiver serves.
 * @param {unknown} msg
 * @param {Readonly<Record<string, RequestSpec>>} [types]
 * @param {string} [receiver] how the receiver names itself in the version error
 * @returns {string | null}
 */
export function checkRequest(msg, types = REQUESTS, receiver = "this sandbox") {
  if (msg === null || typeof msg !== "object" || Array.isArray(msg)) return "a message is an object";
  if (Object.getPrototypeOf(msg) !== Object.prototype) return "a message is a plain object";
  const m = /** @type {Record<string, any>} */ (msg);
  if (m.v !== PROTOCOL_VERSION) return `unsupported protocol version ${JSON.stringify(m.v)}; ${receiver} speaks v${PROTOCOL_VERSION}`;
  if (typeof m.type !== "string" || !Object.hasOwn(types, m.type)) {
    return types === PORT_REQUESTS ? "this port serves run requests only" : `unknown message type ${JSON.stringify(String(m.type).slice(0, 40))}`;
  }
  if (!Number.isSafeInteger(m.id) || m.id < 0) return "id must be a non-negative safe integer";
  const spec = types[m.type];
  const allowed = allowedFields(spec);
  for (const k of Object.keys(m)) if (!allowed.has(k)) return `unexpected field ${JSON.stringify(k.slice(0, 40))} in ${m.type}`;
  return spec.check ? spec.check(m) : null;
}

/** Each request's allowed fields, made once (every run is checked: profiled). @type {WeakMap<RequestSpec, Set<string>>} */
const ALLOWED = new WeakMap();
/** @param {RequestSpec} spec */
function allowedFields(spec) {
  let a = ALLOWED.get(spec);
  if (!a) ALLOWED.set(spec, (a = new Set(["v", "type", "id", ...spec.fields])));
  return a;
}

/** The id of a message that failed its check, when it has a usable one (for the error reply). */
export function idOf(/** @type {any} */ msg) {
  return msg && typeof msg === "object" && Number.isSafeInteger(msg.id) ? msg.id : null;
}

// ---------------------------------------------------------------------------------------
// sandbox -> page

/**
 * Replies and unsolicited messages of the sandbox (and, for result/error, of the worker's port).
 *   hello {protocol} (once, at start; id 0)      pong          progress {phase, loaded?, total?, message?}
 *   ready {model, engine, graph, isolation, timings}           result {outputs, timings, windows?}
 *   status {status}   cancelled {count}   purged {deleted}   closed   error {code, message}
 *   input-result {seq, outputs, result?}   (input mode: the user pressed Send; id is the init's;
 *                 result: the manifest's postprocess applied, see checkProcessed)
 *   port              (id 0; event.ports[0] is the worker's direct line, see run-port.js)
 *   port-closed {running, code, message, retry}   (id 0; the worker behind the port stopped)
 */
export const REPLY_TYPES = Object.freeze(new Set(["hello", "pong", "progress", "ready", "result", "status", "cancelled", "purged", "closed", "error", "input-result", "port", "port-closed"]));

/** The phases `progress` reports, in order. */
export const PROGRESS_PHASES = Object.freeze(["engine", "manifest", "cache", "download", "verify", "tokenizer", "graph"]);

/** A message dressed as ours: an object of this protocol version (forgeries are counted). */
export function isProtocolMessage(/** @type {unknown} */ data) {
  return !!data && typeof data === "object" && /** @type {any} */ (data).v === PROTOCOL_VERSION;
}

/** A reply the page accepts from its (origin- and window-checked) sandbox. */
export function checkReply(/** @type {unknown} */ msg) {
  return isProtocolMessage(msg) && REPLY_TYPES.has(/** @type {any} */ (msg).type);
}

/**
 * A result's outputs, checked: {name: {data: Float32Array, shape: int[]}}, sizes matching,
 * nothing else.
 * @param {unknown} outputs
 * @returns {outputs is Outputs}
 */
export function checkOutputs(outputs) {
  if (!outputs || typeof outputs !== "object" || Object.getPrototypeOf(outputs) !== Object.prototype) return false;
  // Plain loops: this runs on the page for every result (profiled), often before V8 optimizes it.
  const names = Object.keys(outputs);
  if (names.length === 0 || names.length > MAX_OUTPUTS) return false;
  for (const name of names) {
    const o = outputs[name];
    if (!o || typeof o !== "object") return false;
    for (const k of Object.keys(o)) if (k !== "data" && k !== "shape") return false;
    if (!(o.data instanceof Float32Array) || !Array.isArray(o.shape)) return false;
    let n = 1;
    for (const d of o.shape) {
      if (!Number.isSafeInteger(d) || d < 0) return false;
      n *= d;
    }
    if (n !== o.data.length) return false;
  }
  return true;
}

/** The fields an input-result has (`result` when the model declares a postprocess), and nothing else may ride along. */
const INPUT_RESULT_FIELDS = ["id,outputs,seq,type,v", "id,outputs,result,seq,type,v"];

/**
 * An input-result the page accepts: for the init it sent (`initId`), outputs only (and what
 * the manifest's `postprocess` made of them).
 * @param {any} msg @param {number | null} initId
 */
export function checkInputResult(msg, initId) {
  return msg?.type === "input-result" && initId !== null && msg.id === initId && Number.isSafeInteger(msg.seq)
    && checkOutputs(msg.outputs) && INPUT_RESULT_FIELDS.includes(Object.keys(msg).sort().join(","))
    && (msg.result === undefined || checkProcessed(msg.result));
}

const MAX_RESULT_ITEMS = 10000;
/** Scores: one per audio window, 30 minutes (sandbox-audio.js's longest file) of 512-sample windows at 16 kHz fit. */
const MAX_SCORES = 1 << 20;
const isNum = (/** @type {unknown} */ x) => typeof x === "number" && Number.isFinite(x);
const isClass = (/** @type {any} */ c) => c && typeof c.label === "string" && Number.isSafeInteger(c.index) && isNum(c.score);

/**
 * A post-processed result (static/media.js `postprocess`), checked field by field:
 *   {kind: "classes", classes: [[{label, index, score}]]}
 *   {kind: "boxes", boxes: [{box: [x0, y0, x1, y1], score, index, label}]}
 *   {kind: "mask", width, height, mask: Uint8Array}
 *   {kind: "scores", scores: number[], threshold, step?}   (step: seconds per score, audio windows)
 * @param {any} r
 */
export function checkProcessed(r) {
  if (!r || typeof r !== "object" || Object.getPrototypeOf(r) !== Object.prototype) return false;
  const keys = Object.keys(r).sort().join(",");
  switch (r.kind) {
    case "classes":
      return keys === "classes,kind" && Array.isArray(r.classes) && r.classes.length <= MAX_RESULT_ITEMS
        && r.classes.every((/** @type {any} */ row) => Array.isArray(row) && row.length <= 1000 && row.every(isClass));
    case "boxes":
      return keys === "boxes,kind" && Array.isArray(r.boxes) && r.boxes.length <= MAX_RESULT_ITEMS
        && r.boxes.every((/** @type {any} */ b) => isClass(b) && Object.keys(b).length === 4 && Array.isArray(b.box) && b.box.length === 4 && b.box.every(isNum));
    case "mask":
      return keys === "height,kind,mask,width" && Number.isSafeInteger(r.width) && Number.isSafeInteger(r.height)
        && r.mask instanceof Uint8Array && r.width > 0 && r.height > 0 && r.mask.length === r.width * r.height;
    case "scores":
      return (keys === "kind,scores,threshold" || (keys === "kind,scores,step,threshold" && isNum(r.step) && r.step > 0))
        && isNum(r.threshold) && Array.isArray(r.scores) && r.scores.length <= MAX_SCORES && r.scores.every(isNum);
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------------------
// page -> worker (the direct port)

/** The direct port serves `run` only, validated exactly as the sandbox validates a relayed one. */
export const PORT_REQUESTS = Object.freeze({ run: REQUESTS.run });

/** @param {unknown} msg @returns {string | null} */
export function checkPortRequest(msg) {
  return checkRequest(msg, PORT_REQUESTS, "this port");
}

/** A reply on the direct port: `result` or `error`, like the sandbox's. */
export function checkPortReply(/** @type {unknown} */ msg) {
  const type = /** @type {any} */ (msg)?.type;
  return isProtocolMessage(msg) && (type === "result" || type === "error");
}

// ---------------------------------------------------------------------------------------
// sandbox <-> worker

/**
 * Sandbox -> worker:
 *   start {components}                       the verified engine files (integrity pins, see
 *                                            verified-load.js); first, before anything else
 *   load {id, bytes: ArrayBuffer, encoding}  -> loaded {id, info, engineVersion, engineBuild, timings}
 *   run {id, inputs: [{name, shape, data}]}  -> result {id, outputs: [{name, shape, data}], timings}
 *   load-tokenizer {id, bytes, maxLength, stride}  -> tokenizer-loaded {id, info}
 *   run-text {id, text}                      -> result {id, outputs, windows, timings}
 *   port {port: MessagePort, watch?: {buffer: SharedArrayBuffer, origin}}  the page's direct line
 *                                            (run-port.js; watch: the PortWatch that supervises it)
 * Worker -> sandbox: boot {isolation} (once), error {id, code, message, fatal} for any request,
 *   port-run {id}, port-done {id, outcome: "ok" | "rejected" | "error", fatal, code?, message?}
 *   (with a PortWatch: no port-run, and port-done for outcomes other than ok only).
 */
export const WORKER_REQUESTS = Object.freeze(["start", "load", "run", "load-tokenizer", "run-text", "port"]);
export const WORKER_REPLIES = Object.freeze(["boot", "loaded", "tokenizer-loaded", "result", "error", "port-run", "port-done"]);
