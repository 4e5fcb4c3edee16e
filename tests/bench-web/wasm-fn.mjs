// Describes functions of a core wasm module by index (what `perf` names wasm[0]::function[N]
// when the module has no name section): body size and its most used SIMD instructions.
//   node tests/bench-web/wasm-fn.mjs CORE.wasm N [N...]
import fs from "node:fs";

const SIMD = {
  0: "v128.load", 9: "v128.load32_splat", 11: "v128.store", 12: "v128.const", 19: "f32x4.splat",
  31: "f32x4.extract_lane", 32: "f32x4.replace_lane", 65: "f32x4.eq", 67: "f32x4.lt", 68: "f32x4.gt",
  80: "v128.and", 82: "v128.bitselect", 86: "v128.load32_lane", 92: "v128.load32_zero",
  228: "f32x4.add", 229: "f32x4.sub", 230: "f32x4.mul", 231: "f32x4.div", 232: "f32x4.min",
  233: "f32x4.max", 261: "f32x4.relaxed_madd", 262: "f32x4.relaxed_nmadd",
};
const [file, ...wanted] = process.argv.slice(2);
if (!file || wanted.length === 0) throw new Error("usage: wasm-fn.mjs CORE.wasm N [N...]");
const b = fs.readFileSync(file);
if (b.readUInt32LE(0) !== 0x6d736100 || b[4] !== 1) throw new Error(`${file}: not a core wasm module`);
let p = 8;
const leb = () => { let r = 0, s = 0, x; do { x = b[p++]; r += (x & 0x7f) * 2 ** s; s += 7; } while (x & 0x80); return r; };
let imported = 0;
while (p < b.length) {
  const id = b[p++];
  const end = leb() + p;
  if (id === 2) { // imports: only function imports shift the index space we care about
    for (let n = leb(); n > 0; n--) {
      for (let k = 0; k < 2; k++) { const len = leb(); p += len; } // module and field names
      const kind = b[p++];
      if (kind === 0) { leb(); imported++; }
      else if (kind === 1) { p++; const f = b[p++]; leb(); if (f & 1) leb(); }
      else if (kind === 2) { const f = b[p++]; leb(); if (f & 1) leb(); }
      else if (kind === 3) p += 2;
      else { p++; leb(); }
    }
  }
  if (id === 10) {
    const count = leb();
    for (let i = 0; i < count; i++) {
      const size = leb();
      if (wanted.includes(String(i + imported))) {
        const body = b.subarray(p, p + size);
        const ops = {};
        for (let j = 0; j < body.length - 1; j++) {
          if (body[j] !== 0xfd) continue; // SIMD prefix (a heuristic: immediates may contain 0xfd too)
          let r = 0, s = 0, x, q = j + 1;
          do { x = body[q++]; r += (x & 0x7f) * 2 ** s; s += 7; } while (x & 0x80 && q < body.length);
          const name = SIMD[r] ?? `simd.${r}`;
          ops[name] = (ops[name] ?? 0) + 1;
        }
        const top = Object.entries(ops).sort((a, c) => c[1] - a[1]).slice(0, 8).map(([k, v]) => `${k} ${v}`).join(", ");
        console.log(`function[${i + imported}]: ${size} bytes; SIMD: ${top || "none"}`);
      }
      p += size;
    }
  }
  p = end;
}
