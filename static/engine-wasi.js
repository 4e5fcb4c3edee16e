// WASI preview1 for the threaded engine build (the main instance and each pool thread's):
// @bjorn3/browser_wasi_shim (pinned in web/package.json, bundled into the worker), with no
// arguments, no environment, no files; stdout and stderr go to the console (a panic's message
// before the trap). One change: its random_get falls back to Math.random on a shared memory
// (crypto.getRandomValues refuses shared views); this one fills a private buffer from
// crypto.getRandomValues and copies it in.

import { ConsoleStdout, File, OpenFile, WASI } from "./wasi-shim/index.js";

/**
 * @param {string} who how console lines name the instance
 * @returns {{ imports: Record<string, Function>, bind: (instance: WebAssembly.Instance) => void }}
 */
export function wasiImports(who) {
  const wasi = new WASI([], [], [
    new OpenFile(new File([])),
    ConsoleStdout.lineBuffered((line) => console.log(`[${who}] ${line}`)),
    ConsoleStdout.lineBuffered((line) => console.warn(`[${who}] ${line}`)),
  ], { debug: false }); // the shim logs every call unless told not to
  /** @type {WebAssembly.Memory | null} */ let memory = null;
  const imports = {
    ...wasi.wasiImport,
    random_get(/** @type {number} */ buf, /** @type {number} */ len) {
      const bytes = new Uint8Array(len >>> 0);
      for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
      new Uint8Array(/** @type {WebAssembly.Memory} */ (memory).buffer).set(bytes, buf >>> 0);
      return 0;
    },
  };
  return {
    imports,
    bind(instance) {
      // The shim reads the memory through `inst.exports.memory` (the module exports its import).
      /** @type {any} */ (wasi).inst = instance;
      memory = /** @type {WebAssembly.Memory} */ (instance.exports.memory);
    },
  };
}
