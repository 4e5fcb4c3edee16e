// The threaded engine build, in the engine worker: the engine crate as a core wasm module
// (scripts/build-threads: wasm32-wasip1-threads, shared memory, tract's multithreaded matrix
// multiply; components/inference-threads is its C ABI), made to look like jco's glue of the
// component: `instantiate(getCoreModule, wasi)` gives the worker the same object
// (graph.load, introspection.describe, tensor.Tensor, contexts' compute, errors with a payload
// whose code() and data() are the wasi-nn error's), so worker.js's run path does not fork.
//
// Threads: rayon's pool threads start through the `wasi` `thread-spawn` import, each in a pool
// worker (a dedicated worker this worker starts) that instantiates the same module on the same
// shared memory and calls `wasi_thread_start`. A nested worker may not start while its parent
// blocks in Atomics.wait, and compute blocks this worker, so the pool workers are started and
// instantiated first (emscripten's PTHREAD_POOL_SIZE idea), the pool is built next, and nothing
// is computed before every pool thread runs.
//
// Integrity: the pool workers run engine-pool.js, bundled into this worker's script at build time
// (web/bundle.mjs writes engine-pool-source.js) and started from a blob: URL of those bytes, let
// once through this worker's Trusted Types policy; they fetch nothing and get the module compiled
// here from the verified bytes, and the memory, by postMessage.

import { POOL_WORKER_SOURCE } from "./engine-pool-source.js";
import { wasiImports } from "./engine-wasi.js";

/** Pool threads: one per core the browser reports, at most this many (onnxruntime-web's cap). */
export const MAX_THREADS = 4;

/** @returns {number} */
export function threadCount() {
  return Math.min(MAX_THREADS, Math.max(1, Number(self.navigator?.hardwareConcurrency) || 1));
}

/** Whether this worker can run the threaded build: isolated, shared memory, more than one core. */
export function threadsUsable() {
  if (self.crossOriginIsolated !== true || typeof SharedArrayBuffer !== "function") return false;
  if (threadCount() < 2) return false;
  try {
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    return true;
  } catch {
    return false;
  }
}

/** How long the pool may take to start before the build is given up on. */
const POOL_START_MS = 20000;

/**
 * The limits of the module's imported memory (`env.memory`), from its import section: the shared
 * memory must be made before instantiation, with the limits the linker wrote.
 * @param {Uint8Array} bytes
 * @returns {{ initial: number, maximum: number }}
 */
export function memoryLimits(bytes) {
  let p = 8;
  const u32 = () => {
    let r = 0;
    for (let shift = 0; ; shift += 7) {
      const b = bytes[p++];
      r += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) return r;
    }
  };
  const name = () => {
    const n = u32();
    const s = new TextDecoder().decode(bytes.subarray(p, p + n));
    p += n;
    return s;
  };
  const limits = () => {
    const flags = bytes[p++];
    const initial = u32();
    const maximum = flags & 1 ? u32() : null;
    return { initial, maximum };
  };
  while (p < bytes.length) {
    const id = bytes[p++];
    const size = u32();
    const end = p + size;
    if (id === 2) {
      for (let n = u32(); n > 0; n--) {
        const module = name();
        const field = name();
        const kind = bytes[p++];
        if (kind === 0) u32(); // function: type index
        else if (kind === 1) { p++; limits(); } // table: element type, limits
        else if (kind === 3) p += 2; // global: value type, mutability
        else if (kind === 4) { p++; u32(); } // tag
        else if (kind === 2) {
          const l = limits();
          if (module === "env" && field === "memory" && l.maximum !== null) return { initial: l.initial, maximum: l.maximum };
        } else break;
      }
    }
    p = end;
  }
  throw new Error("the threaded engine imports no shared env.memory with a maximum");
}

/**
 * The wasi-nn `error` resource as jco gives it: a class its glue names Error (after the WIT's
 * `error`), with `code()`, `data()` and a dispose.
 */
const NnError = class Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    this._code = code;
    this._message = message;
  }
  code() { return this._code; }
  data() { return this._message; }
  [Symbol.dispose]() {}
};

/** An error as jco throws a wasi-nn `result::err`: a ComponentError whose payload is the resource. */
class ComponentError extends globalThis.Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.payload = new NnError(code, message);
  }
}

/**
 * Starts the pool workers and waits until each has instantiated the module.
 * @param {WebAssembly.Module} module @param {WebAssembly.Memory} memory @param {number} n
 * @returns {Promise<Worker[]>}
 */
