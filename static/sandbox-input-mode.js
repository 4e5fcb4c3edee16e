// Input mode (init with `input`): this document shows a draw pad / file picker (sandbox-input.js)
// or a text box (sandbox-text.js) and runs the user's input itself, so the raw input never leaves
// this origin. With input.report true, a result is posted when the user presses Send, as
//   input-result {id: <the init's id>, seq, outputs: {name: {data: Float32Array, shape}}}
// (outputs only: no input, no file name, no timings); with false, nothing is posted. Runs of the
// user's input are not counted in `status` (nor are their errors, timeouts or restarts): the
// parent learns nothing of them but what the user sends.

import { checkAgainstGraph, validateInputs } from "./run-inputs.js";
import { SandboxError } from "./sandbox-error.js";
import { audioPipeline, mountAudioFileInput, mountMicrophoneInput } from "./sandbox-audio.js";
import { mountCameraInput } from "./sandbox-camera.js";
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

/** The input kind a model takes by default. @param {import("./sandbox-state.js").SandboxState} s */
export function defaultKind(s) {
  if (s.tokenizerFile) return "text";
  const pre = s.model?.preprocess?.kind;
  return pre === "image" || pre === "audio" ? pre : "tensor";
}

/**
 * Can this model take the user's input here, of this kind (init.input.kind)?
 * @param {import("./sandbox-state.js").SandboxState} s @param {string} [kind]
 */
export function inputModeProblem(s, kind) {
  const name = JSON.stringify(s.model?.name);
  if (kind === "text" && !s.tokenizerFile) return `input kind "text": model ${name} takes tensors (its manifest entry names no tokenizer)`;
  if ((kind === "image" || kind === "camera") && s.model?.preprocess?.kind !== "image") {
    return `input kind "${kind}": model ${name} declares no image preprocess in its manifest entry (preprocess {"kind": "image", "size": [h, w], ...})`;
  }
  if ((kind === "audio" || kind === "microphone") && s.model?.preprocess?.kind !== "audio") {
    return `input kind "${kind}": model ${name} declares no audio preprocess in its manifest entry (preprocess {"kind": "audio", "sample_rate": hz, ...})`;
  }
  if (kind === "tensor" && s.tokenizerFile) return `input kind "tensor": model ${name} takes text`;
  // An audio preprocess names how each of the model's inputs is fed (checked by `models check`).
  if (kind === "audio" || kind === "microphone") return null;
  if (s.tokenizerFile || (s.graphInfo?.inputs?.length === 1 && Array.isArray(s.graphInfo.inputs[0].shape))) return null;
  return "input mode needs a model with exactly one input of known rank";
}

/**
 * Shows the input UI and wires it to the engine.
 * @param {{
 *   state: import("./sandbox-state.js").SandboxState,
 *   engine: import("./engine-supervisor.js").EngineSupervisor,
 *   reply: import("./engine-supervisor.js").Reply,
 *   report: boolean, initId: number, origin: string, kind?: string, rate?: number,
 * }} o
 */
export function startInput({ state, engine, reply, report, initId, origin, kind, rate }) {
  kind ??= defaultKind(state);
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
  if (kind === "text") {
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
  if (kind === "image" || kind === "camera") {
    // The manifest says how an image becomes the tensor: the user gives an image, not numbers.
    const pipeline = imagePipeline({ preprocess: pre, postprocess: state.model.postprocess, labels: state.model.labels, inputName: state.graphInfo.inputs[0].name, run });
    /** @type {((outputs: Record<string, { data: Float32Array, shape: number[] }>, result: any) => void) | null} */
    const post = report
      ? (outputs, result) => reply(origin, { type: "input-result", id: initId, seq: ++seq, outputs, ...(result ? { result } : {}) })
      : null;
    if (kind === "camera") mountCameraInput({ pipeline, send: post, rate: rate ?? 1 });
    else mountImageInput({ pipeline, send: post });
    return;
  }
  if (kind === "audio" || kind === "microphone") {
    // The manifest says how samples become the inputs (and which inputs carry the rate, the state).
    const pipeline = audioPipeline({
      preprocess: pre, postprocess: state.model.postprocess, labels: state.model.labels, graph: state.graphInfo,
      run: async (feeds) => {
        ready();
        checkAgainstGraph(Object.fromEntries(feeds.map((f) => [f.name, f])), state.graphInfo);
        return byName(await engine.run(/** @type {any} */ (feeds)));
      },
    });
    const post = report
      ? (/** @type {Record<string, { data: Float32Array, shape: number[] }>} */ outputs, /** @type {any} */ result) => reply(origin, { type: "input-result", id: initId, seq: ++seq, outputs, ...(result ? { result } : {}) })
      : null;
    if (kind === "microphone") mountMicrophoneInput({ pipeline, spec: pre, send: post, rate: rate ?? 1 });
    else mountAudioFileInput({ pipeline, spec: pre, send: post });
    return;
  }
  mountInput({ spec: state.graphInfo.inputs[0], labels: state.model?.labels, send, run });
}
