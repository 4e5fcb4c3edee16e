// Messages from the parent: checked (window, origin, then the protocol's schema), then served.
// Anything not from window.parent at an allowed origin is dropped without an answer and counted;
// well-addressed messages with a bad schema are answered with an error and counted as rejected.
// Once a parent's message was accepted, only that origin is heard.

import { checkRequest, idOf } from "./protocol.js";
import { checkAgainstGraph } from "./run-inputs.js";
import { SandboxError } from "./sandbox-error.js";
import { byName, inputModeProblem, startInput } from "./sandbox-input-mode.js";
import { loadModel } from "./sandbox-load.js";

/**
 * @typedef {{
 *   state: import("./sandbox-state.js").SandboxState,
 *   engine: import("./engine-supervisor.js").EngineSupervisor,
 *   models: import("./model-store.js").ModelStore,
 *   reply: import("./engine-supervisor.js").Reply,
 * }} Parts
 */

/** @param {Parts} parts @param {Window} win */
export function listen(parts, win) {
  const { state: s, reply } = parts;
  const serve = makeHandler(parts);
  win.addEventListener("message", (event) => {
    const drop = () => s.count("dropped");
    if (event.source !== win.parent || !s.config.allowed.has(event.origin) || s.config.error) return drop();
    if (s.parentOrigin === null) s.parentOrigin = event.origin;
    else if (event.origin !== s.parentOrigin) return drop();
    const msg = event.data;
    const problem = checkRequest(msg);
    if (problem) {
      s.count("rejected");
      reply(event.origin, { type: "error", id: idOf(msg), code: "bad-message", message: problem });
      return;
    }
    serve(msg, event.origin).catch((e) => {
      s.counters.errors++;
      reply(event.origin, { type: "error", id: msg.id, code: e?.code ?? "internal", message: e?.message ?? String(e) });
    });
  });
}

/** @param {Parts} parts */
function makeHandler(parts) {
  const { state: s, engine, models, reply } = parts;
  /** @type {Promise<void> | null} */ let initPromise = null;

  const runnable = () => {
    // In input mode the engine is the user's: a run of the parent's would queue behind theirs
    // and time them.
    if (s.privateRuns) throw new SandboxError("invalid-state", "this sandbox is in input mode: it runs the user's input only");
    if (s.state !== "ready") throw new SandboxError("invalid-state", `not ready (${s.state})`);
  };

  /** @param {any} msg a checked request @param {string} origin */
  return async function serve(msg, origin) {
    switch (msg.type) {
      case "ping":
        reply(origin, { type: "pong", id: msg.id });
        return;
      case "status":
        engine.direct.sync();
        reply(origin, { type: "status", id: msg.id, status: s.snapshot() });
        return;
      case "init": {
        if (initPromise) throw new SandboxError("invalid-state", "already initialized; open a new sandbox for another model");
        s.requireIsolation = msg.requireIsolation === true;
        if (msg.timeoutMs) s.timeoutMs = msg.timeoutMs;
        initPromise = loadModel(parts, msg.model, (p) => reply(origin, { type: "progress", id: msg.id, ...p }));
        try {
          await initPromise;
        } catch (e) {
          s.set("error");
          initPromise = null;
          engine.stop();
          throw e;
        }
        const problem = msg.input ? inputModeProblem(s, msg.input.kind) : null;
        if (problem) throw new SandboxError("invalid-argument", problem);
        engine.direct.origin = origin;
        reply(origin, {
          type: "ready",
          id: msg.id,
          model: { ...s.model },
          engine: { version: s.engineVersion, build: s.engineBuild },
          graph: s.graphInfo,
          isolation: s.isolation(),
          timings: { ...s.loadTimings },
        });
        // In input mode the page gets no port: its runs would run on the user's engine.
        if (msg.input) startInput({ state: s, engine, reply, report: msg.input.report, kind: msg.input.kind, rate: msg.input.rate, initId: msg.id, origin });
        else engine.direct.offer();
        return;
      }
      case "run": {
        runnable();
        checkAgainstGraph(msg.inputs, s.graphInfo);
        const inputs = Object.entries(msg.inputs).map(([name, t]) => ({ name, shape: t.shape, data: t.data }));
        const r = await engine.run(inputs);
        s.counters.runs++;
        reply(origin, { type: "result", id: msg.id, outputs: byName(r), timings: r.timings }, r.outputs.map((/** @type {any} */ o) => o.data.buffer));
        return;
      }
      case "run-text": {
        runnable();
        if (!s.tokenizerFile) throw new SandboxError("invalid-argument", `model "${s.model?.name}" takes tensors, not text (its manifest entry names no tokenizer)`);
        const r = await engine.runText(msg.text);
        s.counters.runs++;
        reply(origin, { type: "result", id: msg.id, outputs: byName(r), windows: r.windows, timings: r.timings }, r.outputs.map((/** @type {any} */ o) => o.data.buffer));
        return;
      }
      case "cancel": {
        if (s.privateRuns) throw new SandboxError("invalid-state", "this sandbox is in input mode: its runs are the user's");
        const count = engine.cancelAll();
        s.counters.cancelled += count;
        reply(origin, { type: "cancelled", id: msg.id, count });
        return;
      }
      case "purge":
        reply(origin, { type: "purged", id: msg.id, deleted: await models.purge() });
        return;
      case "close":
        engine.stop();
        s.set("closed");
        reply(origin, { type: "closed", id: msg.id });
    }
  };
}
