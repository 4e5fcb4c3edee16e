// The sandbox: the document in the engine iframe. It owns the model bytes and the engine
// worker; the embedding page only ever sees messages.
//
// Trust: messages are accepted only when event.source === window.parent and event.origin is
// in the allowlist (this document's own origin, plus the origins in the `parents` query
// parameter, comma-separated; `*` is refused). Where the browser says who the parent is
// (location.ancestorOrigins), that origin must be in the allowlist too. Anything else is
// dropped without an answer and counted; well-addressed messages with a bad schema are
// answered with an error and counted as rejected.
//
// Requests (parent -> sandbox), all {v: 1, type, id, ...}:
//   ping                                  -> pong
//   init   {model, requireIsolation?, timeoutMs?, input?: {report: boolean}}
//                                         -> progress*, ready | error
//   run    {inputs: {name: {data: Float32Array, shape: number[]}}} -> result | error
//   run-text {text: string}  (a model whose manifest entry names a tokenizer)
//                                         -> result {outputs, windows, timings} | error
//   status                                -> status
//   cancel                                -> cancelled {count}
//   purge                                 -> purged {deleted}
//   close                                 -> closed
// Unsolicited: hello (once, at start).
//
// Input mode (init with `input`): this document shows a draw pad / file picker (sandbox-input.js)
// and runs the user's input itself, so the raw input never leaves this origin. With
// input.report true, a result is posted when the user presses Send, as
//   input-result {id: <the init's id>, seq, outputs: {name: {data: Float32Array, shape}}}
// (outputs only: no input, no file name, no timings); with false, nothing is posted. Runs of the
// user's input are not counted in `status` (nor are their errors, timeouts or restarts): the
// parent learns nothing of them but what the user sends.

import { mountInput } from "./sandbox-input.js";
import { checkText, mountTextInput, tokenizerSpec } from "./sandbox-text.js";
import { LIMITS, validateInputs, checkAgainstGraph as checkInputsAgainstGraph } from "./run-inputs.js";

const PROTOCOL_VERSION = 1;
const CACHE_NAME = "secure-context-models-v1";
const DEFAULT_TIMEOUT_MS = 30000;
const ENCODINGS = { onnx: "onnx", tflite: "tensorflowlite", tensorflowlite: "tensorflowlite" };

const WORKER_URL = new URL("./worker.js", import.meta.url).href;
const MANIFEST_URL = new URL("./models/manifest.json", import.meta.url).href;

// Trusted Types: `new Worker(url)` is a sink. The only URL this policy lets through is ours.
const ttPolicy = globalThis.trustedTypes?.createPolicy("secure-context", {
  createScriptURL(url) {
    if (url === WORKER_URL && new URL(url).origin === location.origin) return url;
    throw new TypeError(`secure-context policy: refusing script URL ${url}`);
  },
});

class SandboxError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------
// Configuration: who may talk to us.

const stateEl = document.getElementById("sandbox-state");
const droppedEl = document.getElementById("sandbox-dropped");
const rejectedEl = document.getElementById("sandbox-rejected");

function parseAllowlist() {
  const allowed = new Set([location.origin]);
  const params = new URL(location.href).searchParams;
  for (const raw of params.getAll("parents").flatMap((v) => v.split(","))) {
    const o = raw.trim();
    if (!o) continue;
    if (o === "*" || o === "null") throw new SandboxError("config", `parents: "${o}" is not allowed; list exact origins`);
    let u;
    try {
      u = new URL(o);
    } catch {
      throw new SandboxError("config", `parents: "${o}" is not an origin`);
    }
    if ((u.protocol !== "https:" && u.protocol !== "http:") || u.origin !== o) {
      throw new SandboxError("config", `parents: "${o}" is not a serialized http(s) origin (like https://example.com)`);
    }
    allowed.add(o);
  }
  return allowed;
}

let configError = null;
/** @type {Set<string>} */ let allowed = new Set();
try {
  allowed = parseAllowlist();
} catch (e) {
  configError = e;
}
/** The parent's origin when the browser tells us (Chromium, WebKit). */
const ancestor = location.ancestorOrigins?.length ? location.ancestorOrigins[0] : null;
if (!configError && window.parent === window) {
  configError = new SandboxError("config", "this document only works inside an iframe");
} else if (!configError && ancestor !== null && !allowed.has(ancestor)) {
  configError = new SandboxError("config", `embedded by ${ancestor}, which is not an allowed parent`);
}

