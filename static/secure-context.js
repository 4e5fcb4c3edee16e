// secure-context client: the ES module any page uses to run a model privately in the
// sandboxed engine iframe. No dependencies, no eval, works under the strict CSP.
//
//   import { SecureContext } from "./secure-context.js";
//   const frame = document.createElement("iframe");
//   frame.sandbox = "allow-scripts allow-same-origin";
//   frame.allow = "cross-origin-isolated";
//   frame.src = "sandbox.html";
//   document.body.append(frame);
//   const ctx = await SecureContext.open({ frame, model: "digits", onProgress: console.log });
//   const { probabilities } = await ctx.run({ input: { data, shape: [1, 1, 8, 8] } });
//   // A text model (its manifest entry names a tokenizer): the sandbox tokenizes.
//   const { logits, windows } = await ctx.run({ text: "Patient: Jane Roe, DOB 01/02/1960" });
//
// Protocol: every message is {v: 1, type, id, ...}; protocol.js defines them all (bundled in).

import { PROTOCOL_VERSION, checkInputResult, checkOutputs, checkPortReply, checkReply, isProtocolMessage } from "./protocol.js";

export { PROTOCOL_VERSION };

/**
 * @typedef {{ data: Float32Array, shape: number[] }} TensorValue
 * @typedef {{ phase: "manifest" | "download" | "verify" | "cache" | "engine" | "graph",
 *             loaded?: number, total?: number, message?: string }} Progress
 * @typedef {{ crossOriginIsolated: boolean, sharedArrayBuffer: boolean }} Isolation
 * @typedef {{
 *   name: string, file: string, sha256: string, integrity: string, size: number,
 *   verified: boolean, source: "network" | "cache", labels?: string[]
 * }} ModelStatus
 * @typedef {{
 *   protocol: number,
 *   state: string,
 *   isolation: { page: Isolation, sandbox: Isolation, worker: Isolation | null,
 *                mode: "isolated" | "single-threaded", note: string },
 *   model: ModelStatus | null,
 *   engine: { version: string, build: "relaxed-simd" | "simd128" } | null,
 *   graph: any,
 *   counters: Record<string, number>,
 *   client: { dropped: number },
 *   allowedOrigins: string[],
 *   timings: Record<string, number>,
 * }} Status
 * @typedef {Record<string, number>} Timings
 * @typedef {{ offsets: Uint32Array, specialTokensMask: Uint8Array, length: number }} TextWindow
 * @typedef {{ timings: Timings, windows?: TextWindow[], [output: string]: any }} RunResult
 *   the outputs by name (TensorValue), the timings, and for a text model its windows
 */

/** An error from the sandbox or the engine: `code` is machine-readable. */
export class SecureContextError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.name = "SecureContextError";
    /** @type {string} e.g. "integrity", "not-isolated", "timeout", "cancelled", "invalid-argument" */
    this.code = code;
  }
}

export class SecureContext {
  /** @type {HTMLIFrameElement} */ #frame;
  /** @type {string} */ #origin;
  /** @type {Map<number, {resolve: (v: any) => void, reject: (e: any) => void, onProgress?: (p: Progress) => void}>} */
  #pending = new Map();
  #nextId = 1;
  #dropped = 0;
  #closed = false;
  /** @type {any} */ #ready = null;
  /** @type {((ev: MessageEvent) => void) | null} */ #listener = null;
  /** @type {(() => void) | null} */ #onHello = null;
  /** @type {number | null} */ #inputId = null;
  /** @type {((r: {outputs: Record<string, TensorValue>, seq: number, result?: any}) => void) | null} */ #onInput = null;
  /** The engine worker's direct port (see #usePort), or null: runs then go through the sandbox. */
  /** @type {MessagePort | null} */ #port = null;
  /** Runs sent on #port and not yet answered: id -> what to send again if the worker restarts. */
  /** @type {Map<number, object>} */ #portRuns = new Map();

  /** @private use SecureContext.open */
  constructor(frame, origin) {
    this.#frame = frame;
    this.#origin = origin;
  }

