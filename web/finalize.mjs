// Last step of scripts/build-web: writes asset-manifest.json over everything in the site:
//   { "<path relative to build/web>": { "sha256", "size", "content-type", "immutable" } }
// Content types and the immutable rule come from the header policy's data (argument 2,
// build/policy.json, written by `secure-context policy --json` from components/edge-core).
// Also exports hashCoreWasm, which web/bundle.mjs runs first: the core wasm files of the engines
// and of the tokenizer get their content hash in their name (inference.core.wasm ->
// inference.core.<sha256[:8]>.wasm) so they can be cached forever. Nothing refers to them by
// file name but the pins (web/pins.mjs): jco's glue (`--instantiation async`) asks the worker
// for each module by jco's name, and the worker looks the name up in the pins.
//
//   node web/finalize.mjs SITE [POLICY]   (hashes any core wasm not hashed yet, then the manifest)
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { COMPONENT_DIR } from "./pins.mjs";

const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");

/** Renames each component's core wasm to carry its content hash (idempotent). */
export function hashCoreWasm(out) {
  for (const dir of fs.readdirSync(out).filter((d) => COMPONENT_DIR.test(d))) {
    for (const wasm of fs.readdirSync(path.join(out, dir)).filter((f) => f.endsWith(".wasm") && !/\.[0-9a-f]{8}\.wasm$/.test(f))) {
      const bytes = fs.readFileSync(path.join(out, dir, wasm));
      fs.renameSync(path.join(out, dir, wasm), path.join(out, dir, wasm.replace(/\.wasm$/, `.${sha256(bytes).slice(0, 8)}.wasm`)));
    }
  }
}

function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : [p];
  });
}

/** Writes SITE/asset-manifest.json, typed by the policy data. */
export function writeAssetManifest(out, policyFile = "build/policy.json") {
  const policy = JSON.parse(fs.readFileSync(policyFile, "utf8"));
  if (policy.format !== "secure-context-policy/1") throw new Error("finalize: unknown policy data format");
  const IMMUTABLE = new RegExp(policy.cache.immutable_pattern);
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
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = path.resolve(process.argv[2] ?? "build/web");
  hashCoreWasm(out);
  writeAssetManifest(out, process.argv[3] ?? "build/policy.json");
}