// ---------------------------------------------------------------------------------------
// State

const counters = {
  dropped: 0,
  rejected: 0,
  runs: 0,
  errors: 0,
  timeouts: 0,
  cancelled: 0,
  workerStarts: 0,
  workerRestarts: 0,
  cacheHits: 0,
  cacheEvictions: 0,
};
const sandboxIsolation = {
  crossOriginIsolated: self.crossOriginIsolated === true,
  sharedArrayBuffer: typeof SharedArrayBuffer === "function",
};
let state = configError ? "misconfigured" : "idle";
let workerIsolation = null;
/** @type {any} */ let model = null; // {name, file, sha256, integrity, size, encoding, labels, verified, source}
/** @type {Uint8Array | null} */ let modelBytes = null;
/** A text model's tokenizer.json, verified like the model: {bytes, maxLength, stride}. */
/** @type {{bytes: Uint8Array, maxLength: number, stride: number} | null} */ let tokenizerFile = null;
let graphInfo = null;
let engineVersion = null;
let engineBuild = null; // "relaxed-simd" or "simd128": static/engine-variant.js
let timeoutMs = DEFAULT_TIMEOUT_MS;
let requireIsolation = false;
let parentOrigin = ancestor;
/** Input mode: the engine's counters (runs, errors, timeouts, restarts) stop being reported. */
let privateRuns = false;
/** @type {Record<string, number> | null} */ let reportedCounters = null;
const loadTimings = {};
let cacheNote = null;

function render() {
  stateEl.textContent = configError ? `${state}: ${configError.message}` : state;
  droppedEl.textContent = String(counters.dropped);
  rejectedEl.textContent = String(counters.rejected);
  document.documentElement.dataset.state = state;
}

function isolationMode() {
  const iso = sandboxIsolation.crossOriginIsolated && (workerIsolation?.crossOriginIsolated ?? true);
  return iso ? "isolated" : "single-threaded";
}

/** The counters the parent may see: in input mode, frozen at its start except those its own messages move. */
function reportedCountersNow() {
  if (!privateRuns || !reportedCounters) return { ...counters };
  return { ...reportedCounters, dropped: counters.dropped, rejected: counters.rejected, cancelled: counters.cancelled };
}

function statusSnapshot() {
  const mode = isolationMode();
  return {
    protocol: PROTOCOL_VERSION,
    state,
    error: configError ? configError.message : undefined,
    isolation: {
      sandbox: { ...sandboxIsolation },
      worker: workerIsolation ? { ...workerIsolation } : null,
      mode,
      note: mode === "isolated"
        ? "cross-origin isolated: SharedArrayBuffer and precise timers are available to the engine"
        : "not cross-origin isolated: the engine runs single-threaded without SharedArrayBuffer",
    },
    model: model ? { ...model } : null,
    engine: engineVersion ? { version: engineVersion, build: engineBuild } : null,
    graph: graphInfo,
    counters: reportedCountersNow(),
    allowedOrigins: [...allowed],
    limits: { ...LIMITS, timeoutMs },
    timings: { ...loadTimings },
    cache: cacheNote,
  };
}

// ---------------------------------------------------------------------------------------
// Messages from the parent

/** @param {string} origin @param {object} msg @param {Transferable[]} [transfer] */
function reply(origin, msg, transfer = []) {
  window.parent.postMessage({ v: PROTOCOL_VERSION, ...msg }, origin, transfer);
}

function drop() {
  counters.dropped++;
  render();
}

const SCHEMA = {
  ping: [],
  init: ["model", "requireIsolation", "timeoutMs", "input"],
  run: ["inputs"],
  "run-text": ["text"],
  status: [],
  cancel: [],
  purge: [],
  close: [],
};

