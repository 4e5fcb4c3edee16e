// Step of scripts/build-web, before web/finalize.mjs: fewer, smaller requests for the runtime.
// Each document or worker gets one script with its static imports inside, minified (esbuild,
// pinned in package.json; no eval, no new Function, so the CSP holds):
//   sandbox.js   <- its parts (sandbox-*.js, model-store.js, engine-supervisor.js, verified-fetch.js),
//                   protocol.js, run-inputs.js, text.js
//   worker.js    <- engine-variant.js, run-port.js, protocol.js, run-inputs.js, text-worker.js (the engine
//                   and the tokenizer are imported at run time: engine/ or engine-baseline/,
//                   whichever the browser can run; text/ only for a text model)
//   engine*/inference.js, text/tokenizer.js <- ../shim/*.js (jco's WASI shims)
//   secure-context.js, demo.js, pii.js (pages keep importing the client by name)
// The modules folded in, and shim/ whole, are then removed from the site, so the asset manifest
// lists what is served and nothing else.
import fs from "node:fs";
import path from "node:path";
import { build } from "esbuild";

const out = path.resolve(process.argv[2] ?? "build/web");
const engines = fs.readdirSync(out).filter((d) => /^engine(-[a-z0-9]+)?$/.test(d));

const entries = [
  { file: "sandbox.js" },
  // The tokenizer's glue stays a module of its own, loaded when a text model needs it.
  { file: "worker.js", external: ["./text/tokenizer.js"] },
  { file: "secure-context.js" },
  { file: "demo.js", external: ["./secure-context.js"] },
  { file: "pii.js", external: ["./secure-context.js"] },
  ...engines.map((d) => ({ file: `${d}/inference.js` })),
  { file: "text/tokenizer.js" },
];
const folded = new Set();
for (const { file, external = [] } of entries) {
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
    if (abs !== entry) folded.add(abs);
  }
  fs.writeFileSync(entry, r.outputFiles[0].contents);
}
const entryPaths = new Set(entries.map((e) => path.join(out, e.file)));
for (const f of folded) {
  if (entryPaths.has(f)) throw new Error(`${path.relative(out, f)} is both an entry and folded into another`);
  fs.rmSync(f);
}
// preview2-shim ships more than the engine imports (http, sockets): nothing loads the rest.
fs.rmSync(path.join(out, "shim"), { recursive: true, force: true });
console.log(`bundled ${entries.length} scripts, folded in ${folded.size} modules`);
