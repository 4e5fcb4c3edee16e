// The integrity chain of a built site, rooted in sandbox.html (served no-cache: the one document
// trusted as served):
//
//   sandbox.html --integrity--> sandbox.js, sandbox.css
//   sandbox.js   --PINS-------> worker.js (the worker; jco glue and WASI shims bundled in)
//                               models/manifest.json --sha256 + SRI--> each model, each tokenizer.json
//                               <component dir>/<core wasm> (engine*, text): jco's name -> hashed file
//
// Step of web/bundle.mjs: `writePins` writes build/web/pins.js (folded into the sandbox.js bundle)
// and `pinDocument` adds the integrity attributes to sandbox.html. `repin` re-pins a built site
// after a file was changed on purpose (a test serving another worker.js, the benchmark adding
// models to the manifest): each changed file's new SRI replaces its old one (from the site's
// asset-manifest.json) in the file that pins it, up to sandbox.html.
//
//   node web/pins.mjs repin SITE   re-pin SITE in place from what changed since its asset manifest
//                                  (then run web/finalize.mjs to write the asset manifest again)
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT_DOCUMENT = "sandbox.html";
export const SANDBOX_SCRIPT = "sandbox.js";
export const WORKER = "worker.js";
export const MODEL_MANIFEST = "models/manifest.json";
/** Directories of transpiled components whose core wasm the worker instantiates. */
export const COMPONENT_DIR = /^(engine(-[a-z0-9]+)?|text)$/;

/** @param {Buffer | Uint8Array} bytes */
export const sri = (bytes) => `sha256-${createHash("sha256").update(bytes).digest("base64")}`;
const sriOfHex = (hex) => `sha256-${Buffer.from(hex, "hex").toString("base64")}`;

/** What pins a file of the site (null: nothing, or the manifest by sha256, see repin). */
export function pinnedBy(rel) {
  if (rel === SANDBOX_SCRIPT || rel === "sandbox.css") return ROOT_DOCUMENT;
  if (rel === WORKER || rel === MODEL_MANIFEST) return SANDBOX_SCRIPT;
  const dir = rel.split("/")[0];
  if (rel.endsWith(".wasm") && COMPONENT_DIR.test(dir) && rel.split("/").length === 2) return SANDBOX_SCRIPT;
  return null;
}

/** The core wasm of each component: {dir: {jco's name: path}}; hashed names map back to jco's. */
function componentFiles(out) {
  const components = {};
  for (const dir of fs.readdirSync(out).filter((d) => COMPONENT_DIR.test(d)).sort()) {
    const files = {};
    for (const f of fs.readdirSync(path.join(out, dir)).filter((f) => f.endsWith(".wasm")).sort()) {
      files[f.replace(/\.[0-9a-f]{8}\.wasm$/, ".wasm")] = `${dir}/${f}`;
    }
    if (Object.keys(files).length) components[dir] = files;
  }
  return components;
}

/** Writes OUT/pins.js, the module sandbox.js imports (static/pins.js has its shape). */
export function writePins(out) {
  const pin = (rel) => {
    const file = path.join(out, rel);
    if (!fs.existsSync(file)) throw new Error(`pins: ${rel} is missing from ${out}`);
    return { path: rel, integrity: sri(fs.readFileSync(file)) };
  };
  const components = {};
  for (const [dir, files] of Object.entries(componentFiles(out))) {
    components[dir] = Object.fromEntries(Object.entries(files).map(([name, rel]) => [name, pin(rel)]));
  }
  if (!components.engine) throw new Error("pins: no engine/ core wasm to pin");
  const pins = { worker: pin(WORKER), manifest: pin(MODEL_MANIFEST), components };
  fs.writeFileSync(path.join(out, "pins.js"),
    "// Written by web/pins.mjs: this build's integrity pins (static/pins.js says what each is).\n"
    + `export const PINS = ${JSON.stringify(pins, null, 2)};\n`);
  return pins;
}

