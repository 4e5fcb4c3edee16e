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
// Page -> worker:  {v: 1, type: "run", id, inputs: {name: {data: Float32Array, shape}}}
// Worker -> page:  {v: 1, type: "result", id, outputs: {name: {data, shape}}, timings}
//                  {v: 1, type: "error", id, code, message}
// Worker -> sandbox (notify): {type: "port-run", id}, {type: "port-done", id, outcome, fatal}

import { PROTOCOL_VERSION, checkPortRequest, idOf } from "./protocol.js";
import { checkAgainstGraph } from "./run-inputs.js";

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
 */
export function servePort(port, engine) {
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
    engine.notify({ type: "port-run", id });
    try {
      checkAgainstGraph(msg.inputs, engine.graphInfo());
      const r = engine.run(Object.entries(msg.inputs).map(([name, t]) => ({ name, shape: t.shape, data: t.data })));
      const outputs = {};
      for (const o of r.outputs) outputs[o.name] = { data: o.data, shape: o.shape };
      port.postMessage({ v: PROTOCOL_VERSION, type: "result", id, outputs, timings: r.timings }, r.outputs.map((o) => o.data.buffer));
      engine.notify({ type: "port-done", id, outcome: "ok", fatal: false });
    } catch (e) {
      const f = e && typeof e === "object" && typeof /** @type {any} */ (e).code === "string"
        ? { code: /** @type {any} */ (e).code, message: String(/** @type {any} */ (e).message), fatal: false }
        : engine.failure(e);
      if (!f.fatal) port.postMessage({ v: PROTOCOL_VERSION, type: "error", id, code: f.code, message: f.message });
      engine.notify({ type: "port-done", id, outcome: "error", fatal: f.fatal, code: f.code, message: f.message });
    }
  };
}
