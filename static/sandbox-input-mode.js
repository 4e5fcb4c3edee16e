// Input mode (init with `input`): this document shows a draw pad / file picker (sandbox-input.js)
// or a text box (sandbox-text.js) and runs the user's input itself, so the raw input never leaves
// this origin. With input.report true, a result is posted when the user presses Send, as
//   input-result {id: <the init's id>, seq, outputs: {name: {data: Float32Array, shape}}}
// (outputs only: no input, no file name, no timings); with false, nothing is posted. Runs of the
// user's input are not counted in `status` (nor are their errors, timeouts or restarts): the
// parent learns nothing of them but what the user sends.

import { checkAgainstGraph, validateInputs } from "./run-inputs.js";
import { SandboxError } from "./sandbox-error.js";
import { imagePipeline, mountImageInput } from "./sandbox-image.js";
import { mountInput } from "./sandbox-input.js";
import { mountTextInput } from "./sandbox-text.js";

/** A worker's result as the parent gets it: outputs by name (and a text's windows). @param {any} r */
export function byName(r) {
  /** @type {Record<string, { data: Float32Array, shape: number[] }>} */
  const outputs = {};
  for (const o of r.outputs) outputs[o.name] = { data: o.data, shape: o.shape };
  return outputs;
}

/** Can this model take the user's input here? @param {import("./sandbox-state.js").SandboxState} s */
export function inputModeProblem(s) {
  if (s.tokenizerFile || (s.graphInfo?.inputs?.length === 1 && Array.isArray(s.graphInfo.inputs[0].shape))) return null;
  return "input mode needs a model with exactly one input of known rank";
}

/**
 * Shows the input UI and wires it to the engine.
 * @param {{
 *   state: import("./sandbox-state.js").SandboxState,
 *   engine: import("./engine-supervisor.js").EngineSupervisor,
 *   reply: import("./engine-supervisor.js").Reply,
 *   report: boolean, initId: number, origin: string,
 * }} o
 */
export function startInput({ state, engine, reply, report, initId, origin }) {
  let seq = 0;
  // What `status` shows from now on: the counters as they were (input runs would reveal each
  // stroke and pick), then only what the parent's own messages change.
  state.freezeCounters();
  // Outputs only: not the input, not a text's offsets, not timings.
  const send = report
    ? (/** @type {Record<string, { data: Float32Array, shape: number[] }>} */ outputs) => reply(origin, { type: "input-result", id: initId, seq: ++seq, outputs })
    : null;
  const ready = () => {
    if (state.state !== "ready") throw new SandboxError("invalid-state", `not ready (${state.state})`);
  };
  if (state.tokenizerFile) {
    mountTextInput({
      labels: state.model?.labels,
      send,
      run: async (text) => {
        ready();
        const r = await engine.runText(text);
        return { outputs: byName(r), windows: r.windows };
      },
    });
    return;
  }
  /** @param {{name: string, data: Float32Array, shape: number[]}} input */
  const run = async ({ name, data, shape }) => {
    ready();
    const t = { [name]: { data, shape } };
    const problem = validateInputs(t);
    if (problem) throw new SandboxError("invalid-argument", problem);
    checkAgainstGraph(t, state.graphInfo);
    return { outputs: byName(await engine.run([{ name, shape, data }])) };
  };
  const pre = state.model?.preprocess;
  if (pre?.kind === "image") {
    // The manifest says how an image becomes the tensor: the user picks an image, not numbers.
    mountImageInput({
      pipeline: imagePipeline({ preprocess: pre, postprocess: state.model.postprocess, labels: state.model.labels, inputName: state.graphInfo.inputs[0].name, run }),
      send: report
        ? (outputs, result) => reply(origin, { type: "input-result", id: initId, seq: ++seq, outputs, ...(result ? { result } : {}) })
        : null,
    });
    return;
  }
  mountInput({ spec: state.graphInfo.inputs[0], labels: state.model?.labels, send, run });
}