/** @returns {string | null} what is wrong with msg, or null */
function validate(msg) {
  if (msg === null || typeof msg !== "object" || Array.isArray(msg)) return "a message is an object";
  if (Object.getPrototypeOf(msg) !== Object.prototype) return "a message is a plain object";
  if (msg.v !== PROTOCOL_VERSION) return `unsupported protocol version ${JSON.stringify(msg.v)}; this sandbox speaks v${PROTOCOL_VERSION}`;
  if (typeof msg.type !== "string" || !Object.hasOwn(SCHEMA, msg.type)) return `unknown message type ${JSON.stringify(String(msg.type).slice(0, 40))}`;
  if (!Number.isSafeInteger(msg.id) || msg.id < 0) return "id must be a non-negative safe integer";
  const allowedKeys = new Set(["v", "type", "id", ...SCHEMA[msg.type]]);
  for (const k of Object.keys(msg)) if (!allowedKeys.has(k)) return `unexpected field ${JSON.stringify(k.slice(0, 40))} in ${msg.type}`;
  if (msg.type === "init") {
    if (typeof msg.model !== "string" || !/^[a-z0-9][a-z0-9._-]{0,63}$/i.test(msg.model)) return "init.model must be a model name";
    if (msg.requireIsolation !== undefined && typeof msg.requireIsolation !== "boolean") return "init.requireIsolation must be a boolean";
    if (msg.timeoutMs !== undefined && !(Number.isInteger(msg.timeoutMs) && msg.timeoutMs >= LIMITS.minTimeoutMs && msg.timeoutMs <= LIMITS.maxTimeoutMs)) {
      return `init.timeoutMs must be an integer in [${LIMITS.minTimeoutMs}, ${LIMITS.maxTimeoutMs}]`;
    }
    if (msg.input !== undefined) {
      const i = msg.input;
      if (!i || typeof i !== "object" || Object.getPrototypeOf(i) !== Object.prototype) return "init.input must be an object {report: boolean}";
      for (const k of Object.keys(i)) if (k !== "report") return `init.input: unexpected field ${JSON.stringify(k.slice(0, 40))}`;
      if (typeof i.report !== "boolean") return "init.input.report must be a boolean";
    }
  }
  if (msg.type === "run") return validateInputs(msg.inputs);
  if (msg.type === "run-text") return checkText(msg.text);
  return null;
}

/** Against the loaded graph: names and fixed dimensions (static/run-inputs.js). */
function checkAgainstGraph(inputs) {
  checkInputsAgainstGraph(inputs, graphInfo);
}

addEventListener("message", (event) => {
  if (event.source !== window.parent || !allowed.has(event.origin) || configError) return drop();
  if (parentOrigin === null) parentOrigin = event.origin;
  else if (event.origin !== parentOrigin) return drop();
  const msg = event.data;
  const problem = validate(msg);
  if (problem) {
    counters.rejected++;
    render();
    const id = msg && typeof msg === "object" && Number.isSafeInteger(msg.id) ? msg.id : null;
    reply(event.origin, { type: "error", id, code: "bad-message", message: problem });
    return;
  }
  handle(msg, event.origin).catch((e) => {
    counters.errors++;
    reply(event.origin, { type: "error", id: msg.id, code: e?.code ?? "internal", message: e?.message ?? String(e) });
  });
});

let initPromise = null;