async function startPoolWorkers(module, memory, n) {
  if (!POOL_WORKER_SOURCE) throw new Error("this build carries no pool worker (web/bundle.mjs writes it)");
  const tt = /** @type {any} */ (self).trustedTypes;
  const url = URL.createObjectURL(new Blob([POOL_WORKER_SOURCE], { type: "text/javascript" }));
  // The one script URL this worker ever starts: minted here, let through once per pool worker.
  let allowed = n;
  const policy = tt?.createPolicy("secure-context", {
    createScriptURL(/** @type {string} */ u) {
      if (u === url && allowed-- > 0) return u;
      throw new TypeError(`secure-context policy: refusing script URL ${u}`);
    },
  });
  /** @type {Worker[]} */ const workers = [];
  try {
    const ready = [];
    for (let i = 0; i < n; i++) {
      const w = new Worker(policy ? policy.createScriptURL(url) : url, { type: "module", name: `secure-context-pool-${i}` });
      workers.push(w);
      ready.push(new Promise((resolve, reject) => {
        w.addEventListener("message", (e) => {
          if (e.data?.type === "ready") resolve(undefined);
          else if (e.data?.type === "error") reject(new Error(`pool worker ${i}: ${e.data.message}`));
        }, { once: true });
        w.addEventListener("error", (e) => reject(new Error(`pool worker ${i} failed to start: ${e.message ?? "error"}`)), { once: true });
      }));
      w.postMessage({ type: "init", module, memory });
    }
    await withTimeout(Promise.all(ready), POOL_START_MS, "the engine's thread pool did not start");
    return workers;
  } catch (e) {
    for (const w of workers) w.terminate();
    throw e;
  } finally {
    URL.revokeObjectURL(url);
  }
}

/** @template T @param {Promise<T>} p @param {number} ms @param {string} what @returns {Promise<T>} */
function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new RangeError(`${what} within ${ms} ms (memory?)`)), ms); }),
  ]);
}

/**
 * Instantiates the threaded build as jco's glue instantiates a component.
 * @param {any} getCoreModule engine-loader.js's: its `bytes(name)` gives a pinned core module's
 *   verified bytes (the memory's limits are read from them before compiling)
 * @param {unknown} _wasi jco's WASI shims: unused (engine-wasi.js is this build's)
 * @returns {Promise<any>}
 */
