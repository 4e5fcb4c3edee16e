// Precompressed variants for the edge app (run by scripts/build-edge after scripts/build-web):
// reads build/web/asset-manifest.json and writes, into build/edge/,
//   <path>.br and <path>.gz   for every compressible asset whose variant is at least 10% smaller
//   encodings.json            { "<path>": { "source-sha256", "br": { file, size, sha256 }, "gzip": {...} } }
// Deterministic: brotli quality 11, gzip level 9 (no timestamps in node's gzip header).
// The app serves a variant only if "source-sha256" matches the manifest (a stale build/edge is ignored).
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";

const web = path.resolve(process.argv[2] ?? "build/web");
const out = path.resolve(process.argv[3] ?? "build/edge");
const manifest = JSON.parse(fs.readFileSync(path.join(web, "asset-manifest.json"), "utf8"));
const sha256 = (b) => createHash("sha256").update(b).digest("hex");
const COMPRESSIBLE = /^(text\/|application\/(javascript|json|wasm)|image\/svg\+xml)/;

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
const encodings = {};
let saved = 0;
for (const [rel, entry] of Object.entries(manifest).sort()) {
  if (!COMPRESSIBLE.test(entry["content-type"])) continue;
  const src = fs.readFileSync(path.join(web, rel));
  if (sha256(src) !== entry.sha256) throw new Error(`${rel}: does not match asset-manifest.json`);
  const variants = {
    br: [".br", zlib.brotliCompressSync(src, {
      params: {
        [zlib.constants.BROTLI_PARAM_QUALITY]: 11,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: src.length,
        [zlib.constants.BROTLI_PARAM_LGWIN]: 24,
      },
    })],
    gzip: [".gz", zlib.gzipSync(src, { level: 9 })],
  };
  const e = { "source-sha256": entry.sha256 };
  for (const [coding, [ext, bytes]] of Object.entries(variants)) {
    if (bytes.length > src.length * 0.9) continue;
    const file = rel + ext;
    fs.mkdirSync(path.dirname(path.join(out, file)), { recursive: true });
    fs.writeFileSync(path.join(out, file), bytes);
    e[coding] = { file, size: bytes.length, sha256: sha256(bytes) };
    if (coding === "br") saved += src.length - bytes.length;
  }
  if (e.br || e.gzip) encodings[rel] = e;
}
fs.writeFileSync(path.join(out, "encodings.json"), JSON.stringify(encodings, null, 2) + "\n");
console.log(`build/edge: ${Object.keys(encodings).length} assets with variants, brotli saves ${(saved / 1048576).toFixed(1)} MiB`);