async function handle(msg, origin) {
  switch (msg.type) {
    case "ping":
      reply(origin, { type: "pong", id: msg.id });
      return;
    case "status":
      reply(origin, { type: "status", id: msg.id, status: statusSnapshot() });
      return;
    case "init": {
      if (initPromise) throw new SandboxError("invalid-state", "already initialized; open a new sandbox for another model");
      requireIsolation = msg.requireIsolation === true;
      if (msg.timeoutMs) timeoutMs = msg.timeoutMs;
      initPromise = init(msg.model, (p) => reply(origin, { type: "progress", id: msg.id, ...p }));
      try {
        await initPromise;
      } catch (e) {
        state = "error";
        render();
        initPromise = null;
        engine.stop();
        throw e;
      }
      if (msg.input && !tokenizerFile && !(graphInfo?.inputs?.length === 1 && Array.isArray(graphInfo.inputs[0].shape))) {
        throw new SandboxError("invalid-argument", "input mode needs a model with exactly one input of known rank");
      }
      direct.origin = origin;
      reply(origin, {
        type: "ready",
        id: msg.id,
        model: { ...model },
        engine: { version: engineVersion, build: engineBuild },
        graph: graphInfo,
        isolation: statusSnapshot().isolation,
        timings: { ...loadTimings },
      });
      direct.offer();
      if (msg.input) startInput(msg.input.report, msg.id, origin);
      return;
    }
    case "run": {
      // In input mode the engine is the user's: a run of the parent's would queue behind theirs
      // and time them.
      if (privateRuns) throw new SandboxError("invalid-state", "this sandbox is in input mode: it runs the user's input only");
      if (state !== "ready") throw new SandboxError("invalid-state", `not ready (${state})`);
      checkAgainstGraph(msg.inputs);
      const inputs = Object.entries(msg.inputs).map(([name, t]) => ({ name, shape: t.shape, data: t.data }));
      const r = await engine.run(inputs);
      const outputs = {};
      for (const o of r.outputs) outputs[o.name] = { data: o.data, shape: o.shape };
      counters.runs++;
      reply(origin, { type: "result", id: msg.id, outputs, timings: r.timings }, r.outputs.map((o) => o.data.buffer));
      return;
    }
    case "run-text": {
      if (privateRuns) throw new SandboxError("invalid-state", "this sandbox is in input mode: it runs the user's input only");
      if (state !== "ready") throw new SandboxError("invalid-state", `not ready (${state})`);
      if (!tokenizerFile) throw new SandboxError("invalid-argument", `model "${model.name}" takes tensors, not text (its manifest entry names no tokenizer)`);
      const r = await engine.runText(msg.text);
      counters.runs++;
      reply(origin, { type: "result", id: msg.id, ...textResult(r) }, r.outputs.map((o) => o.data.buffer));
      return;
    }
    case "cancel": {
      if (privateRuns) throw new SandboxError("invalid-state", "this sandbox is in input mode: its runs are the user's");
      const count = engine.cancelAll();
      counters.cancelled += count;
      reply(origin, { type: "cancelled", id: msg.id, count });
      return;
    }
    case "purge": {
      const deleted = "caches" in self ? await caches.delete(CACHE_NAME) : false;
      reply(origin, { type: "purged", id: msg.id, deleted });
      return;
    }
    case "close": {
      engine.stop();
      state = "closed";
      render();
      reply(origin, { type: "closed", id: msg.id });
      return;
    }
  }
}

/** A worker's text result as the parent gets it: outputs by name, and the windows' offsets. */
function textResult(r) {
  const outputs = {};
  for (const o of r.outputs) outputs[o.name] = { data: o.data, shape: o.shape };
  return { outputs, windows: r.windows, timings: r.timings };
}

/** Input mode: the UI runs the engine here; the parent gets outputs only, when the user sends them. */
function startInput(report, initId, origin) {
  let seq = 0;
  // What `status` shows from now on: the counters as they were (input runs would reveal each
  // stroke and pick), then only what the parent's own messages change.
  privateRuns = true;
  reportedCounters = { ...counters };
  // Outputs only: not the input, not a text's offsets, not timings.
  const send = report
    ? (outputs) => reply(origin, { type: "input-result", id: initId, seq: ++seq, outputs })
    : null;
  if (tokenizerFile) {
    mountTextInput({
      labels: model.labels,
      send,
      run: async (text) => {
        if (state !== "ready") throw new SandboxError("invalid-state", `not ready (${state})`);
        return textResult(await engine.runText(text));
      },
    });
    return;
  }
  mountInput({
    spec: graphInfo.inputs[0],
    labels: model.labels,
    send,
    run: async ({ name, data, shape }) => {
      if (state !== "ready") throw new SandboxError("invalid-state", `not ready (${state})`);
      const t = { [name]: { data, shape } };
      const problem = validateInputs(t);
      if (problem) throw new SandboxError("invalid-argument", problem);
      checkAgainstGraph(t);
      const r = await engine.run([{ name, shape, data }]);
      const outputs = {};
      for (const o of r.outputs) outputs[o.name] = { data: o.data, shape: o.shape };
      return { outputs };
    },
  });
}

// ---------------------------------------------------------------------------------------
// Model: manifest, download with SRI, WebCrypto re-hash, Cache API keyed by content hash.