export async function instantiate(getCoreModule, _wasi) {
  const bytes = await getCoreModule.bytes("inference-threads.wasm");
  const module = await WebAssembly.compile(/** @type {BufferSource} */ (bytes));
  const { initial, maximum } = memoryLimits(bytes);
  const memory = new WebAssembly.Memory({ initial, maximum, shared: true });
  const n = threadCount();
  const workers = await startPoolWorkers(module, memory, n);
  let idle = [...workers];
  let nextTid = 1;
  const wasi = wasiImports("engine");
  const instance = await WebAssembly.instantiate(module, {
    env: { memory },
    wasi_snapshot_preview1: wasi.imports,
    wasi: {
      // Called synchronously by std::thread::spawn (rayon building its pool): hand the thread
      // to a pool worker that is already running. No worker left: EAGAIN, and the pool is smaller.
      "thread-spawn": (/** @type {number} */ arg) => {
        const w = idle.shift();
        if (!w) return -6;
        const tid = nextTid++;
        w.postMessage({ type: "run", tid, arg });
        return tid;
      },
    },
  });
  wasi.bind(instance);
  const x = /** @type {any} */ (instance.exports);
  x._initialize?.();
  const size = x.sc_threads(n) >>> 0;
  // Every pool thread running before anything is computed (compute blocks this worker).
  const deadline = performance.now() + POOL_START_MS;
  while ((x.sc_threads_started() >>> 0) < size) {
    if (performance.now() > deadline) throw new RangeError(`the engine's thread pool started ${x.sc_threads_started()} of ${size} threads`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return engineApi(x, memory, size);
}

/**
 * The C ABI (components/inference-threads/src/lib.rs) as jco's component exports.
 * @param {any} x the instance's exports @param {WebAssembly.Memory} memory @param {number} threads
 */
function engineApi(x, memory, threads) {
  const utf8 = new TextEncoder();
  const text = new TextDecoder();
  const heap = () => new Uint8Array(memory.buffer);
  /** A copy of the last call's reply (the memory is shared: never hand out a view of it). */
  const reply = () => heap().slice(x.sc_reply_ptr() >>> 0, (x.sc_reply_ptr() >>> 0) + (x.sc_reply_len() >>> 0));
  /** @param {number} status */
  const check = (status) => {
    if (status === 0) return reply();
    const r = text.decode(reply());
    const nl = r.indexOf("\n");
    throw new ComponentError(r.slice(0, nl), r.slice(nl + 1));
  };
  /** @template T @param {Uint8Array[]} parts @param {(ptrs: number[]) => T} f */
  const withBuffers = (parts, f) => {
    const ptrs = [];
    try {
      for (const b of parts) {
        const p = x.sc_alloc(b.length) >>> 0;
        if (!p) throw new RangeError(`the engine's memory cannot hold ${b.length} more bytes`);
        ptrs.push(p);
        heap().set(b, p);
      }
      return f(ptrs);
    } finally {
      ptrs.forEach((p, i) => x.sc_free(p, parts[i].length));
    }
  };

  class Tensor {
    /** @param {Uint32Array | number[]} dims @param {string} ty @param {Uint8Array} data */
    constructor(dims, ty, data) {
      this._dims = Uint32Array.from(dims);
      this._ty = ty;
      this._data = data;
    }
    dimensions() { return this._dims; }
    ty() { return this._ty; }
    data() { return this._data; }
    [Symbol.dispose]() {}
  }

  /** compute's wire format (lib.rs): count, then name, type, rank, dims, data per tensor. */
  const encode = (/** @type {[string, Tensor][]} */ tensors) => {
    const parts = tensors.map(([name, t]) => [utf8.encode(name), utf8.encode(t._ty), t._dims, t._data]);
    const size = 4 + parts.reduce((s, [n, ty, d, b]) => s + 4 + n.length + 4 + ty.length + 4 + 4 * d.length + 4 + b.length, 0);
    const out = new Uint8Array(size);
    const v = new DataView(out.buffer);
    let p = 0;
    const u32 = (n) => { v.setUint32(p, n, true); p += 4; };
    const put = (b) => { u32(b.length); out.set(b, p); p += b.length; };
    u32(parts.length);
    for (const [n, ty, d, b] of parts) {
      put(n);
      put(ty);
      u32(d.length);
      for (const dim of d) u32(dim);
      put(b);
    }
    return out;
  };
  const decode = (/** @type {Uint8Array} */ b) => {
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    let p = 0;
    const u32 = () => { const n = v.getUint32(p, true); p += 4; return n; };
    const take = () => { const n = u32(); const s = b.subarray(p, p + n); p += n; return s; };
    /** @type {[string, Tensor][]} */ const out = [];
    for (let count = u32(); count > 0; count--) {
      const name = text.decode(take());
      const ty = text.decode(take());
      const dims = new Uint32Array(u32());
      for (let i = 0; i < dims.length; i++) dims[i] = u32();
      out.push([name, new Tensor(dims, ty, take())]);
    }
    return out;
  };

  /** A graph lives while it or a context of it is held (the component's contexts hold an Rc). */
  class Graph {
    /** @param {number} handle */
    constructor(handle) { this.handle = handle; this.refs = 1; }
    release() { if (--this.refs === 0) x.sc_drop(this.handle); }
    initExecutionContext() { this.refs++; return new Context(this); }
    [Symbol.dispose]() { this.release(); }
  }
  class Context {
    /** @param {Graph} g */
    constructor(g) { this.graph = g; this.live = true; }
    /** @param {[string, Tensor][]} tensors */
    compute(tensors) {
      const req = encode(tensors);
      return decode(withBuffers([req], ([p]) => check(x.sc_compute(this.graph.handle, p, req.length))));
    }
    [Symbol.dispose]() { if (this.live) { this.live = false; this.graph.release(); } }
  }

  return {
    threads,
    graph: {
      /** @param {Uint8Array[]} builders @param {string} encoding */
      load(builders, encoding) {
        if (builders.length !== 1) throw new ComponentError("invalid-argument", `expected one model file, got ${builders.length}`);
        const enc = utf8.encode(encoding);
        const r = withBuffers([builders[0], enc], ([m, e]) => check(x.sc_load(m, builders[0].length, e, enc.length)));
        return new Graph(new DataView(r.buffer).getUint32(0, true));
      },
    },
    tensor: { Tensor },
    introspection: {
      /** @param {Graph} g */
      describe(g) {
        const info = JSON.parse(text.decode(check(x.sc_describe(g.handle))));
        for (const t of [...info.inputs, ...info.outputs]) {
          if (t.shape) for (const d of t.shape) if (d.tag === "fixed") d.val = BigInt(d.val);
        }
        return info;
      },
      engineVersion() {
        return `${text.decode(check(x.sc_engine_version()))}, ${threads} threads`;
      },
    },
  };
}
