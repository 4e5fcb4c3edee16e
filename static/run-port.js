// The page's direct line to the engine worker: a MessagePort for `run` requests only, so a run
// crosses one hop each way (page <-> worker) instead of two (page <-> sandbox <-> worker).
//
// Trust: the sandbox document makes the MessageChannel, keeps neither end, gives one end to its
// own worker and the other to its parent in a window.postMessage addressed to the parent's
// checked origin; so only that page holds it. A port carries no origin: what arrives on it is
// validated here exactly as the sandbox validates a relayed run (protocol.js checkPortRequest),
// and nothing but `run` is served. Supervision stays in the sandbox: the worker tells it when a port
// run starts and ends, and the sandbox times it out, counts it, and restarts the worker
// (closing the port; it offers a new one once the graph is loaded again).
//
// How the worker tells it: where the sandbox is cross-origin isolated (SharedArrayBuffer), through
// a PortWatch, a few counters both share: the worker stores the run's id and start time and counts
// it started, then finished; no message and no wake-up of the sandbox per run (profiled: the two
// notices were two postMessages in the worker and two tasks, a timer and a repaint in the sandbox
// for every run). The sandbox's watchdog reads the counters when its timer fires (engine-supervisor.js).
// Without SharedArrayBuffer, a message at each start and end, as before. Outcomes other than ok
// (rejected, error, fatal) are messages in both cases.
//
// Page -> worker:  {v: 1, type: "run", id, inputs: {name: {data: Float32Array, shape}}}
// Worker -> page:  {v: 1, type: "result", id, outputs: {name: {data, shape}}, timings}
//                  {v: 1, type: "error", id, code, message}
// Worker -> sandbox (notify): {type: "port-run", id} (no PortWatch only),
//                  {type: "port-done", id, outcome, fatal, code?, message?} (ok: no PortWatch only)

import { PROTOCOL_VERSION, checkPortRequest, idOf } from "./protocol.js";
import { checkAgainstGraph } from "./run-inputs.js";

// PortWatch slots (BigInt64, Atomics only: a plain Float64 access may tear).
const STARTED = 0;
const FINISHED = 1;
const RUN_ID = 2;
const STARTED_AT_US = 3; // microseconds on the sandbox's clock (its performance.now())
const OK = 4;
const SLOTS = 5;

/**
 * The counters the sandbox and its worker share for the page's port runs. Runs are sequential
 * (one worker thread), so a run is in progress exactly when STARTED != FINISHED. The worker writes
 * a run's id and start time before it counts it started, so a reader that sees STARTED unchanged
 * around its reads of them has that run's, or (when the run ended and the next began in between)
 * the next run's: a later start, so a watchdog can only ever kill later, never early.
 */
export class PortWatch {
  /** @returns {boolean} whether this context can share one (cross-origin isolated) */
  static available() {
    return typeof SharedArrayBuffer === "function" && globalThis.crossOriginIsolated === true;
  }

  /**
   * @param {SharedArrayBuffer} [buffer] the sandbox's (omit to make one)
   * @param {number} [origin] the sandbox's performance.timeOrigin (both clocks are the shared
   *   monotonic clock, so a time converts between them by the difference of their origins)
   */
  constructor(buffer = new SharedArrayBuffer(SLOTS * 8), origin = performance.timeOrigin) {
    this.buffer = buffer;
    this.cells = new BigInt64Array(buffer, 0, SLOTS);
    this.shift = performance.timeOrigin - origin;
  }

  /** For the worker: {buffer, origin} in the `port` message. */
  share() {
    return { buffer: this.buffer, origin: performance.timeOrigin };
  }

  /** Worker: run `id` starts now. @param {number} id */
  begin(id) {
    const c = this.cells;
    Atomics.store(c, RUN_ID, BigInt(id));
    Atomics.store(c, STARTED_AT_US, BigInt(Math.round((performance.now() + this.shift) * 1000)));
    Atomics.add(c, STARTED, 1n);
  }

