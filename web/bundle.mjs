// Step of scripts/build-web, before web/finalize.mjs: fewer, smaller requests for the runtime,
// and the integrity chain rooted in sandbox.html (web/pins.mjs). In order:
//   1. the core wasm of every component gets its content hash in its name (web/finalize.mjs)
//   2. one minified script per worker and page, its static imports inside (esbuild, pinned in
//      package.json; no eval, no new Function, so the CSP holds):
//        worker.js  <- engine-variant.js, engine-loader.js, engine-threads.js, engine-wasi.js and
//                      browser_wasi_shim (wasi-shim/), engine-pool-source.js (engine-pool.js
//                      bundled the same way, as text), run-port.js, protocol.js,
//                      run-inputs.js, text-worker.js, verified-fetch.js, jco's glue of the
//                      engine (engine/inference.js: both engine builds share it) and of the
//                      tokenizer (text/tokenizer.js), preview2-shim's shims (shim/*.js)
//        secure-context.js <- protocol.js, run-inputs.js;  demo.js, pii.js (pages keep
//                      importing the client by name)
//   3. pins.js: the SRI of worker.js, models/manifest.json and each core wasm (web/pins.mjs)
//   4. sandbox.js  <- its parts (sandbox-*.js, model-store.js, engine-supervisor.js,
//                     worker-spawn.js, verified-fetch.js), pins.js, protocol.js, run-inputs.js, text.js
//   5. sandbox.html gets integrity on its script and stylesheet
// The modules folded in, and shim/ whole, are then removed from the site, so the asset manifest
// lists what is served and nothing else. A component's glue that the worker does not import
// must be byte-identical to one it does (engine-baseline's is engine's), else the build fails:
// its build needs an entry in static/engine-variant.js.
import fs from "node:fs";
import path from "node:path";
import { build } from "esbuild";
import { hashCoreWasm } from "./finalize.mjs";
import { COMPONENT_DIR, pinDocument, writePins } from "./pins.mjs";

const out = path.resolve(process.argv[2] ?? "build/web");

hashCoreWasm(out);

const folded = new Set();
/** Bundles one entry in place (or, with asText, returns the bundle and removes the entry). */
async function bundle(file, external = [], asText = false) {
  const entry = path.join(out, file);
  const r = await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    keepNames: true, // class names are part of what callers see (e.g. jco's ComponentError)
    legalComments: "none",
    external,
    write: false,
    metafile: true,
    logLevel: "error",
  });
  for (const input of Object.keys(r.metafile.inputs)) {
    const abs = path.resolve(input);
    if (abs !== entry || asText) folded.add(abs);
  }
  if (asText) return r.outputFiles[0].text;
  fs.writeFileSync(entry, r.outputFiles[0].contents);
}

// The threaded engine's pool workers (engine-threads.js) run engine-pool.js, bundled on its own
// and carried as text inside worker.js (engine-pool-source.js), so it is verified with it.
const poolSource = await bundle("engine-pool.js", [], true);
fs.writeFileSync(path.join(out, "engine-pool-source.js"),
  `// Written by web/bundle.mjs: engine-pool.js, bundled.\nexport const POOL_WORKER_SOURCE = ${JSON.stringify(poolSource)};\n`);

const entries = [
  { file: "worker.js" },
  { file: "secure-context.js" },
  { file: "demo.js", external: ["./secure-context.js"] },
  { file: "pii.js", external: ["./secure-context.js"] },
];
for (const { file, external } of entries) await bundle(file, external);

// Every component's glue is in the worker, or the same bytes as one that is.
const glues = fs.readdirSync(out).filter((d) => COMPONENT_DIR.test(d))
  .flatMap((d) => fs.readdirSync(path.join(out, d)).filter((f) => f.endsWith(".js")).map((f) => path.join(out, d, f)));
for (const g of glues) {
  if (folded.has(g)) continue;
  const same = [...folded].find((f) => glues.includes(f) && fs.readFileSync(f).equals(fs.readFileSync(g)));
  if (!same) {
    throw new Error(`${path.relative(out, g)} is not bundled into worker.js and differs from every glue that is: add its build to static/engine-variant.js`);
  }
  folded.add(g);
}

writePins(out);
await bundle("sandbox.js");
pinDocument(out);

const entryPaths = new Set([...entries.map((e) => e.file), "sandbox.js"].map((f) => path.join(out, f)));
for (const f of folded) {
  if (entryPaths.has(f)) throw new Error(`${path.relative(out, f)} is both an entry and folded into another`);
  fs.rmSync(f);
}
// preview2-shim ships more than the engine imports (http, sockets): nothing loads the rest.
fs.rmSync(path.join(out, "shim"), { recursive: true, force: true });
fs.rmSync(path.join(out, "wasi-shim"), { recursive: true, force: true });
console.log(`bundled ${entries.length + 1} scripts, folded in ${folded.size} modules, pinned sandbox.html's chain`);
