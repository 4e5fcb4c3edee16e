// The sandbox: the document in the engine iframe. It owns the model bytes and the engine
// worker; the embedding page only ever sees messages (protocol.js has them all).
//
// The parts, each handed the state explicitly:
//   sandbox-config.js      who may talk to us (the `parents` allowlist, the browser's ancestor)
//   sandbox-state.js       state, counters, what `status` answers
//   sandbox-dispatch.js    the parent's messages: checked, then served
//   sandbox-load.js        `init`: worker start, model read and verified, graph loaded
//   model-store.js         the manifest, models fetched with SRI, re-hashed, cached by hash
//   engine-supervisor.js   the worker: requests, queue, timeouts, restarts; the page's direct port
//   worker-spawn.js        the worker started from its verified bytes (a blob: URL)
//   pins.js                the build's integrity pins (worker, manifest, engines' core wasm)
//
// Integrity: sandbox.html (the root, served no-cache) pins this script and sandbox.css with
// <script integrity>/<link integrity>; this script carries PINS; everything else is fetched with
// those SRI strings and refused on a mismatch, before any of it runs or is read.
//   sandbox-input-mode.js  input mode: the user's input runs here, outputs leave on Send only

import { EngineSupervisor } from "./engine-supervisor.js";
import { ModelStore } from "./model-store.js";
import { PINS } from "./pins.js";
import { PROTOCOL_VERSION } from "./protocol.js";
import { readConfig } from "./sandbox-config.js";
import { listen } from "./sandbox-dispatch.js";
import { SandboxError } from "./sandbox-error.js";
import { SandboxState } from "./sandbox-state.js";
import { scriptUrlPolicy, workerSpawner } from "./worker-spawn.js";

// Every path in PINS is relative to this script (build/web/sandbox.js).
const BASE = import.meta.url;
const { policy, mint } = scriptUrlPolicy();
const spawn = PINS
  ? workerSpawner({ pins: PINS, base: BASE, policy, mint })
  : async () => {
    throw new SandboxError("integrity", "this sandbox was built without integrity pins (scripts/build-web writes them): refusing to start unverified code");
  };

/** @type {import("./engine-supervisor.js").Reply} */
function reply(origin, msg, transfer = []) {
  window.parent.postMessage({ v: PROTOCOL_VERSION, ...msg }, origin, transfer);
}

/**
 * sandbox.html pins its stylesheet like this script; the browser skips one whose bytes do not
 * match (or that did not load), and the input UI must not run unstyled by what the page sent.
 * Module scripts run only after the document's stylesheets loaded or failed, so this is final.
 */
function refusedStylesheets() {
  return [...document.querySelectorAll('link[rel="stylesheet"]')]
    .filter((l) => !/** @type {HTMLLinkElement} */ (l).sheet)
    .map((l) => l.getAttribute("href"));
}

const config = readConfig(window);
const state = new SandboxState(config, {
  state: document.getElementById("sandbox-state"),
  dropped: document.getElementById("sandbox-dropped"),
  rejected: document.getElementById("sandbox-rejected"),
});
const refused = refusedStylesheets();
if (refused.length) {
  state.refusal = new SandboxError("integrity", `${refused.join(", ")} failed the integrity check sandbox.html pins (or did not load): refusing to load anything`);
}
const engine = new EngineSupervisor(state, reply, spawn);
const models = new ModelStore(state, PINS ? { url: new URL(PINS.manifest.path, BASE).href, integrity: PINS.manifest.integrity } : null);
listen({ state, engine, models, reply }, window);

state.render();
// Start the engine worker now, not when `init` comes: its script, then the engine's core wasm are
// fetched (each verified against its pin) and compiled while the page's hello and init cross
// between the processes (profiled: that exchange is 20-150 ms of the time to first result). A
// sandbox that is misconfigured or refuses its own files starts nothing, nor one whose parent the
// browser does not name (location.ancestorOrigins: Chromium, WebKit), which waits for an accepted
// `init` as before. A failed start is reported by the first `init` (which then stops the engine,
// so the next `init` starts afresh).
if (!config.error && config.ancestor !== null && !state.refusal && PINS) engine.start().catch(() => { /* reported by init */ });
if (!config.error) {
  // Say hello to the parent; only a parent at an allowed origin can receive it.
  const targets = state.parentOrigin ? [state.parentOrigin] : [...config.allowed];
  for (const origin of targets) {
    try {
      reply(origin, { type: "hello", id: 0, protocol: PROTOCOL_VERSION });
    } catch { /* not our parent */ }
  }
}