async function sha256Hex(bytes) {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

function hexToBase64(hex) {
  let s = "";
  for (let i = 0; i < hex.length; i += 2) s += String.fromCharCode(parseInt(hex.slice(i, i + 2), 16));
  return btoa(s);
}

async function readManifestEntry(name) {
  const res = await fetch(MANIFEST_URL, { cache: "no-cache", credentials: "same-origin", mode: "same-origin" });
  if (!res.ok) throw new SandboxError("network", `cannot read the model manifest (HTTP ${res.status})`);
  const manifest = await res.json();
  const entry = manifest?.models?.find?.((m) => m?.name === name);
  if (!entry) throw new SandboxError("not-found", `no model "${name}" in the manifest`);
  const { file, sha256, integrity, size, format } = entry;
  if (typeof file !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(file)) throw new SandboxError("manifest", `model "${name}": bad file name`);
  if (typeof sha256 !== "string" || !/^[0-9a-f]{64}$/.test(sha256)) throw new SandboxError("manifest", `model "${name}": bad sha256`);
  if (integrity !== `sha256-${hexToBase64(sha256)}`) throw new SandboxError("manifest", `model "${name}": integrity does not match sha256`);
  if (!Number.isSafeInteger(size) || size <= 0 || size > LIMITS.maxModelBytes) throw new SandboxError("too-large", `model "${name}": size ${size} is outside (0, ${LIMITS.maxModelBytes}]`);
  const encoding = ENCODINGS[format];
  if (!encoding) throw new SandboxError("manifest", `model "${name}": unsupported format ${format}`);
  let tokenizer;
  try {
    tokenizer = tokenizerSpec(entry, MANIFEST_URL, hexToBase64);
  } catch (e) {
    throw new SandboxError("manifest", e.message);
  }
  return {
    tokenizer,
    name,
    file,
    sha256,
    integrity,
    size,
    encoding,
    labels: Array.isArray(entry.labels) ? entry.labels.map(String).slice(0, 4096) : undefined,
    url: new URL(`./${file}`, MANIFEST_URL).href,
  };
}

function cacheKey(sha256) {
  return new URL(`./sha256/${sha256}`, MANIFEST_URL).href;
}

async function openCache() {
  try {
    return "caches" in self ? await caches.open(CACHE_NAME) : null;
  } catch (e) {
    cacheNote = `Cache Storage unavailable: ${e?.message ?? e}`;
    return null;
  }
}

/** A cached copy, re-verified; a copy that fails verification is evicted. */
async function fromCache(cache, entry) {
  if (!cache) return null;
  const hit = await cache.match(cacheKey(entry.sha256));
  if (!hit) return null;
  const bytes = new Uint8Array(await hit.arrayBuffer());
  if (bytes.length === entry.size && (await sha256Hex(bytes)) === entry.sha256) {
    counters.cacheHits++;
    return bytes;
  }
  counters.cacheEvictions++;
  await cache.delete(cacheKey(entry.sha256));
  return null;
}

async function download(entry, progress) {
  let res;
  try {
    res = await fetch(entry.url, { integrity: entry.integrity, cache: "no-cache", credentials: "same-origin", mode: "same-origin" });
  } catch (e) {
    // fetch() says only "TypeError" for both an SRI mismatch and a network failure.
    // Fetch once more without SRI only to tell them apart; those bytes are never used.
    let got = null;
    try {
      const again = await fetch(entry.url, { cache: "no-store", credentials: "same-origin", mode: "same-origin" });
      if (again.ok) got = await sha256Hex(await again.arrayBuffer());
    } catch { /* network failure */ }
    if (got !== null && got !== entry.sha256) {
      throw new SandboxError("integrity", `model "${entry.name}" failed its integrity check: the server sent bytes with sha256 ${got}, the manifest pins ${entry.sha256}. Refusing to load it.`);
    }
    throw new SandboxError("network", `cannot download model "${entry.name}": ${e?.message ?? e}`);
  }
  if (!res.ok) throw new SandboxError("network", `cannot download model "${entry.name}" (HTTP ${res.status})`);
  const total = entry.size;
  const bytes = new Uint8Array(total);
  let loaded = 0;
  let last = 0;
  progress({ phase: "download", loaded, total });
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.length > total) {
      await reader.cancel();
      throw new SandboxError("integrity", `model "${entry.name}" is larger than the manifest's ${total} bytes`);
    }
    bytes.set(value, loaded);
    loaded += value.length;
    const now = performance.now();
    if (now - last > 50) {
      progress({ phase: "download", loaded, total });
      last = now;
    }
  }
  if (loaded !== total) throw new SandboxError("integrity", `model "${entry.name}" is ${loaded} bytes, the manifest says ${total}`);
  progress({ phase: "download", loaded, total });
  return bytes;
}

