// The engine worker: a module worker that runs the jco-transpiled `inference` component
// through the standard wasi-nn interfaces. It talks only to the sandbox document that
// started it. One request at a time (compute is synchronous); the sandbox serializes them
// and terminates this worker on timeout, cancel or trap.
//
// Integrity: the sandbox fetched this script with its SRI pin and started it from a blob: URL of
// those bytes (worker-spawn.js); the jco glue and the WASI shims are bundled in, so verified with
// it. The engine's core wasm is fetched with the pins of the sandbox's `start` message and
// compiled from the verified bytes (engine-loader.js).
//
// Requests and replies: protocol.js, "sandbox <-> worker" (WORKER_REQUESTS, WORKER_REPLIES).

/** @typedef {{code: string, message: string, fatal: boolean}} EngineFailure */

import { checkPins, instantiateVerified } from "./engine-loader.js";
import { ENGINES, engineVariant } from "./engine-variant.js";
import { servePort } from "./run-port.js";
import { loadTokenizer, runText } from "./text-worker.js";

const isolation = {
  crossOriginIsolated: self.crossOriginIsolated === true,
  sharedArrayBuffer: typeof SharedArrayBuffer === "function",
};

/** @type {any} */ let engine = null;
/** @type {any} */ let graph = null;
/** @type {any} */ let graphInfo = null;
/** @type {any} */ let context = null;
let poisoned = false;

/**
 * Turn anything jco or the engine throws into {code, message, fatal}.
 * jco wraps a wasi-nn `result::err(error)` in a ComponentError whose `payload` is the
 * `error` resource: its code() and data() are methods, and the resource must be dropped.
 * @param {unknown} e
 * @returns {EngineFailure}
 */
function toFailure(e) {
  const payload = e && typeof e === "object" && "payload" in e ? /** @type {any} */ (e).payload : e;
  if (payload && typeof payload === "object" && typeof payload.code === "function") {
    let code = "unknown";
    let message = "";
    try {
      code = String(payload.code());
      message = String(payload.data());
    } catch (inner) {
      message = `unreadable wasi-nn error: ${inner}`;
    } finally {
      try { payload[Symbol.dispose]?.(); } catch { /* already dropped */ }
    }
    return { code, message, fatal: false };
  }
  if (e instanceof WebAssembly.RuntimeError) {
    poisoned = true;
    return { code: "trap", message: `the engine trapped: ${e.message}`, fatal: true };
  }
  if (e instanceof WebAssembly.CompileError || e instanceof WebAssembly.LinkError) {
    return { code: "engine-load", message: `cannot instantiate the engine: ${e.message}`, fatal: true };
  }
  if (e instanceof RangeError && /memory/i.test(e.message)) {
    poisoned = true;
    return { code: "out-of-memory", message: e.message, fatal: true };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { code: "internal", message, fatal: false };
}

// The instantiated engine, for DevTools and the browser tests (the glue is bundled in, so there
// is no module to import): only code running in this worker can read it, and all of it is ours.
Object.defineProperty(self, "__secureContextEngine", { get: () => engine });

/** @type {Promise<any> | null} */ let engineImport = null;
let variant = engineVariant();
/** The verified files of each component (engine builds, tokenizer), from `start`. */
/** @type {Record<string, import("./engine-loader.js").ComponentPins> | null} */ let pins = null;

async function getEngine() {
  if (!pins) throw Object.assign(new Error("the engine worker was not given its integrity pins"), { code: "integrity" });
  engineImport ??= instantiate(variant);
  engine ??= await engineImport;
  return engine;
}

/**
 * The build's engine; if the threaded build cannot start here (its shared memory or its pool
 * workers refused), the next build this browser can run. Never past an integrity or network
 * failure: those are the answer.
 * @param {import("./engine-variant.js").EngineBuild} build
 * @returns {Promise<any>}
 */
async function instantiate(build) {
  try {
    return await instantiateVerified(build.instantiate, pins[build.dir], `the engine (${build.dir})`);
  } catch (e) {
    const code = e && typeof e === "object" ? /** @type {any} */ (e).code : undefined;
    const next = ENGINES.slice(ENGINES.indexOf(build) + 1).find((b) => b.usable());
    if (!build.build.endsWith("-threads") || code === "integrity" || code === "network" || !next) throw e;
    console.warn(`the engine (${build.dir}) did not start (${e instanceof Error ? e.message : e}); running ${next.dir}`);
    variant = next;
    return instantiate(next);
  }
}

/** @param {Uint8Array} bytes @param {string} encoding */
async function load(bytes, encoding) {
  const t0 = performance.now();
  const e = await getEngine();
  const t1 = performance.now();
  // Load first: a graph that fails to load leaves the current one in service.
  const g = e.graph.load([bytes], encoding, "cpu");
  let c;
  try {
    c = g.initExecutionContext();
  } catch (err) {
    g[Symbol.dispose]?.();
    throw err;
  }
  if (context) context[Symbol.dispose]?.();
  if (graph) graph[Symbol.dispose]?.();
  graph = g;
  context = c;
  const t2 = performance.now();
  const info = plainInfo(e.introspection.describe(graph));
  graphInfo = info;
  const t3 = performance.now();
  const warmed = warmUp(info);
  return {
    info,
    engineVersion: e.introspection.engineVersion(),
    engineBuild: variant.build,
    timings: { engineInitMs: t1 - t0, graphLoadMs: t2 - t1, ...(warmed ? { warmupMs: performance.now() - t3 } : {}) },
  };
}

/**
 * tract plans a graph for each new set of input shapes on its first compute. Do that now with
 * zeros (symbolic dimensions = 1) so the caller's first run is as fast as the next ones.
 * Skipped when every dimension is fixed (the engine planned the graph at load: a run now would
 * only delay the first result by one inference), when a shape is unknown or an input is not
 * FP32; failures are ignored.
 */
function warmUp(info) {
  if (!info.inputs.every((t) => t.carrier === "FP32" && t.shape && t.shape.every((d) => d !== null))) return false;
  if (info.inputs.every((t) => t.shape.every((d) => typeof d === "number"))) return false;
  try {
    run(info.inputs.map((t) => {
      const shape = t.shape.map((d) => (typeof d === "number" ? d : 1));
      return { name: t.name, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) };
    }));
    return true;
  } catch (err) {
    if (err && typeof err === "object" && "payload" in err) toFailure(err); // drops the error resource
    else if (err instanceof WebAssembly.RuntimeError) throw err;
    return false;
  }
}