  /**
   * Connects to the sandbox in `frame`, downloads and verifies the model, starts the engine.
   * @param {{
   *   frame: HTMLIFrameElement,
   *   model?: string,
   *   onProgress?: (p: Progress) => void,
   *   requireIsolation?: boolean,
   *   origin?: string,
   *   timeoutMs?: number,
   *   connectTimeoutMs?: number,
   *   input?: { report: boolean, kind?: "tensor" | "image" | "text" | "camera" | "audio" | "microphone", rate?: number },
   *   onInput?: (r: { outputs: Record<string, TensorValue>, seq: number, result?: any }) => void,
   * }} options
   *   frame: the iframe (sandbox="allow-scripts allow-same-origin", allow="cross-origin-isolated");
   *     if it has no src, sandbox.html next to this module is used.
   *   origin: the sandbox's origin (default: the origin of frame.src). Messages from any other
   *     origin or window are dropped.
   *   requireIsolation: refuse to run unless page-independent cross-origin isolation holds in
   *     the sandbox and its worker.
   *   timeoutMs: per-run limit enforced in the sandbox (the worker is terminated past it).
   *   input: input mode: the sandbox document shows a draw pad / file picker and runs the
   *     user's input itself (show the frame). With report: true, the outputs of a result (never
   *     the input, no timings) come to onInput when the user sends them with the frame's Send
   *     button; with false, nothing comes back. For a model whose manifest entry declares
   *     `preprocess` (e.g. an image), the frame takes that kind of input (an image file) and
   *     `result` carries its `postprocess` (classes, boxes, a mask or scores). `kind` asks for one
   *     kind of input (protocol.js INPUT_KINDS); the sandbox refuses a model that cannot take it.
   *     kind "camera" needs the frame's allow="camera" too, "microphone" allow="microphone";
   *     for both, `rate` caps the results a second.
   * @returns {Promise<SecureContext>}
   */
  static async open(options) {
    const { frame, model = "digits", onProgress, requireIsolation = false, timeoutMs, connectTimeoutMs = 20000, input, onInput } = options ?? {};
    if (!frame || typeof frame !== "object" || frame.tagName !== "IFRAME") {
      throw new SecureContextError("invalid-argument", "open() needs { frame: HTMLIFrameElement }");
    }
    if (!frame.getAttribute("src")) frame.src = new URL("./sandbox.html", import.meta.url).href;
    const origin = options.origin ?? new URL(frame.src, document.baseURI).origin;
    if (origin === "*" || origin === "null") throw new SecureContextError("invalid-argument", "origin must be a concrete origin");
    if (input !== undefined && (typeof input?.report !== "boolean" || (input.report && typeof onInput !== "function"))) {
      throw new SecureContextError("invalid-argument", "input must be { report: boolean }, with an onInput function when report is true");
    }
    const ctx = new SecureContext(frame, origin);
    ctx.#onInput = input?.report ? onInput : null;
    ctx.#listen();
    try {
      await ctx.#connect(connectTimeoutMs);
      const init = { type: "init", model, requireIsolation, ...(timeoutMs ? { timeoutMs } : {}), ...(input ? { input: { report: input.report, ...(input.kind ? { kind: input.kind } : {}), ...(input.rate ? { rate: input.rate } : {}) } } : {}) };
      ctx.#inputId = input ? ctx.#nextId : null; // the id #request gives this init
      ctx.#ready = await ctx.#request(init, onProgress);
    } catch (e) {
      ctx.#teardown();
      throw e;
    }
    return ctx;
  }

  /** What `init` answered: model, engine version, graph info, isolation. */
  get info() {
    return this.#ready;
  }

