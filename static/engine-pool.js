// A pool worker of the threaded engine (engine-threads.js starts it): one wasm thread. It gets
// the compiled module and the shared memory, instantiates the module on that memory, says it is
// ready, then, told which thread it is, runs `wasi_thread_start` (a rayon worker loop that returns
// only when the pool ends). Bundled into the engine worker's script as text and started from a
// blob: URL of it (web/bundle.mjs), so it is verified with worker.js and fetches nothing.
//
// A trap here cannot reach the caller (the engine worker is blocked in compute): it is logged,
// and the sandbox's run timeout terminates the engine worker, and this one with it.

import { wasiImports } from "./engine-wasi.js";

/** @type {WebAssembly.Instance | null} */ let instance = null;

self.addEventListener("message", async (/** @type {MessageEvent} */ e) => {
  const msg = e.data;
  try {
    if (msg?.type === "init" && !instance) {
      const wasi = wasiImports(self.name);
      instance = await WebAssembly.instantiate(/** @type {WebAssembly.Module} */ (msg.module), {
        env: { memory: msg.memory },
        wasi_snapshot_preview1: wasi.imports,
        // rayon's threads spawn no threads of their own.
        wasi: { "thread-spawn": () => -6 },
      });
      wasi.bind(instance);
      self.postMessage({ type: "ready" });
    } else if (msg?.type === "run" && instance) {
      /** @type {any} */ (instance.exports).wasi_thread_start(msg.tid, msg.arg);
    }
  } catch (err) {
    console.error(`${self.name}: ${err instanceof Error ? err.message : err}`);
    self.postMessage({ type: "error", message: String(err instanceof Error ? err.message : err) });
  }
});