/** Graph info with bigints turned into numbers, ready for structured clone and JSON. */
function plainInfo(info) {
  const tensor = (t) => ({
    name: t.name,
    elementType: t.elementType,
    carrier: t.carrier ?? null,
    shape: t.shape
      ? t.shape.map((d) => d.tag === "fixed" ? Number(d.val) : d.tag === "symbolic" ? d.val : null)
      : null,
  });
  return {
    encoding: info.encoding,
    sha256: info.sha256,
    inputs: info.inputs.map(tensor),
    outputs: info.outputs.map(tensor),
  };
}

/** @param {{name: string, shape: number[], data: ArrayBufferView, type?: string}[]} inputs FP32 unless `type` says */
function run(inputs) {
  if (!graph || !engine) throw Object.assign(new Error("no graph loaded"), { code: "not-loaded" });
  const { Tensor } = engine.tensor;
  const t0 = performance.now();
  const tensors = inputs.map(({ name, shape, data, type = "FP32" }) => [
    name,
    new Tensor(Uint32Array.from(shape), type, new Uint8Array(data.buffer, data.byteOffset, data.byteLength)),
  ]);
  let outs;
  try {
    if (!context) context = graph.initExecutionContext();
    const t1 = performance.now();
    try {
      outs = context.compute(tensors);
    } catch (e) {
      // A failed compute may leave the context in any state: start the next run afresh.
      try { context[Symbol.dispose]?.(); } catch { /* ignore */ }
      context = null;
      throw e;
    }
    const t2 = performance.now();
    const outputs = outs.map(([name, t]) => {
      const ty = t.ty();
      const dims = Array.from(t.dimensions(), Number);
      const bytes = t.data();
      if (ty !== "FP32") {
        throw Object.assign(new Error(`output ${name} is ${ty}; this runtime returns FP32 only`), { code: "unsupported-operation" });
      }
      // Copy into a fresh, aligned buffer (the engine's bytes may be a view).
      const data = new Float32Array(bytes.byteLength / 4);
      new Uint8Array(data.buffer).set(bytes);
      return { name, shape: dims, data };
    });
    const t3 = performance.now();
    return { outputs, timings: { tensorInMs: t1 - t0, computeMs: t2 - t1, tensorOutMs: t3 - t2 } };
  } finally {
    for (const [, t] of tensors) try { t[Symbol.dispose]?.(); } catch { /* ignore */ }
    if (outs) for (const [, t] of outs) try { t[Symbol.dispose]?.(); } catch { /* ignore */ }
  }
}

self.addEventListener("message", async (/** @type {MessageEvent} */ event) => {
  const msg = event.data;
  if (!msg || typeof msg !== "object") return;
  const { id } = msg;
  if (poisoned) {
    self.postMessage({ type: "error", id, code: "trap", message: "the engine trapped earlier; restart the worker", fatal: true });
    return;
  }
  try {
    if (msg.type === "start") {
      if (pins) throw Object.assign(new Error("already started"), { code: "invalid-state" });
      pins = checkPins(msg.components);
      // Fetch and compile the engine now, while the sandbox is still downloading and verifying
      // the model, not after. A failure here surfaces (and is reported) at the first `load`.
      getEngine().catch(() => { engineImport = null; });
    } else if (msg.type === "load") {
      const r = await load(new Uint8Array(msg.bytes), msg.encoding);
      self.postMessage({ type: "loaded", id, ...r });
    } else if (msg.type === "port" && msg.port instanceof MessagePort) {
      servePort(msg.port, {
        run,
        graphInfo: () => graphInfo,
        failure: toFailure,
        usable: () => !poisoned,
        notify: (m) => self.postMessage(m),
      }, msg.watch);
    } else if (msg.type === "run") {
      const r = run(msg.inputs);
      self.postMessage({ type: "result", id, ...r }, r.outputs.map((o) => o.data.buffer));
    } else if (msg.type === "load-tokenizer") {
      const info = await loadTokenizer(new Uint8Array(msg.bytes), msg.maxLength, msg.stride, pins?.text);
      self.postMessage({ type: "tokenizer-loaded", id, info });
    } else if (msg.type === "run-text") {
      const names = graph ? plainInfo(engine.introspection.describe(graph)).inputs.map((t) => t.name) : [];
      const r = runText(msg.text, names, run);
      self.postMessage({ type: "result", id, ...r }, r.outputs.map((o) => o.data.buffer));
    } else {
      self.postMessage({ type: "error", id, code: "bad-message", message: `unknown request ${String(msg.type)}`, fatal: false });
    }
  } catch (e) {
    const f = e && typeof e === "object" && typeof /** @type {any} */ (e).code === "string"
      ? { code: /** @type {any} */ (e).code, message: /** @type {any} */ (e).message, fatal: false }
      : toFailure(e);
    self.postMessage({ type: "error", id, ...f });
  }
});

self.postMessage({ type: "boot", isolation });