  /**
   * Runs the model. Inputs and outputs are keyed by tensor name. A text model takes
   * `{ text }` instead: the sandbox tokenizes it with the model's own tokenizer (in windows of
   * the manifest's `max_length` tokens), and the result has the outputs plus `windows`, each
   * `{ offsets: Uint32Array (start, end pairs in UTF-16 units of text), specialTokensMask,
   * length }`, one per row of the outputs (see text.js `entities`).
   * @param {Record<string, TensorValue> | { text: string }} inputs
   * @returns {Promise<RunResult>} e.g. { probabilities: { data, shape: [1, 10] }, timings }
   */
  async run(inputs) {
    if (!inputs || typeof inputs !== "object") throw new SecureContextError("invalid-argument", "run() needs { name: { data, shape } } or { text }");
    const t0 = performance.now();
    const isText = Object.keys(inputs).length === 1 && typeof inputs.text === "string";
    // Text goes through the sandbox (it holds the tokenizer's windows); tensors take the
    // worker's direct port when there is one.
    const r = await (isText
      ? this.#request({ type: "run-text", text: inputs.text })
      : this.#port ? this.#requestOnPort({ type: "run", inputs }) : this.#request({ type: "run", inputs }));
    /** @type {any} */
    const out = {};
    for (const [name, v] of Object.entries(r.outputs)) out[name] = { data: v.data, shape: v.shape };
    if (isText) out.windows = r.windows;
    out.timings = { ...r.timings, roundTripMs: performance.now() - t0 };
    return out;
  }

  /** @returns {Promise<Status>} */
  async status() {
    const r = await this.#request({ type: "status" });
    return {
      ...r.status,
      isolation: { ...r.status.isolation, page: pageIsolation() },
      client: { dropped: this.#dropped },
    };
  }

  /** Aborts queued and running computations (the engine worker is restarted). @returns {Promise<number>} how many were cancelled */
  async cancel() {
    // Runs on the port are cancelled here; the sandbox stops the one the worker is computing.
    const onPort = this.#portRuns.size;
    this.#failPortRuns(null, "cancelled", "cancelled", false, false);
    const r = await this.#request({ type: "cancel" });
    return Math.max(r.count, onPort);
  }

  /** Deletes cached models in the sandbox's Cache Storage. */
  async purgeCache() {
    const r = await this.#request({ type: "purge" });
    return r.deleted;
  }

  /** Stops the engine and detaches from the frame (the page still owns the iframe). */
  async close() {
    if (this.#closed) return;
    try {
      await Promise.race([this.#request({ type: "close" }), new Promise((r) => setTimeout(r, 2000))]);
    } catch { /* closing anyway */ }
    this.#teardown();
  }

  #teardown() {
    this.#closed = true;
    if (this.#listener) removeEventListener("message", this.#listener);
    this.#listener = null;
    this.#failPortRuns(null, "closed", "the context was closed", false, true);
    this.#port?.close();
    this.#port = null;
    for (const [, p] of this.#pending) p.reject(new SecureContextError("closed", "the context was closed"));
    this.#pending.clear();
  }

  #listen() {
    this.#listener = (event) => {
      if (event.source !== this.#frame.contentWindow || event.origin !== this.#origin) {
        // Not from our sandbox: ignore. Count the ones dressed as protocol messages (forgeries).
        if (isProtocolMessage(event.data)) this.#dropped++;
        return;
      }
      const msg = event.data;
      if (!checkReply(msg)) {
        this.#dropped++;
        return;
      }
      if (msg.type === "hello" || msg.type === "pong") {
        this.#onHello?.();
        return;
      }
      if (msg.type === "port") {
        this.#usePort(event.ports?.[0]);
        return;
      }
      if (msg.type === "port-closed") {
        this.#failPortRuns(Number.isSafeInteger(msg.running) ? msg.running : null, String(msg.code), String(msg.message), msg.retry === true, true);
        return;
      }
      if (msg.type === "input-result") {
        if (this.#onInput === null || !checkInputResult(msg, this.#inputId)) {
          this.#dropped++;
          return;
        }
        try { this.#onInput({ outputs: msg.outputs, seq: msg.seq, ...(msg.result ? { result: msg.result } : {}) }); } catch { /* caller's bug */ }
        return;
      }
      const p = this.#pending.get(msg.id);
      if (!p) {
        this.#dropped++;
        return;
      }
      if (msg.type === "progress") {
        try { p.onProgress?.({ phase: msg.phase, loaded: msg.loaded, total: msg.total, message: msg.message }); } catch { /* caller's bug */ }
        return;
      }
      this.#pending.delete(msg.id);
      if (msg.type === "error") p.reject(new SecureContextError(String(msg.code), String(msg.message)));
      else p.resolve(msg);
    };
    addEventListener("message", this.#listener);
  }

  /** Waits for the sandbox's hello (or an answer to our ping). */
  #connect(timeoutMs) {
    return new Promise((resolve, reject) => {
      let timer = 0;
      let interval = 0;
      const done = (err) => {
        clearTimeout(timer);
        clearInterval(interval);
        this.#frame.removeEventListener("load", ping);
        this.#onHello = null;
        err ? reject(err) : resolve(undefined);
      };
      const ping = () => {
        try {
          this.#frame.contentWindow?.postMessage({ v: PROTOCOL_VERSION, type: "ping", id: 0 }, this.#origin);
        } catch { /* not navigated yet */ }
      };
      this.#onHello = () => done();
      this.#frame.addEventListener("load", ping);
      interval = setInterval(ping, 250);
      // A sandbox.js that fails the integrity check sandbox.html pins never runs: the browser
      // says so in the frame's console, and this side sees only the silence.
      timer = setTimeout(() => done(new SecureContextError("timeout", `the sandbox at ${this.#origin} did not answer (is sandbox.html served there and may this page frame it? did its script pass its integrity check? the frame's console says)`)), timeoutMs);
      ping();
    });
  }

  /**
   * The sandbox's direct line to its engine worker: runs skip the sandbox document (one hop each
   * way instead of two). It arrives in a message from the checked sandbox window and origin only;
   * replies on it are held to the same shape as the sandbox's.
   * @param {MessagePort | undefined} port
   */
  #usePort(port) {
    if (!(port instanceof MessagePort)) {
      this.#dropped++;
      return;
    }
    if (this.#closed) {
      port.close();
      return;
    }
    this.#port?.close();
    this.#port = port;
    port.onmessage = (event) => {
      const msg = event.data;
      if (!checkPortReply(msg)) {
        this.#dropped++;
        return;
      }
      // A run answered after it was cancelled or failed over: nobody waits for it.
      if (!this.#portRuns.has(msg.id)) return;
      const p = this.#pending.get(msg.id);
      this.#portRuns.delete(msg.id);
      this.#pending.delete(msg.id);
      if (!p) return;
      if (msg.type === "error") p.reject(new SecureContextError(String(msg.code), String(msg.message)));
      else if (!checkOutputs(msg.outputs)) {
        p.reject(new SecureContextError("internal", "malformed result from the engine"));
      } else p.resolve(msg);
    };
  }

  #requestOnPort(body) {
    if (this.#closed) return Promise.reject(new SecureContextError("closed", "the context was closed"));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#portRuns.set(id, body);
      try {
        this.#port.postMessage({ v: PROTOCOL_VERSION, id, ...body });
      } catch (e) {
        this.#pending.delete(id);
        this.#portRuns.delete(id);
        reject(new SecureContextError("invalid-argument", `cannot send to the engine: ${e?.message ?? e}`));
      }
    });
  }

  /**
   * Unanswered port runs: `running` fails with `code`; the others are sent again through the
   * sandbox (retry) or fail with `code` too. With closePort (the worker behind it stopped) the
   * port is dropped until the sandbox offers the next one.
   */
  #failPortRuns(running, code, message, retry, closePort) {
    if (closePort) {
      this.#port?.close();
      this.#port = null;
    }
    const runs = [...this.#portRuns];
    this.#portRuns.clear();
    for (const [id, body] of runs) {
      const p = this.#pending.get(id);
      if (!p) continue;
      this.#pending.delete(id);
      if (retry && id !== running) this.#request(body).then(p.resolve, p.reject);
      else p.reject(new SecureContextError(code, message));
    }
  }

  #request(body, onProgress) {
    if (this.#closed) return Promise.reject(new SecureContextError("closed", "the context was closed"));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress });
      try {
        this.#frame.contentWindow.postMessage({ v: PROTOCOL_VERSION, id, ...body }, this.#origin);
      } catch (e) {
        this.#pending.delete(id);
        reject(new SecureContextError("invalid-argument", `cannot send to the sandbox: ${e?.message ?? e}`));
      }
    });
  }
}

/** @returns {Isolation} */
export function pageIsolation() {
  return { crossOriginIsolated: globalThis.crossOriginIsolated === true, sharedArrayBuffer: typeof SharedArrayBuffer === "function" };
}
