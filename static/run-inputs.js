// What a run's inputs may be. Checked where a run enters the sandbox: in the sandbox document
// for runs relayed from the page, and in the engine worker for runs sent on the page's direct
// port (static/run-port.js). One definition for both.

export const LIMITS = Object.freeze({
  maxModelBytes: 256 * 1024 * 1024,
  maxInputBytes: 64 * 1024 * 1024,
  maxInputs: 16,
  maxRank: 8,
  maxDim: 1 << 24,
  maxString: 256,
  minTimeoutMs: 100,
  maxTimeoutMs: 10 * 60 * 1000,
  /** Live input modes (camera, microphone): results posted to the page at most this many times a second. */
  maxInputRate: 30,
});

export class InputError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.code = "invalid-argument";
  }
}

/** @returns {string | null} what is wrong with run.inputs, or null */
export function validateInputs(inputs) {
  if (!inputs || typeof inputs !== "object" || Object.getPrototypeOf(inputs) !== Object.prototype) return "run.inputs must be an object {name: {data, shape}}";
  const names = Object.keys(inputs);
  if (names.length === 0 || names.length > LIMITS.maxInputs) return `run.inputs must name 1..${LIMITS.maxInputs} tensors`;
  let total = 0;
  for (const name of names) {
    if (name.length === 0 || name.length > LIMITS.maxString) return "input names are 1..256 characters";
    const t = inputs[name];
    if (!t || typeof t !== "object" || Object.getPrototypeOf(t) !== Object.prototype) return `input ${name}: {data, shape} expected`;
    for (const k of Object.keys(t)) if (k !== "data" && k !== "shape") return `input ${name}: unexpected field ${JSON.stringify(k.slice(0, 40))}`;
    if (!(t.data instanceof Float32Array)) return `input ${name}: data must be a Float32Array`;
    if (!Array.isArray(t.shape) || t.shape.length === 0 || t.shape.length > LIMITS.maxRank) return `input ${name}: shape must be an array of 1..${LIMITS.maxRank} dimensions`;
    let n = 1;
    for (const d of t.shape) {
      if (!Number.isInteger(d) || d < 1 || d > LIMITS.maxDim) return `input ${name}: dimensions are integers in [1, ${LIMITS.maxDim}]`;
      n *= d;
    }
    if (n !== t.data.length) return `input ${name}: shape ${JSON.stringify(t.shape)} holds ${n} values, data has ${t.data.length}`;
    total += t.data.byteLength;
    if (total > LIMITS.maxInputBytes) return `inputs exceed ${LIMITS.maxInputBytes} bytes`;
  }
  return null;
}

/** The graph's inputs by name, made once per graph info (every run is checked against it: profiled). */
/** @type {WeakMap<object, Map<string, any>>} */
const DECLARED = new WeakMap();

/** Against the loaded graph (the worker's plain info): names and fixed dimensions. */
export function checkAgainstGraph(inputs, graphInfo) {
  if (!graphInfo) return;
  let declared = DECLARED.get(graphInfo);
  if (!declared) DECLARED.set(graphInfo, (declared = new Map(graphInfo.inputs.map((t) => [t.name, t]))));
  for (const name of Object.keys(inputs)) {
    const t = inputs[name];
    const d = declared.get(name);
    if (!d) throw new InputError(`the model has no input "${name}" (inputs: ${[...declared.keys()].join(", ")})`);
    if (d.shape) {
      if (d.shape.length !== t.shape.length) throw new InputError(`input ${name}: rank ${t.shape.length}, the model wants ${d.shape.length}`);
      for (let i = 0; i < d.shape.length; i++) {
        const want = d.shape[i];
        if (typeof want === "number" && want !== t.shape[i]) {
          throw new InputError(`input ${name}: dimension ${i} is ${t.shape[i]}, the model wants ${want}`);
        }
      }
    }
  }
  for (const name of declared.keys()) {
    if (!Object.hasOwn(inputs, name)) throw new InputError(`missing input "${name}"`);
  }
}