  /** Worker: the run ends (after its reply was posted). @param {boolean} ok */
  end(ok) {
    if (ok) Atomics.add(this.cells, OK, 1n);
    Atomics.add(this.cells, FINISHED, 1n);
  }

  /** Sandbox: the run in progress, or null. @returns {{ id: number, startedAt: number } | null} */
  running() {
    const c = this.cells;
    for (let tries = 0; tries < 3; tries++) {
      const s = Atomics.load(c, STARTED);
      if (s === Atomics.load(c, FINISHED)) return null;
      const id = Number(Atomics.load(c, RUN_ID));
      const startedAt = Number(Atomics.load(c, STARTED_AT_US)) / 1000;
      if (Atomics.load(c, STARTED) === s) return { id, startedAt };
    }
    // Runs starting faster than we can read: call this one just started (never kills early).
    return { id: Number(Atomics.load(c, RUN_ID)), startedAt: performance.now() };
  }

  /** Sandbox: runs that ended ok, in all. */
  ok() {
    return Number(Atomics.load(this.cells, OK));
  }
}

/**
 * Serves run requests arriving on `port`.
 * @param {MessagePort} port
 * @param {{
 *   run: (inputs: {name: string, shape: number[], data: Float32Array}[]) => {outputs: {name: string, shape: number[], data: Float32Array}[], timings: object},
 *   graphInfo: () => any,
 *   failure: (e: unknown) => {code: string, message: string, fatal: boolean},
 *   usable: () => boolean,
 *   notify: (msg: object) => void,
 * }} engine
 * @param {{ buffer: SharedArrayBuffer, origin: number } | undefined} shared the sandbox's PortWatch, if any
 */
export function servePort(port, engine, shared) {
  // SharedArrayBuffer is not even defined where the worker is not cross-origin isolated.
  const watch = shared && typeof SharedArrayBuffer === "function" && shared.buffer instanceof SharedArrayBuffer && typeof shared.origin === "number"
    ? new PortWatch(shared.buffer, shared.origin)
    : null;
  port.onmessage = (event) => {
    const msg = event.data;
    // A poisoned engine answers nothing: the sandbox restarts it and the page sends again.
    if (!engine.usable()) return;
    const id = idOf(msg);
    const problem = checkPortRequest(msg);
    if (problem) {
      port.postMessage({ v: PROTOCOL_VERSION, type: "error", id, code: "bad-message", message: problem });
      engine.notify({ type: "port-done", id, outcome: "rejected", fatal: false });
      return;
    }
    if (watch) watch.begin(/** @type {number} */ (id));
    else engine.notify({ type: "port-run", id });
    try {
      checkAgainstGraph(msg.inputs, engine.graphInfo());
      const inputs = [];
      for (const name of Object.keys(msg.inputs)) {
        const t = msg.inputs[name];
        inputs.push({ name, shape: t.shape, data: t.data });
      }
      const r = engine.run(inputs);
      /** @type {Record<string, {data: Float32Array, shape: number[]}>} */
      const outputs = {};
      const transfer = [];
      for (const o of r.outputs) {
        outputs[o.name] = { data: o.data, shape: o.shape };
        transfer.push(o.data.buffer);
      }
      port.postMessage({ v: PROTOCOL_VERSION, type: "result", id, outputs, timings: r.timings }, transfer);
      if (watch) watch.end(true);
      else engine.notify({ type: "port-done", id, outcome: "ok", fatal: false });
    } catch (e) {
      const f = e && typeof e === "object" && typeof /** @type {any} */ (e).code === "string"
        ? { code: /** @type {any} */ (e).code, message: String(/** @type {any} */ (e).message), fatal: false }
        : engine.failure(e);
      if (!f.fatal) port.postMessage({ v: PROTOCOL_VERSION, type: "error", id, code: f.code, message: f.message });
      watch?.end(false);
      engine.notify({ type: "port-done", id, outcome: "error", fatal: f.fatal, code: f.code, message: f.message });
    }
  };
}