async function init(name, progress) {
  state = "loading";
  render();
  const t0 = performance.now();
  if (requireIsolation && !sandboxIsolation.crossOriginIsolated) {
    throw new SandboxError("not-isolated", "isolation was required, but the sandbox is not cross-origin isolated");
  }
  progress({ phase: "engine", message: "starting the engine worker" });
  const workerBoot = engine.start(); // in parallel with the download

  progress({ phase: "manifest" });
  const entry = await readManifestEntry(name);
  const cache = await openCache();
  let bytes = await fromCache(cache, entry);
  let source = "cache";
  const t1 = performance.now();
  if (bytes) {
    progress({ phase: "cache", loaded: bytes.length, total: bytes.length });
  } else {
    source = "network";
    bytes = await download(entry, progress);
  }
  const t2 = performance.now();
  progress({ phase: "verify" });
  const digest = await sha256Hex(bytes);
  if (digest !== entry.sha256) {
    throw new SandboxError("integrity", `model "${entry.name}" failed its integrity check: sha256 ${digest}, the manifest pins ${entry.sha256}. Refusing to load it.`);
  }
  if (source === "network" && cache) {
    try {
      await cache.put(cacheKey(entry.sha256), new Response(bytes, { headers: { "content-type": "application/octet-stream", "x-sha256": entry.sha256 } }));
    } catch (e) {
      cacheNote = `not cached: ${e?.message ?? e}`;
    }
  }
  if (entry.tokenizer) {
    progress({ phase: "tokenizer" });
    const t = entry.tokenizer;
    let tb = await fromCache(cache, t);
    if (!tb) tb = await download(t, () => {});
    if ((await sha256Hex(tb)) !== t.sha256) throw new SandboxError("integrity", `${t.name} failed its integrity check. Refusing to load it.`);
    if (cache) {
      try {
        await cache.put(cacheKey(t.sha256), new Response(tb, { headers: { "content-type": "application/json", "x-sha256": t.sha256 } }));
      } catch { /* not cached, still verified */ }
    }
    tokenizerFile = { bytes: tb, maxLength: t.maxLength, stride: t.stride };
  }
  const t3 = performance.now();
  modelBytes = bytes;
  model = { name: entry.name, file: entry.file, sha256: entry.sha256, integrity: entry.integrity, size: entry.size, encoding: entry.encoding, labels: entry.labels, verified: true, source,
    ...(entry.tokenizer ? { tokenizer: { file: entry.tokenizer.file, sha256: entry.tokenizer.sha256, maxLength: entry.tokenizer.maxLength, stride: entry.tokenizer.stride } } : {}) };

  await workerBoot;
  if (requireIsolation && !workerIsolation?.crossOriginIsolated) {
    throw new SandboxError("not-isolated", "isolation was required, but the engine worker is not cross-origin isolated");
  }
  progress({ phase: "graph" });
  const loaded = await engine.load();
  if (loaded.info.sha256 !== entry.sha256) {
    throw new SandboxError("integrity", `the engine hashed the model as ${loaded.info.sha256}, expected ${entry.sha256}`);
  }
  graphInfo = loaded.info;
  engineVersion = loaded.engineVersion;
  engineBuild = loaded.engineBuild;
  Object.assign(loadTimings, {
    manifestMs: t1 - t0,
    [source === "cache" ? "cacheReadMs" : "downloadMs"]: t2 - t1,
    verifyMs: t3 - t2,
    ...loaded.timings,
    totalMs: performance.now() - t0,
  });
  state = "ready";
  render();
}

// ---------------------------------------------------------------------------------------
// The engine worker: started, fed, timed out, cancelled and restarted from here.

