// One measurement of one engine on one model, in a fresh page (scripts/bench-web drives it):
//   index.html?engine=ours|ort&threads=N&model=NAME&runs=R
// Time to first result is performance.now() when the first output arrives: from this page's
// navigation start, through downloading, compiling and loading the engine and model, to one run.
// Then R warm runs, each timed on this page's clock. Results land in globalThis.__bench.
// Both engines get the same input: a seeded pseudo-random tensor in [0, 1); a text model
// (config.json has its text) gets its text in ours (tokenized in the sandbox's worker, as a page
// runs it) and the ids prepare.py tokenized from it in onnxruntime-web.
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
  const feed = model.text != null ? { text: model.text } : { [model.input]: { data: input, shape: model.shape } };
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
 * onnxruntime-web runs in a module worker (worker.js next to this page), as our engine does: a
 * worker is the one context the runtime's policy lets compile wasm ('wasm-unsafe-eval'); the
 * documents compile nothing. Each run is a round trip page -> worker -> page, timed here.
 */
async function ort(model, input) {
  const url = new URL("./worker.js", import.meta.url).href;
  const policy = globalThis.trustedTypes?.createPolicy("secure-context", {
    createScriptURL: (u) => {
      if (u !== url) throw new TypeError(`refusing worker script ${u}`);
      return u;
    },
  });
  const worker = new Worker(/** @type {any} */ (policy ? policy.createScriptURL(url) : url), { type: "module" });
  let next = 0;
  const pending = new Map();
  worker.addEventListener("message", (ev) => {
    const p = pending.get(ev.data.id);
    pending.delete(ev.data.id);
    if (ev.data.error) p.reject(new Error(ev.data.error));
    else p.resolve(ev.data);
  });
  worker.addEventListener("error", (ev) => { for (const p of pending.values()) p.reject(new Error(ev.message || "worker error")); });
  const call = (msg) => new Promise((resolve, reject) => {
    const id = next++;
    pending.set(id, { resolve, reject });
    worker.postMessage({ ...msg, id });
  });
  const info = await call({ type: "load", file: model.file, threads });
  const inputs = model.inputs ?? [{ name: model.input, dtype: "float32", shape: model.shape, data: input }];
  const first = await call({ type: "run", inputs, outputName: model.output });
  const ttfr = performance.now();
  const warm = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await call({ type: "run", inputs, outputName: model.output });
    warm.push(performance.now() - t);
  }
  worker.terminate();
  return { ttfr, warm, output: first.output, detail: info.detail };
}

(async () => {
  try {
    const config = await (await fetch("config.json")).json();
    const model = config.models.find((m) => m.name === modelName);
    if (!model) throw new Error(`no model ${modelName} in config.json`);
    const input = model.shape ? randomInput(model.shape.reduce((a, b) => a * b, 1), 20260127) : null;
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
