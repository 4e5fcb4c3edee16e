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
//   sandbox-input-mode.js  input mode: the user's input runs here, outputs leave on Send only

import { EngineSupervisor } from "./engine-supervisor.js";
import { ModelStore } from "./model-store.js";
import { PROTOCOL_VERSION } from "./protocol.js";
import { readConfig } from "./sandbox-config.js";
import { listen } from "./sandbox-dispatch.js";
import { SandboxState } from "./sandbox-state.js";

const WORKER_URL = new URL("./worker.js", import.meta.url).href;
const MANIFEST_URL = new URL("./models/manifest.json", import.meta.url).href;

// Trusted Types: `new Worker(url)` is a sink. The only URL this policy lets through is ours.
const ttPolicy = globalThis.trustedTypes?.createPolicy("secure-context", {
  createScriptURL(url) {
    if (url === WORKER_URL && new URL(url).origin === location.origin) return url;
    throw new TypeError(`secure-context policy: refusing script URL ${url}`);
  },
});

async function spawn() {
  const url = ttPolicy ? ttPolicy.createScriptURL(WORKER_URL) : WORKER_URL;
  return new Worker(/** @type {any} */ (url), { type: "module", name: "secure-context-engine" });
}

/** @type {import("./engine-supervisor.js").Reply} */
function reply(origin, msg, transfer = []) {
  window.parent.postMessage({ v: PROTOCOL_VERSION, ...msg }, origin, transfer);
}

const config = readConfig(window);
const state = new SandboxState(config, {
  state: document.getElementById("sandbox-state"),
  dropped: document.getElementById("sandbox-dropped"),
  rejected: document.getElementById("sandbox-rejected"),
});
const engine = new EngineSupervisor(state, reply, spawn);
const models = new ModelStore(state, { url: MANIFEST_URL, integrity: null });
listen({ state, engine, models, reply }, window);

state.render();
if (!config.error) {
  // Say hello to the parent; only a parent at an allowed origin can receive it.
  const targets = state.parentOrigin ? [state.parentOrigin] : [...config.allowed];
  for (const origin of targets) {
    try {
      reply(origin, { type: "hello", id: 0, protocol: PROTOCOL_VERSION });
    } catch { /* not our parent */ }
  }
}