const engine = new (class Engine {
  /** @type {Worker | null} */ worker = null;
  /** @type {Promise<void> | null} */ booted = null;
  /** @type {Map<number, {resolve: Function, reject: Function, timer: number}>} */ pending = new Map();
  /** @type {Array<any>} */ queue = [];
  /** @type {Promise<any> | null} */ loading = null;
  busy = false;
  nextId = 1;
  generation = 0;

  start() {
    if (this.booted) return this.booted;
    const gen = ++this.generation;
    counters.workerStarts++;
    const url = ttPolicy ? ttPolicy.createScriptURL(WORKER_URL) : WORKER_URL;
    const w = new Worker(/** @type {any} */ (url), { type: "module", name: "secure-context-engine" });
    this.worker = w;
    this.booted = new Promise((resolve, reject) => {
      const onBoot = (ev) => {
        if (ev.data?.type !== "boot") return;
        w.removeEventListener("message", onBoot);
        workerIsolation = {
          crossOriginIsolated: ev.data.isolation?.crossOriginIsolated === true,
          sharedArrayBuffer: ev.data.isolation?.sharedArrayBuffer === true,
        };
        resolve();
      };
      w.addEventListener("message", onBoot);
      w.addEventListener("error", (ev) => {
        ev.preventDefault?.();
        reject(new SandboxError("engine-load", `the engine worker failed to start: ${ev.message || "script error"}`));
        if (gen === this.generation) this.fail(new SandboxError("worker-error", `the engine worker crashed: ${ev.message || "error"}`));
      });
    });
    w.addEventListener("message", (ev) => this.onMessage(ev.data));
    return this.booted;
  }

  onMessage(msg) {
    if (!msg || typeof msg !== "object" || msg.type === "boot") return;
    if (msg.type === "port-run" || msg.type === "port-done") return direct.onWorker(msg);
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.type === "error") {
      const err = new SandboxError(String(msg.code), String(msg.message));
      p.reject(err);
      if (msg.fatal) this.restart();
    } else {
      p.resolve(msg);
    }
  }

  /** Sends one request; with a timeout, the worker is restarted when it expires. */
  request(body, transfer, ms) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = ms
        ? setTimeout(() => {
            if (!this.pending.has(id)) return;
            this.pending.delete(id);
            counters.timeouts++;
            reject(new SandboxError("timeout", `no answer within ${ms} ms; the engine was stopped and restarted`));
            this.restart();
          }, ms)
        : 0;
      this.pending.set(id, { resolve, reject, timer });
      this.worker.postMessage({ ...body, id }, transfer);
    });
  }

  /** Starts the worker if needed and loads the graph from the verified bytes in memory. */
  load() {
    const p = (async () => {
      await this.start();
      const copy = modelBytes.slice(); // keep ours for restarts
      const loaded = await this.request({ type: "load", bytes: copy.buffer, encoding: model.encoding }, [copy.buffer], Math.max(timeoutMs, 60000));
      if (tokenizerFile) await this.loadTokenizer();
      return loaded;
    })();
    this.loading = p;
    p.then(() => { if (this.loading === p) direct.offer(); }, () => { if (this.loading === p) this.loading = null; });
    return p;
  }

  /** A text model's tokenizer into the worker (after every (re)start, with the graph). */
  loadTokenizer() {
    const copy = tokenizerFile.bytes.slice();
    return this.request({ type: "load-tokenizer", bytes: copy.buffer, maxLength: tokenizerFile.maxLength, stride: tokenizerFile.stride },
      [copy.buffer], Math.max(timeoutMs, 60000));
  }

  /** Text in, outputs and windows out, queued like `run`. */
  runText(text) {
    return this.enqueue(() => this.request({ type: "run-text", text }, [], timeoutMs));
  }

  /** Runs are serialized: the timeout covers the computation, not the wait in the queue. */
  run(inputs) {
    return this.enqueue(() => this.request({ type: "run", inputs }, [], timeoutMs));
  }

  enqueue(send) {
    return new Promise((resolve, reject) => {
      const task = async () => {
        try {
          await this.ready();
          resolve(await send());
        } catch (e) {
          reject(e);
        } finally {
          this.busy = false;
          this.next();
        }
      };
      task.reject = reject;
      this.queue.push(task);
      this.next();
    });
  }

  next() {
    if (this.busy || this.queue.length === 0) return;
    this.busy = true;
    this.queue.shift()();
  }

  /** After a restart the graph has to be loaded again before the next run. */
  ready() {
    return this.loading ?? this.load();
  }

  /** Terminate and start afresh (graph reloaded from the verified bytes in memory). */
  restart(reason = undefined) {
    this.kill(reason);
    counters.workerRestarts++;
    render();
    if (modelBytes && state === "ready") this.load().catch(() => { /* reported by the next run */ });
  }

  /** @param {{code: string, message: string, retry: boolean}} [reason] told to the page's port */
  kill(reason = { code: "cancelled", message: "the engine was restarted", retry: true }) {
    direct.closed(reason);
    this.generation++;
    this.worker?.terminate();
    this.worker = null;
    this.booted = null;
    this.loading = null;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new SandboxError("cancelled", "the engine was restarted"));
    }
    this.pending.clear();
  }

  fail(err) {
    direct.closed({ code: err.code, message: err.message, retry: false });
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.worker?.terminate();
    this.worker = null;
    this.booted = null;
    this.loading = null;
  }

  cancelAll() {
    const queued = this.queue.splice(0);
    for (const t of queued) t.reject(new SandboxError("cancelled", "cancelled"));
    const running = [...this.pending.keys()].length + (direct.running ? 1 : 0);
    if (running > 0) {
      for (const [, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new SandboxError("cancelled", "cancelled"));
      }
      this.pending.clear();
      this.restart({ code: "cancelled", message: "cancelled", retry: false });
    }
    return queued.length + running;
  }

  stop() {
    this.queue.splice(0).forEach((t) => t.reject(new SandboxError("closed", "the sandbox was closed")));
    this.kill({ code: "closed", message: "the sandbox was closed", retry: false });
    direct.origin = null;
  }
})();

