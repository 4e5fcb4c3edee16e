// One measurement of one engine on one model, in a fresh page (scripts/bench-web drives it):
//   index.html?engine=ours|ort&threads=N&model=NAME&runs=R
// Time to first result is performance.now() when the first output arrives: from this page's
// navigation start, through downloading, compiling and loading the engine and model, to one run.
// Then R warm runs, each timed on this page's clock. Results land in globalThis.__bench.
// Both engines get the same input: a seeded pseudo-random tensor in [0, 1).
const q = new URLSearchParams(location.search);
const engine = q.get("engine");
const threads = Number(q.get("threads") ?? 1);
const runs = Number(q.get("runs") ?? 50);
const modelName = q.get("model");
const state = document.getElementById("state");

/** mulberry32: small, seeded, the same sequence in every engine's page. */
function randomInput(n, seed) {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    a[i] = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  return a;
}

function base64(f32) {
  const bytes = new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

async function ours(model, input) {
  const { SecureContext } = await import("../secure-context.js");
  const frame = document.createElement("iframe");
  frame.sandbox = "allow-scripts allow-same-origin";
  frame.allow = "cross-origin-isolated";
  frame.src = "../sandbox.html";
  document.body.append(frame);
  const ctx = await SecureContext.open({ frame, model: model.name, timeoutMs: 600000, connectTimeoutMs: 60000 });
  const feed = { [model.input]: { data: input, shape: model.shape } };
  const first = await ctx.run(feed);
  const ttfr = performance.now();
  const warm = [];
  const compute = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const r = await ctx.run(feed);
    warm.push(performance.now() - t);
    compute.push(r.timings.computeMs);
  }
  const status = await ctx.status();
  return {
    ttfr, warm, engineComputeMs: compute, output: first[model.output],
    detail: { loadTimings: ctx.info?.timings ?? null, firstTimings: first.timings, isolation: status.isolation, engine: status.engine },
  };
}

/**
 * The page's CSP requires Trusted Types, and onnxruntime-web's threaded build starts its
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

async function ort(model, input) {
  if (threads > 1 && globalThis.trustedTypes) allowOrtWorkers();
  const ort = await import("../ort/ort.wasm.min.js");
  ort.env.wasm.numThreads = threads;
  // The glue is served as .js (the site's manifest types .mjs as octet-stream, which module
  // loading refuses); point onnxruntime-web at both files explicitly.
  ort.env.wasm.wasmPaths = {
    mjs: new URL("../ort/ort-wasm-simd-threaded.js", import.meta.url).href,
    wasm: new URL("../ort/ort-wasm-simd-threaded.wasm", import.meta.url).href,
  };
  const res = await fetch(`../models/${model.file}`, { credentials: "same-origin" });
  if (!res.ok) throw new Error(`model: HTTP ${res.status}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  const feed = { [model.input]: new ort.Tensor("float32", input, model.shape) };
  const first = await session.run(feed);
  const ttfr = performance.now();
  const warm = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await session.run(feed);
    warm.push(performance.now() - t);
  }
  const out = first[model.output];
  return {
    ttfr, warm, output: { data: out.data, shape: out.dims },
    detail: { numThreads: ort.env.wasm.numThreads, version: ort.env.versions?.web ?? null, crossOriginIsolated },
  };
}

(async () => {
  try {
    const config = await (await fetch("config.json")).json();
    const model = config.models.find((m) => m.name === modelName);
    if (!model) throw new Error(`no model ${modelName} in config.json`);
    const input = randomInput(model.shape.reduce((a, b) => a * b, 1), 20260127);
    const r = engine === "ours" ? await ours(model, input) : engine === "ort" ? await ort(model, input) : null;
    if (!r) throw new Error(`unknown engine ${engine}`);
    globalThis.__bench = {
      ttfrMs: r.ttfr, warmMs: r.warm, engineComputeMs: r.engineComputeMs ?? null, detail: r.detail,
      output: { shape: Array.from(r.output.shape), base64: base64(r.output.data) },
    };
    state.textContent = "done";
  } catch (e) {
    globalThis.__bench = { error: `${e?.name ?? "Error"}: ${e?.message ?? e}` };
    state.textContent = "error";
  }
})();
