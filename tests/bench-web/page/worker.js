// onnxruntime-web's wasm backend in a module worker, for the bench page (bench.js): a worker is
// the one context of the runtime's policy whose CSP lets wasm compile.
//   {type: "load", id, file, threads} -> {id, detail}
//   {type: "run", id, inputs: [{name, dtype: "float32"|"int64", shape, data}], outputName} -> {id, output: {data, shape}}

/**
 * The worker's CSP requires Trusted Types, and onnxruntime-web's threaded build starts its
 * pthread workers with `new Worker(<URL>)`, which Trusted Types refuses. Rather than loosen the
 * policy, route Worker through the one policy name the CSP allows ("secure-context"), vetting
 * that the script is onnxruntime-web's own glue on this origin -- what sandbox.js does for ours.
 */
function allowOrtWorkers() {
  const glue = new URL("../ort/ort-wasm-simd-threaded.js", import.meta.url).href;
  const policy = globalThis.trustedTypes.createPolicy("secure-context", {
    createScriptURL: (u) => {
      if (new URL(u, location.href).href !== glue) throw new TypeError(`refusing worker script ${u}`);
      return glue;
    },
  });
  const NativeWorker = globalThis.Worker;
  globalThis.Worker = class extends NativeWorker {
    constructor(url, options) {
      super(/** @type {any} */ (policy.createScriptURL(String(url))), options);
    }
  };
}

let ort = null;
let session = null;

async function load({ file, threads }) {
  if (threads > 1 && globalThis.trustedTypes) allowOrtWorkers();
  ort = await import("../ort/ort.wasm.min.js");
  ort.env.wasm.numThreads = threads;
  // The glue is served as .js (the site's manifest types .mjs as octet-stream, which module
  // loading refuses); point onnxruntime-web at both files explicitly.
  ort.env.wasm.wasmPaths = {
    mjs: new URL("../ort/ort-wasm-simd-threaded.js", import.meta.url).href,
    wasm: new URL("../ort/ort-wasm-simd-threaded.wasm", import.meta.url).href,
  };
  const res = await fetch(`../models/${file}`, { credentials: "same-origin" });
  if (!res.ok) throw new Error(`model: HTTP ${res.status}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  return { detail: { numThreads: ort.env.wasm.numThreads, version: ort.env.versions?.web ?? null, crossOriginIsolated, inWorker: true } };
}

const TYPED = { float32: (d) => (d instanceof Float32Array ? d : Float32Array.from(d)), int64: (d) => BigInt64Array.from(d, BigInt) };

async function run({ inputs, outputName }) {
  const feeds = Object.fromEntries(inputs.map((i) => [i.name, new ort.Tensor(i.dtype, TYPED[i.dtype](i.data), i.shape)]));
  const out = (await session.run(feeds))[outputName];
  return { output: { data: out.data, shape: out.dims } };
}

self.addEventListener("message", async (ev) => {
  const msg = ev.data;
  try {
    const r = msg.type === "load" ? await load(msg) : await run(msg);
    self.postMessage({ id: msg.id, ...r });
  } catch (e) {
    self.postMessage({ id: msg.id, error: `${e?.name ?? "Error"}: ${e?.message ?? e}` });
  }
});
