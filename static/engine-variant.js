// Which engine build this browser runs. The engine is built twice from one source
// (scripts/build): with relaxed SIMD (fused multiply-add in the matmul kernels, faster) and
// simd128 only. A module using a relaxed-SIMD opcode fails validation where the feature is
// missing, so one binary cannot carry both paths: ask WebAssembly.validate about a tiny module
// first, then import the matching build. Both are content-hashed in asset-manifest.json.

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

/** @returns {{build: "relaxed-simd" | "simd128", module: string}} */
export function engineVariant() {
  let relaxed = false;
  try {
    relaxed = WebAssembly.validate(RELAXED_SIMD_PROBE);
  } catch { /* no WebAssembly: the import below fails and says so */ }
  return relaxed
    ? { build: "relaxed-simd", module: "./engine/inference.js" }
    : { build: "simd128", module: "./engine-baseline/inference.js" };
}