/** Adds integrity to sandbox.html's script and stylesheet; refuses one it cannot pin. */
export function pinDocument(out, doc = ROOT_DOCUMENT) {
  const file = path.join(out, doc);
  let html = fs.readFileSync(file, "utf8");
  const tags = [...html.matchAll(/<(script|link)\b[^>]*>/g)].map((m) => m[0]);
  for (const tag of tags) {
    const ref = /\b(?:src|href)="([^"]+)"/.exec(tag)?.[1];
    if (!ref) continue;
    if (/^link/.test(tag.slice(1)) && !/\brel="stylesheet"/.test(tag)) continue;
    if (/\bintegrity=/.test(tag)) throw new Error(`pins: ${doc} already pins ${ref}`);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(ref)) throw new Error(`pins: ${doc} loads ${ref}, which is not a file next to it`);
    const pinned = tag.replace(/>$/, ` integrity="${sri(fs.readFileSync(path.join(out, ref)))}">`);
    html = html.replace(tag, pinned);
  }
  if (!/<script\b[^>]*\bsrc="sandbox\.js"[^>]*\bintegrity="/.test(html)) throw new Error(`pins: ${doc} has no pinned sandbox.js`);
  fs.writeFileSync(file, html);
}

/**
 * Re-pins a built site for changed files: returns every file that must change with them
 * (the changed files themselves included) so that the chain holds again.
 * @param {Record<string, {sha256: string}>} assets the site's asset-manifest.json (the old hashes)
 * @param {(rel: string) => Buffer} read the site's current bytes of a file
 * @param {Record<string, Buffer>} changed path (relative, no leading /) -> new bytes
 * @returns {Record<string, Buffer>}
 */
export function repin(assets, read, changed) {
  const out = { ...changed };
  const bytes = (rel) => out[rel] ?? read(rel);
  // Models and tokenizers: the manifest pins them by sha256, SRI and size.
  const models = Object.keys(out).filter((rel) => rel.startsWith("models/") && rel !== MODEL_MANIFEST);
  if (models.length) {
    const manifest = JSON.parse(bytes(MODEL_MANIFEST).toString("utf8"));
    for (const rel of models) {
      const file = rel.slice("models/".length);
      const digest = createHash("sha256").update(out[rel]).digest();
      const update = (e) => Object.assign(e, { sha256: digest.toString("hex"), integrity: `sha256-${digest.toString("base64")}`, size: out[rel].length });
      for (const m of manifest.models) {
        if (m.file === file) update(m);
        if (m.tokenizer?.file === file) update(m.tokenizer);
      }
    }
    out[MODEL_MANIFEST] = Buffer.from(JSON.stringify(manifest, null, 2) + "\n");
  }
  for (const parent of [SANDBOX_SCRIPT, ROOT_DOCUMENT]) {
    let text = bytes(parent).toString("utf8");
    let touched = false;
    for (const rel of Object.keys(out)) {
      if (pinnedBy(rel) !== parent) continue;
      if (!assets[rel]) throw new Error(`repin: ${rel} is not in the site's asset manifest`);
      const old = sriOfHex(assets[rel].sha256);
      const now = sri(out[rel]);
      if (old === now || !text.includes(old)) continue; // unchanged, or already re-pinned with a twin
      // Files with the same bytes (a small core module both engine builds share) share a pin
      // string: they change together or not at all.
      const twins = Object.keys(assets).filter((r) => pinnedBy(r) === parent && assets[r].sha256 === assets[rel].sha256);
      if (!twins.every((r) => out[r] && sri(out[r]) === now)) {
        throw new Error(`repin: ${twins.join(", ")} have the same bytes and the same pin in ${parent}; change them together`);
      }
      const n = text.split(old).length - 1;
      if (n !== twins.length) throw new Error(`repin: ${parent} holds ${rel}'s pin ${n} times, expected ${twins.length}`);
      text = text.split(old).join(now);
      touched = true;
    }
    if (touched) out[parent] = Buffer.from(text);
  }
  return out;
}

/** The same for a site on disk, in place. */
export function repinSite(site) {
  const assets = JSON.parse(fs.readFileSync(path.join(site, "asset-manifest.json"), "utf8"));
  const read = (rel) => fs.readFileSync(path.join(site, rel));
  const changed = {};
  for (const [rel, meta] of Object.entries(assets)) {
    const file = path.join(site, rel);
    if (!fs.existsSync(file)) continue;
    const b = fs.readFileSync(file);
    if (createHash("sha256").update(b).digest("hex") !== meta.sha256) changed[rel] = b;
  }
  for (const [rel, b] of Object.entries(repin(assets, read, changed))) {
    if (!changed[rel] || !changed[rel].equals(b)) fs.writeFileSync(path.join(site, rel), b);
  }
  return Object.keys(changed);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [cmd, site] = process.argv.slice(2);
  if (cmd !== "repin" || !site) {
    console.error("usage: node web/pins.mjs repin SITE");
    process.exit(2);
  }
  const changed = repinSite(path.resolve(site));
  console.log(`re-pinned ${site}: ${changed.length ? changed.join(", ") : "nothing changed"}`);
}