// ---------------------------------------------------------------------------------------
// The page's direct port to the worker (static/run-port.js has the why and the protocol).
// Runs on it skip this document; it still times them out, counts them and restarts the worker.
// Sandbox -> page: {type: "port", id: 0} with the port in event.ports once a graph is loaded
// (again after every restart), {type: "port-closed", id: 0, running, code, message, retry} when
// the worker is stopped: the run `running` failed with `code`; with retry the page sends its
// other unanswered port runs again (through this document until the next port comes).

const direct = {
  /** @type {string | null} the parent's checked origin, once init succeeded */ origin: null,
  offered: false, // a port is out for the current worker
  /** @type {{id: number, timer: number} | null} */ running: null,

  offer() {
    if (!this.origin || !engine.worker || this.offered || state !== "ready") return;
    const ch = new MessageChannel();
    engine.worker.postMessage({ type: "port", port: ch.port1 }, [ch.port1]);
    reply(this.origin, { type: "port", id: 0 }, [ch.port2]);
    this.offered = true;
  },

  onWorker(msg) {
    if (msg.type === "port-run") {
      const id = msg.id;
      this.running = {
        id,
        timer: setTimeout(() => {
          if (this.running?.id !== id) return;
          counters.timeouts++;
          engine.restart({ code: "timeout", message: `no answer within ${timeoutMs} ms; the engine was stopped and restarted`, retry: true });
        }, timeoutMs),
      };
      return;
    }
    if (this.running && this.running.id === msg.id) clearTimeout(this.running.timer);
    if (msg.outcome === "ok") counters.runs++;
    else if (msg.outcome === "rejected") counters.rejected++;
    else counters.errors++;
    render();
    if (msg.fatal) {
      engine.restart({ code: String(msg.code), message: String(msg.message), retry: true });
    }
    this.running = null;
  },

  /** The worker is going away: the page's port dies with it. */
  closed(reason) {
    if (this.running) clearTimeout(this.running.timer);
    if (this.offered && this.origin) {
      reply(this.origin, { type: "port-closed", id: 0, running: this.running?.id ?? null, ...reason });
    }
    this.running = null;
    this.offered = false;
  },
};

// ---------------------------------------------------------------------------------------

render();
if (!configError) {
  // Say hello to the parent; only a parent at an allowed origin can receive it.
  const targets = parentOrigin ? [parentOrigin] : [...allowed];
  for (const origin of targets) {
    try {
      reply(origin, { type: "hello", id: 0, protocol: PROTOCOL_VERSION });
    } catch { /* not our parent */ }
  }
}
