// Instantiating a component in the engine worker from verified bytes only. jco's glue (bundled
// into the worker, so verified with it) is built with `--instantiation async`: it fetches
// nothing itself and asks `getCoreModule(name)` for each core wasm module. Here each name must
// have a pin (the sandbox's PINS.components, sent in the worker's `start` message); the file is
// fetched with its SRI string and compiled from the bytes the browser verified. A name without a
// pin, or bytes that do not match, is an `integrity` error and nothing is instantiated.

import * as cli from "./shim/cli.js";
import * as clocks from "./shim/clocks.js";
import * as filesystem from "./shim/filesystem.js";
import * as io from "./shim/io.js";
import * as random from "./shim/random.js";
import { fetchWithIntegrity } from "./verified-fetch.js";

/**
 * @typedef {{ url: string, integrity: string }} CorePin   an absolute same-origin URL and its SRI
 * @typedef {Record<string, CorePin>} ComponentPins       jco's core module name -> its pin
 * @typedef {typeof import("./engine/inference.js").instantiate} Instantiate
 */

/** The WASI imports, by the specifiers scripts/build-web maps them to (`--map wasi:X/*=../shim/X.js#*`). */
const WASI = {
  "../shim/cli.js": cli,
  "../shim/clocks.js": clocks,
  "../shim/filesystem.js": filesystem,
  "../shim/io.js": io,
  "../shim/random.js": random,
};

/**
 * The pins the sandbox sent, checked: component dir -> name -> {url (this origin), integrity}.
 * @param {unknown} components
 * @returns {Record<string, ComponentPins>}
 */
export function checkPins(components) {
  const bad = (/** @type {string} */ why) => Object.assign(new Error(`bad integrity pins: ${why}`), { code: "integrity" });
  if (!components || typeof components !== "object") throw bad("not an object");
  /** @type {Record<string, ComponentPins>} */
  const out = {};
  for (const [dir, files] of Object.entries(components)) {
    if (!files || typeof files !== "object") throw bad(dir);
    out[dir] = {};
    for (const [name, pin] of Object.entries(files)) {
      if (typeof pin?.url !== "string" || new URL(pin.url).origin !== self.origin) throw bad(`${dir}/${name}: not a URL of this origin`);
      if (typeof pin.integrity !== "string" || !/^sha(256|384|512)-[A-Za-z0-9+/]+=*$/.test(pin.integrity)) throw bad(`${dir}/${name}: not an SRI string`);
      out[dir][name] = { url: pin.url, integrity: pin.integrity };
    }
  }
  return out;
}

/**
 * Instantiates a component from its glue and its pinned core modules.
 * @param {Instantiate} instantiate the component's jco glue
 * @param {ComponentPins | undefined} pins
 * @param {string} what how errors name the component, e.g. `the engine (engine-baseline)`
 * @returns {Promise<any>} the component's exports
 */
export async function instantiateVerified(instantiate, pins, what) {
  if (!pins) throw Object.assign(new Error(`${what}: this build pins none of its files; refusing to load it`), { code: "integrity" });
  /** @type {Map<string, Promise<WebAssembly.Module>>} */
  const modules = new Map();
  const fetchPinned = (/** @type {string} */ name) => {
    const pin = Object.hasOwn(pins, name) ? pins[name] : null;
    return pin
      ? fetchWithIntegrity(pin.url, pin.integrity, `${what}: ${name}`)
      : Promise.reject(Object.assign(new Error(`${what}: ${name} has no integrity pin; refusing to load it`), { code: "integrity" }));
  };
  const getCoreModule = (/** @type {string} */ name) => {
    let m = modules.get(name);
    if (!m) {
      m = fetchPinned(name).then((res) => WebAssembly.compileStreaming(res));
      modules.set(name, m);
    }
    return m;
  };
  // getCoreModule.bytes: the verified bytes themselves, for a build that reads its module before
  // compiling it (the threaded build's shared memory takes the limits written in the module:
  // engine-threads.js). jco's glue calls getCoreModule only.
  const bytes = (/** @type {string} */ name) =>
    fetchPinned(name).then(async (res) => new Uint8Array(await res.arrayBuffer()));
  return instantiate(Object.assign(getCoreModule, { bytes }), WASI);
}
