// The integrity pins of a build: the SRI strings of every file the sandbox runs or reads that is
// not covered by its own <script integrity> (sandbox.html pins this bundle, sandbox.js, and
// sandbox.css). scripts/build-web (web/pins.mjs) writes the real ones into build/web/pins.js
// before bundling sandbox.js, so they are part of the bytes sandbox.html pins. This source copy
// pins nothing: a sandbox built without them refuses to load any code or model.
//
//   worker      worker.js: the engine worker, its jco glue and WASI shims bundled in
//   manifest    models/manifest.json: which pins each model's (and tokenizer's) sha256 + SRI
//   components  per component directory (engine, engine-baseline, text, ...): jco's name of each
//               core wasm module -> its content-hashed file

/**
 * @typedef {{ path: string, integrity: string }} Pin   a path relative to sandbox.js, its SRI string
 * @typedef {{ worker: Pin, manifest: Pin, components: Record<string, Record<string, Pin>> }} Pins
 */

/** @type {Pins | null} */
export const PINS = null;
