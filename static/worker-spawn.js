// Starting the engine worker from verified bytes. A worker's script takes no `integrity` (the
// Worker constructor has no such option, and import maps do not reach workers), so the sandbox
// fetches worker.js itself with its SRI pin (pins.js) and starts the worker from a blob: URL of
// exactly those bytes. The blob: URL is minted here and let through the Trusted Types policy once;
// the sandbox's CSP allows workers from blob: only (worker-src blob:), so no worker can start from
// a URL whose bytes nobody checked.
//
// A blob: worker inherits this document's policy container: its CSP (hence sandbox.html's CSP,
// not worker.js's headers, governs the engine: it carries the 'wasm-unsafe-eval' the engine
// needs to compile), its COEP and its cross-origin isolation.
// The verified bytes are kept: a restarted worker starts from them without another download.

import { SandboxError } from "./sandbox-error.js";
import { fetchVerified } from "./verified-fetch.js";

/**
 * @typedef {import("./pins.js").Pins} Pins
 * @typedef {{ createScriptURL: (url: string) => any }} ScriptUrlPolicy
 */

/**
 * @param {{ pins: Pins, base: string, policy: ScriptUrlPolicy | null, mint: (url: string) => void }} o
 *   base: the URL the pins' paths are relative to (sandbox.js's); policy: the document's Trusted
 *   Types policy; mint: tells it which blob: URL it may let through (once)
 * @returns {() => Promise<Worker>}
 */
export function workerSpawner({ pins, base, policy, mint }) {
  const url = (/** @type {string} */ path) => new URL(path, base).href;
  // The components' pins as the worker needs them: absolute URLs (a blob: worker has no base).
  /** @type {Record<string, Record<string, { url: string, integrity: string }>>} */
  const components = {};
  for (const [dir, files] of Object.entries(pins.components)) {
    components[dir] = {};
    for (const [name, pin] of Object.entries(files)) components[dir][name] = { url: url(pin.path), integrity: pin.integrity };
  }
  /** @type {Promise<Blob> | null} */ let script = null;

  return async function spawn() {
    script ??= fetchVerified(url(pins.worker.path), pins.worker.integrity, "the engine worker (worker.js)")
      .then((bytes) => new Blob([bytes], { type: "text/javascript" }));
    script.catch(() => { script = null; });
    let blob;
    try {
      blob = await script;
    } catch (e) {
      throw new SandboxError(e?.code ?? "network", e?.message ?? String(e));
    }
    const blobUrl = URL.createObjectURL(blob);
    mint(blobUrl);
    let w;
    try {
      w = new Worker(policy ? policy.createScriptURL(blobUrl) : blobUrl, { type: "module", name: "secure-context-engine" });
    } catch (e) {
      URL.revokeObjectURL(blobUrl);
      throw e;
    }
    const revoke = () => URL.revokeObjectURL(blobUrl);
    w.addEventListener("message", revoke, { once: true });
    w.addEventListener("error", revoke, { once: true });
    w.postMessage({ type: "start", components });
    return w;
  };
}

/**
 * The document's Trusted Types policy for script URLs: it lets through a blob: URL minted by
 * workerSpawner, once, and nothing else.
 * @returns {{ policy: ScriptUrlPolicy | null, mint: (url: string) => void }}
 */
export function scriptUrlPolicy() {
  /** @type {Set<string>} */ const minted = new Set();
  const tt = /** @type {any} */ (globalThis).trustedTypes;
  const policy = tt?.createPolicy("secure-context", {
    createScriptURL(/** @type {string} */ url) {
      if (minted.delete(url) && url.startsWith(`blob:${location.origin}/`)) return url;
      throw new TypeError(`secure-context policy: refusing script URL ${url}`);
    },
  }) ?? null;
  return { policy, mint: (url) => minted.add(url) };
}
