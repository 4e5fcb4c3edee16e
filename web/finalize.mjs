// Last step of scripts/build-web: content-hash the core wasm files of the engine and of the
// tokenizer so they can be cached forever (inference.core.wasm -> inference.core.<sha256[:8]>.wasm,
// with the reference in the generated JS rewritten), then write asset-manifest.json:
//   { "<path relative to build/web>": { "sha256", "size", "content-type", "immutable" } }
// Content types and the immutable rule come from the header policy's data (argument 2,
// build/policy.json, written by `secure-context policy --json` from components/edge-core).
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const out = path.resolve(process.argv[2] ?? "build/web");
// engine/ (relaxed SIMD), engine-baseline/ (simd128 only; see static/engine-variant.js) and text/
// (the tokenizer).
const componentDirs = fs.readdirSync(out)
  .filter((d) => /^engine(-[a-z0-9]+)?$/.test(d) || d === "text")
  .map((d) => path.join(out, d));

const policy = JSON.parse(fs.readFileSync(process.argv[3] ?? "build/policy.json", "utf8"));
if (policy.format !== "secure-context-policy/1") throw new Error("finalize: unknown policy data format");
const IMMUTABLE = new RegExp(policy.cache.immutable_pattern);

const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");

// 1. Hash and rename core wasm files; rewrite their references in the component's JS.
for (const engineDir of componentDirs) {
  const jsFiles = fs.readdirSync(engineDir).filter((f) => f.endsWith(".js"));
  for (const wasm of fs.readdirSync(engineDir).filter((f) => /\.wasm$/.test(f))) {
    const bytes = fs.readFileSync(path.join(engineDir, wasm));
    const hashed = wasm.replace(/\.wasm$/, `.${sha256(bytes).slice(0, 8)}.wasm`);
    let rewritten = 0;
    for (const js of jsFiles) {
      const p = path.join(engineDir, js);
      let src = fs.readFileSync(p, "utf8");
      // jco writes '...'; a minified bundle (web/bundle.mjs) may have turned it into "...".
      const before = rewritten;
      for (const q of ["'", '"']) {
        const needle = `${q}./${wasm}${q}`;
        if (src.includes(needle)) {
          src = src.split(needle).join(`${q}./${hashed}${q}`);
          rewritten++;
        }
      }
      if (rewritten > before) fs.writeFileSync(p, src);
    }
    if (rewritten === 0) throw new Error(`no reference to ./${wasm} found in the engine JS`);
    fs.renameSync(path.join(engineDir, wasm), path.join(engineDir, hashed));
  }
}

// 2. Asset manifest over everything in the build.
function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : [p];
  });
}
const manifest = {};
for (const file of walk(out).sort()) {
  const rel = path.relative(out, file).split(path.sep).join("/");
  if (rel === "asset-manifest.json") continue;
  const bytes = fs.readFileSync(file);
  manifest[rel] = {
    sha256: sha256(bytes),
    size: bytes.length,
    "content-type": policy.content_types[path.extname(file)] ?? policy.default_content_type,
    immutable: IMMUTABLE.test(rel),
  };
}
fs.writeFileSync(path.join(out, "asset-manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
