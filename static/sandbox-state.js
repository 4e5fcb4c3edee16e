// The sandbox's state, in one object every part of it is handed (no module-level state): what it
// is doing, what it loaded, its counters, and what `status` tells the parent about it.

import { PROTOCOL_VERSION } from "./protocol.js";
import { LIMITS } from "./run-inputs.js";

export const DEFAULT_TIMEOUT_MS = 30000;

/**
 * @typedef {{ crossOriginIsolated: boolean, sharedArrayBuffer: boolean }} Isolation
 * @typedef {{
 *   name: string, file: string, sha256: string, integrity: string, size: number, encoding: string,
 *   labels?: string[], verified: boolean, source: "network" | "cache",
 *   tokenizer?: { file: string, sha256: string, maxLength: number, stride: number },
 *   preprocess?: Record<string, any>, postprocess?: Record<string, any>,
 * }} ModelInfo
 * @typedef {{ bytes: Uint8Array, maxLength: number, stride: number }} TokenizerFile
 * @typedef {"idle" | "misconfigured" | "loading" | "ready" | "error" | "closed"} Phase
 */

/** @returns {Record<string, number>} */
function zeroCounters() {
  return {
    dropped: 0,
    rejected: 0,
    runs: 0,
    errors: 0,
    timeouts: 0,
    cancelled: 0,
    workerStarts: 0,
    workerRestarts: 0,
    cacheHits: 0,
    cacheEvictions: 0,
  };
}

export class SandboxState {
  /** @type {Phase} */ state;
  counters = zeroCounters();
  /** @type {Isolation} */ sandboxIsolation = {
    crossOriginIsolated: self.crossOriginIsolated === true,
    sharedArrayBuffer: typeof SharedArrayBuffer === "function",
  };
  /** @type {Isolation | null} the worker's, from its boot message */ workerIsolation = null;
  /** @type {ModelInfo | null} */ model = null;
  /** The verified model, kept for worker restarts. @type {Uint8Array | null} */ modelBytes = null;
  /** A text model's tokenizer.json, verified like the model. @type {TokenizerFile | null} */ tokenizerFile = null;
  /** @type {any} the worker's plain graph info */ graphInfo = null;
  /** @type {string | null} */ engineVersion = null;
  /** @type {string | null} "relaxed-simd-threads", "relaxed-simd" or "simd128": engine-variant.js */ engineBuild = null;
  timeoutMs = DEFAULT_TIMEOUT_MS;
  requireIsolation = false;
  /** @type {string | null} the parent's origin: from the browser, else the first accepted message's */ parentOrigin;
  /** Input mode: the engine's counters (runs, errors, timeouts, restarts) stop being reported. */
  privateRuns = false;
  /** @type {Record<string, number> | null} */ frozenCounters = null;
  /** @type {Record<string, number>} */ loadTimings = {};
  /** @type {string | null} */ cacheNote = null;
  /** Why this sandbox refuses to load anything (a file of its own failed its integrity check). */
  /** @type {import("./sandbox-error.js").SandboxError | null} */ refusal = null;

  /**
   * @param {import("./sandbox-config.js").SandboxConfig} config
   * @param {{ state: HTMLElement | null, dropped: HTMLElement | null, rejected: HTMLElement | null }} view
   */
  constructor(config, view) {
    this.config = config;
    this.view = view;
    this.state = config.error ? "misconfigured" : "idle";
    this.parentOrigin = config.ancestor;
  }

  /** @param {Phase} phase */
  set(phase) {
    this.state = phase;
    this.render();
  }

  render() {
    const error = this.config.error ?? this.refusal;
    if (this.view.state) this.view.state.textContent = error ? `${this.state}: ${error.message}` : this.state;
    if (this.view.dropped) this.view.dropped.textContent = String(this.counters.dropped);
    if (this.view.rejected) this.view.rejected.textContent = String(this.counters.rejected);
    document.documentElement.dataset.state = this.state;
  }

  /** @param {string} name */
  count(name) {
    this.counters[name]++;
    this.render();
  }

  isolationMode() {
    const iso = this.sandboxIsolation.crossOriginIsolated && (this.workerIsolation?.crossOriginIsolated ?? true);
    return iso ? "isolated" : "single-threaded";
  }

  /** From now on, `status` does not show the engine's own counters move (input mode). */
  freezeCounters() {
    this.privateRuns = true;
    this.frozenCounters = { ...this.counters };
  }

  /** The counters the parent may see: in input mode, frozen at its start except those its own messages move. */
  reportedCounters() {
    const c = this.counters;
    if (!this.privateRuns || !this.frozenCounters) return { ...c };
    return { ...this.frozenCounters, dropped: c.dropped, rejected: c.rejected, cancelled: c.cancelled };
  }

  isolation() {
    const mode = this.isolationMode();
    return {
      sandbox: { ...this.sandboxIsolation },
      worker: this.workerIsolation ? { ...this.workerIsolation } : null,
      mode,
      note: mode === "isolated"
        ? "cross-origin isolated: SharedArrayBuffer and precise timers are available to the engine"
        : "not cross-origin isolated: the engine runs single-threaded without SharedArrayBuffer",
    };
  }

  /** What `status` answers. */
  snapshot() {
    return {
      protocol: PROTOCOL_VERSION,
      state: this.state,
      error: this.config.error ? this.config.error.message : undefined,
      isolation: this.isolation(),
      model: this.model ? { ...this.model } : null,
      engine: this.engineVersion ? { version: this.engineVersion, build: this.engineBuild } : null,
      graph: this.graphInfo,
      counters: this.reportedCounters(),
      allowedOrigins: [...this.config.allowed],
      limits: { ...LIMITS, timeoutMs: this.timeoutMs },
      timings: { ...this.loadTimings },
      cache: this.cacheNote,
    };
  }
}
