// Which engine build this browser runs. The engine is built twice from one source
// (scripts/build): with relaxed SIMD (fused multiply-add in the matmul kernels, faster) and
// simd128 only. A module using a relaxed-SIMD opcode fails validation where the feature is
// missing, so one binary cannot carry both paths: ask WebAssembly.validate about a tiny module
// first, then instantiate the matching build (engine-loader.js, from pinned, verified files).

import { instantiate as instantiateEngine } from "./engine/inference.js";
import { instantiate as instantiateThreads, threadsUsable } from "./engine-threads.js";

// (module (func (result v128)
//   (i8x16.relaxed_swizzle (i8x16.splat (i32.const 1)) (i8x16.splat (i32.const 2)))))
const RELAXED_SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type section: () -> v128
  0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
  0x0a, 0x0f, 0x01, 0x0d, 0x00, // code section: one body of 13 bytes, no locals
  0x41, 0x01, 0xfd, 0x0f, // i32.const 1, i8x16.splat
  0x41, 0x02, 0xfd, 0x0f, // i32.const 2, i8x16.splat
  0xfd, 0x80, 0x02, // i8x16.relaxed_swizzle (0xfd 0x100)
  0x0b, // end
]);

/** @returns {boolean} */
function hasRelaxedSimd() {
  try {
    return WebAssembly.validate(RELAXED_SIMD_PROBE);
  } catch {
    return false; // no WebAssembly: instantiating fails and says so
  }
}

/**
 * @typedef {{
 *   build: string,
 *   dir: string,
 *   instantiate: import("./engine-loader.js").Instantiate,
 *   usable: () => boolean,
 * }} EngineBuild
 *   build: what `status` reports (engine.build); dir: the build's directory in build/web, whose
 *   core wasm the sandbox pins under that name (PINS.components[dir], written by web/pins.mjs
 *   for every engine* directory); instantiate: its jco glue (bundled into the worker, so
 *   verified with it; web/bundle.mjs refuses a build whose glue differs from every imported
 *   one); usable: whether this browser can run it.
 */

/**
 * The engine builds, preferred first. Another build is one entry here (and one directory that
 * scripts/build-web transpiles); its files are pinned and verified like these.
 * @type {readonly EngineBuild[]}
 */
export const ENGINES = Object.freeze([
  // The same engine crate as a threaded core module (scripts/build-threads; engine-threads.js
  // gives the worker the same object as the glue): relaxed SIMD, shared memory, a pool of
  // threads; where the worker is cross-origin isolated and has more than one core.
  { build: "relaxed-simd-threads", dir: "engine-threads", instantiate: instantiateThreads, usable: () => hasRelaxedSimd() && threadsUsable() },
  { build: "relaxed-simd", dir: "engine", instantiate: instantiateEngine, usable: hasRelaxedSimd },
  // The same glue: the two builds differ only in their core wasm.
  { build: "simd128", dir: "engine-baseline", instantiate: instantiateEngine, usable: () => true },
]);

/** The build this browser runs. @returns {EngineBuild} */
export function engineVariant() {
  return /** @type {EngineBuild} */ (ENGINES.find((e) => e.usable()));
}
