// streamlit-secure-context launcher: a Streamlit Components v2 module. It runs in the
// Streamlit page (v2 components are not iframed), so it holds no secrets of its own: it
// checks the live environment against the caller's security_config, creates OUR iframe
// (sandbox.html on the serving origin, with the sandbox/allow attributes we choose), speaks
// the runtime's postMessage protocol v1 to it, and sends only the inference result back to
// Python with setStateValue("result", ...).
//
// Client-only mode: the draw pad and file picker are NOT here. They live in the sandbox
// document (input mode, static/sandbox-input.js), on the serving origin, which this page can
// neither script nor read; the user draws/picks inside that frame, the engine runs there, and
// this page receives only `input-result` messages carrying the outputs (none at all when
// return_result=False). The raw input never exists in this page.
//
// data (from Python): {base, sandboxUrl, model, mode: "data"|"client", inputs, request, have,
//   config: {coop, coep, csp, sandbox, requireHTTPS, requireIsolation}, expectedParent,
//   returnResult, labels, inputSpec, text, inputKind, inputRate, timeoutMs}
//   inputKind: what the user gives in the frame ("tensor" | "image" | "text" | "camera" | "audio" | "microphone",
//   protocol.js INPUT_KINDS), sent to the sandbox in init.input.kind (and inputRate, the camera's
//   results a second, in init.input.rate)
//
// This is the source; the package ships it bundled with the runtime's protocol module
// (static/protocol.js), which it imports like the runtime's own client does: scripts/build-python
// runs web/launcher.mjs, which writes streamlit_secure_context/launcher.js (not in git).

import { PROTOCOL_VERSION, checkInputResult, checkReply } from "../../static/protocol.js";

/** What the user is asked for in the frame, by input kind. */
const ASK = { tensor: "Draw or pick a file", image: "Pick an image", text: "Type or paste text", camera: "Start the camera", audio: "Pick a recording", microphone: "Start the microphone" };
/** The device each live input kind delegates to the sandbox frame (and to no other). */
const DEVICE = { camera: "camera", microphone: "microphone" };

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);
// Sessions survive React re-running this module for the same mount (same data, new object).
const sessions = new Map();

function isLocal(hostname) {
  return LOCAL_HOSTS.has(hostname) || hostname.endsWith(".localhost");
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (k in e) e[k] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

/** What the live environment fails to give, as sentences. */
function environmentProblems(d) {
  const problems = [];
  const base = new URL(d.base);
  if (d.config.requireHTTPS) {
    if (location.protocol !== "https:" && !isLocal(location.hostname)) {
      problems.push(`requireHTTPS: this Streamlit page is served over ${location.protocol.replace(":", "")} on ${location.hostname}, which is not a local host`);
    }
    if (base.protocol !== "https:" && !isLocal(base.hostname)) {
      problems.push(`requireHTTPS: the engine is served over ${base.protocol.replace(":", "")} from ${base.host}, which is not a local host`);
    }
  }
  if (!window.isSecureContext) problems.push("this page is not a secure context (https or localhost), so WebCrypto cannot verify the model");
  if (d.expectedParent && d.expectedParent !== location.origin) {
    problems.push(`the engine was set up to be framed by ${d.expectedParent}, but this page is ${location.origin}`);
  }
  if (base.origin === location.origin) {
    problems.push("the engine must be served from another origin than the Streamlit page (a same-origin frame with allow-scripts allow-same-origin can lift its own sandbox)");
  }
  return problems;
}

class Session {
  constructor(d, root) {
    this.d = d;
    this.root = root;
    this.pending = new Map();
    this.nextId = 1;
    this.ready = null;
    this.teardownTimer = 0;
    this.lastSent = null;
    this.busy = Promise.resolve();
    this.seq = 0;
    /** @type {string | null} */ this.frameKey = null;
    /** @type {(key: string, value: unknown) => void} */ this.setStateValue = () => {};
    this.origin = new URL(d.sandboxUrl).origin;
    this.ui = this.buildUi();
    for (const old of root.querySelectorAll?.(":scope > .sc-box") ?? []) old.remove();
    root.append(this.ui.box); // next to the <style> Streamlit put there
  }

  buildUi() {
    const state = el("span", { className: "sc-state", dataset: { role: "state" } }, "starting…");
    const info = el("div", { className: "sc-info", dataset: { role: "model" } });
    const pill = el("span", { className: "sc-pill", dataset: { role: "isolation", ok: "pending" } }, "checking isolation");
    const error = el("div", { className: "sc-error", role: "alert", hidden: true, dataset: { role: "error" } });
    const out = el("div", { className: "sc-out", dataset: { role: "result" } });
    const box = el("div", { className: "sc-box", dataset: { role: "secure-context", state: "starting" } },
      el("div", { className: "sc-head" }, el("strong", {}, "secure-context"), " ", pill, " ", state), info, error);
    if (this.d.mode === "client") {
      box.append(el("p", { className: "sc-note" },
        `${ASK[this.d.inputKind] ?? ASK.tensor} in the frame below. It is served by ${new URL(this.d.sandboxUrl).origin}, which this page cannot read: `
        + (this.d.returnResult ? "only the model's output comes back to the app." : "nothing comes back to the app.")));
    }
    box.append(out);
    return { box, state, info, pill, error, out };
  }

  setState(text, state) {
    this.ui.state.textContent = text;
    if (state) this.ui.box.dataset.state = state;
  }

  fail(message, code = "refused") {
    this.ui.error.hidden = false;
    this.ui.error.textContent = `secure-context refused to run: ${message}`;
    this.ui.box.dataset.state = "error";
    this.ui.box.dataset.error = code;
    this.setState("stopped", "error");
    for (const [, p] of this.pending) p.reject(new Error("stopped"));
    this.pending.clear();
    this.frame?.remove();
    this.frame = null;
  }

  // ------------------------------------------------------------ the frame and the protocol

  async start() {
    const problems = environmentProblems(this.d);
    if (problems.length) return this.fail(problems.join("; "), "environment");
    const frame = document.createElement("iframe");
    frame.setAttribute("sandbox", this.d.config.sandbox.join(" "));
    // The camera only for input="camera", the microphone only for input="microphone", and only to
    // this frame (the sandbox document's own Permissions-Policy is what lets it use a delegated
    // device; no other document of the origin may).
    const device = this.d.mode === "client" ? DEVICE[this.d.inputKind] : undefined;
    frame.setAttribute("allow", device ? `cross-origin-isolated; ${device}` : "cross-origin-isolated");
    frame.setAttribute("referrerpolicy", "no-referrer");
    if (this.d.mode === "client") {
      // The user's input happens in this frame: visible and focusable.
      frame.title = `secure-context input: ${(ASK[this.d.inputKind] ?? ASK.tensor).toLowerCase()} (stays in this frame)`;
      frame.className = `sc-frame sc-frame-input${this.d.inputKind === "text" ? " sc-frame-text" : this.d.inputKind === "image" || this.d.inputKind === "camera" ? " sc-frame-image" : ""}`;
    } else {
      frame.setAttribute("aria-hidden", "true");
      frame.tabIndex = -1;
      frame.title = "secure-context engine";
      frame.className = "sc-frame";
    }
    const src = new URL(this.d.sandboxUrl);
    src.searchParams.set("parents", location.origin);
    frame.src = src.href;
    this.frame = frame;
    this.listener = (ev) => this.onMessage(ev);
    addEventListener("message", this.listener);
    this.ui.box.append(frame);
    try {
      this.setState("connecting to the sandbox…", "connecting");
      await this.connect(20000);
      const client = this.d.mode === "client";
      this.inputId = client ? this.nextId : null; // the id request() gives this init
      this.ready = await this.request({
        type: "init", model: this.d.model, requireIsolation: !!this.d.config.requireIsolation,
        ...(this.d.timeoutMs ? { timeoutMs: this.d.timeoutMs } : {}),
        ...(client ? { input: { report: this.d.returnResult === true, ...(this.d.inputKind ? { kind: this.d.inputKind } : {}), ...(this.d.inputRate ? { rate: this.d.inputRate } : {}) } } : {}),
      }, (p) => this.progress(p));
    } catch (e) {
      return this.fail(e.message, e.code ?? "init");
    }
    const iso = this.ready.isolation;
    const isolated = iso?.mode === "isolated";
    this.ui.pill.dataset.ok = isolated ? "yes" : "no";
    this.ui.pill.textContent = isolated ? "isolated" : "single-threaded";
    this.ui.pill.title = iso?.note ?? "";
    if (this.d.config.requireIsolation && !(iso?.sandbox?.crossOriginIsolated && iso?.worker?.crossOriginIsolated)) {
      return this.fail("coop/coep were asked for, but the engine is not cross-origin isolated in this browser", "not-isolated");
    }
    const m = this.ready.model;
    this.ui.box.dataset.sha256 = m.sha256;
    this.ui.info.textContent = `model ${m.name} · sha256 ${m.sha256.slice(0, 12)}…${m.sha256.slice(-6)} verified (${m.source}) · engine ${this.ready.engine?.version ?? "?"} · served from ${this.origin}`;
    this.setState("ready", "ready");
    if (this.d.mode === "data") this.runData(this.d);
  }

  progress(p) {
    const text = {
      manifest: "reading the model manifest…",
      download: p.total ? `downloading the model… ${Math.round((100 * (p.loaded ?? 0)) / p.total)}%` : "downloading the model…",
      verify: "verifying the model's SHA-256…",
      cache: "model cached; re-verifying…",
      engine: "starting the engine worker…",
      graph: "loading the graph…",
    }[p.phase];
    if (text) this.setState(text, "loading");
  }

  onMessage(event) {
    if (!this.frame || event.source !== this.frame.contentWindow || event.origin !== this.origin) return;
    const msg = event.data;
    if (!checkReply(msg)) return;
    if (msg.type === "hello" || msg.type === "pong") {
      this.onHello?.();
      return;
    }
    if (msg.type === "input-result") {
      this.onInputResult(msg);
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.type === "progress") {
      try { p.onProgress?.(msg); } catch { /* display only */ }
      return;
    }
    this.pending.delete(msg.id);
    if (msg.type === "error") {
      p.reject(Object.assign(new Error(`${msg.message} (${msg.code})`), { code: msg.code }));
    } else {
      p.resolve(msg);
    }
  }

  connect(timeoutMs) {
    return new Promise(/** @param {(v?: unknown) => void} resolve */ (resolve, reject) => {
      const ping = () => {
        try { this.frame?.contentWindow?.postMessage({ v: PROTOCOL_VERSION, type: "ping", id: 0 }, this.origin); } catch { /* not there yet */ }
      };
      const done = (err) => {
        clearInterval(interval);
        clearTimeout(timer);
        this.onHello = null;
        err ? reject(err) : resolve();
      };
      this.onHello = () => done();
      const interval = setInterval(ping, 250);
      const timer = setTimeout(() => {
        done(Object.assign(new Error(`the sandbox at ${this.origin} did not answer; is it serving sandbox.html, does its frame-ancestors list ${location.origin}, and did its script pass its integrity check (the frame's console says)?`), { code: "timeout" }));
      }, timeoutMs);
      this.frame.addEventListener("load", ping);
    });
  }

  request(body, onProgress) {
    if (!this.frame) return Promise.reject(new Error("stopped"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.frame.contentWindow.postMessage({ v: PROTOCOL_VERSION, id, ...body }, this.origin);
    });
  }

  async run(inputs) {
    const msg = {};
    for (const [name, t] of Object.entries(inputs)) msg[name] = { data: Float32Array.from(t.data), shape: t.shape.slice() };
    const t0 = performance.now();
    const r = await this.request({ type: "run", inputs: msg });
    const outputs = {};
    for (const [name, o] of Object.entries(r.outputs)) outputs[name] = { data: Array.from(o.data), shape: o.shape };
    return { outputs, timings: { ...r.timings, roundTripMs: performance.now() - t0 } };
  }

  report(d, r, source) {
    const m = this.ready.model;
    const iso = this.ready.isolation;
    const value = {
      request: d.request,
      source,
      outputs: r.outputs,
      model: { name: m.name, file: m.file, sha256: m.sha256, integrity: m.integrity, verified: m.verified === true, source: m.source },
      engine: this.ready.engine?.version ?? null,
      isolation: { mode: iso?.mode, sandbox: iso?.sandbox?.crossOriginIsolated === true, worker: iso?.worker?.crossOriginIsolated === true, page: window.crossOriginIsolated === true },
      timings: r.timings,
    };
    if (r.result) value.result = r.result;
    this.showResult(r.outputs, r.result);
    if (d.returnResult) {
      this.lastSent = d.request + (source === "browser" ? `#${++this.seq}` : "");
      value.seq = this.seq ?? 0;
      this.setStateValue("result", value);
    }
    this.ui.box.dataset.runs = String(Number(this.ui.box.dataset.runs ?? 0) + 1);
  }

  showResult(outputs, result) {
    if (result?.kind === "mask") {
      const on = result.mask.reduce((a, b) => a + (b ? 1 : 0), 0);
      this.ui.out.textContent = `mask ${result.width}×${result.height}: ${((100 * on) / result.mask.length).toFixed(1)}% foreground`;
      return;
    }
    if (result?.kind === "classes") {
      this.ui.out.textContent = result.classes[0].map((c) => `${c.label} ${(c.score * 100).toFixed(1)}%`).join(", ");
      return;
    }
    if (result?.kind === "boxes") {
      this.ui.out.textContent = `${result.boxes.length} box${result.boxes.length === 1 ? "" : "es"}`;
      return;
    }
    if (result?.kind === "scores") {
      const on = result.scores.filter((s) => s >= result.threshold).length;
      this.ui.out.textContent = `${on} of ${result.scores.length} windows at or above ${result.threshold}`;
      return;
    }
    const [name, o] = Object.entries(outputs)[0] ?? [];
    if (!o) return;
    const labels = this.d.labels;
    let text;
    if (labels && labels.length === o.data.length) {
      let best = 0;
      for (let i = 1; i < o.data.length; i++) if (o.data[i] > o.data[best]) best = i;
      text = `${name}: ${labels[best]} (${(o.data[best] * 100).toFixed(1)}%)`;
    } else {
      text = `${name}: [${o.shape.join(", ")}] ${o.data.slice(0, 8).map((v) => v.toPrecision(4)).join(", ")}${o.data.length > 8 ? ", …" : ""}`;
    }
    this.ui.out.textContent = text;
  }

  runData(d) {
    this.d = d;
    if (d.request === d.have || d.request === this.lastSent) return; // Python already has it
    this.lastSent = d.request;
    this.busy = this.busy.then(async () => {
      try {
        this.setState("running…", "running");
        const r = await this.run(d.inputs);
        this.report(d, r, "python");
        this.setState(`done · ${r.timings.computeMs?.toFixed?.(2) ?? "?"} ms in the worker`, "done");
      } catch (e) {
        this.lastSent = null;
        this.fail(e.message, e.code ?? "run");
      }
    });
  }

  // ------------------------------------------------------------ client-only input

  /** A result of the user's input, computed in the sandbox: outputs only, checked. */
  onInputResult(msg) {
    // The schema: outputs only, for our init, nothing else may ride along.
    if (this.d.mode !== "client" || !this.ready || !checkInputResult(msg, this.inputId)) return;
    const outputs = {};
    for (const [name, o] of Object.entries(msg.outputs)) outputs[name] = { data: Array.from(o.data), shape: o.shape.slice() };
    // The postprocess result (checked by checkInputResult), as plain JSON for Python.
    const result = msg.result ? { ...msg.result, ...(msg.result.mask ? { mask: Array.from(msg.result.mask) } : {}) } : null;
    this.report(this.d, { outputs, timings: {}, result }, "browser");
    this.setState("done · the result you sent from the frame", "done");
  }

  // ------------------------------------------------------------ lifetime

  close() {
    if (this.listener) removeEventListener("message", this.listener);
    this.frame?.remove();
    this.frame = null;
    this.ui.box.remove();
    for (const [, p] of this.pending) p.reject(new Error("closed"));
    this.pending.clear();
  }
}

export default function (component) {
  const { data: d, parentElement, key, setStateValue } = component;
  const id = `${component.name}:${key}`;
  let s = sessions.get(id);
  const frameKey = JSON.stringify([d.sandboxUrl, d.model, d.config, d.mode, d.expectedParent, d.inputSpec, d.inputKind, d.inputRate]);
  if (s && s.frameKey === frameKey && s.root === parentElement && s.ui.box.isConnected) {
    clearTimeout(s.teardownTimer);
    s.setStateValue = setStateValue;
    if (d.mode === "data" && s.ready && s.frame) s.runData(d);
    else s.d = d;
  } else {
    s?.close();
    const root = parentElement;
    s = new Session(d, root);
    s.frameKey = frameKey;
    s.setStateValue = setStateValue;
    s.seq = 0;
    sessions.set(id, s);
    s.start();
  }
  const mine = s;
  return () => {
    mine.teardownTimer = setTimeout(() => {
      if (sessions.get(id) === mine) sessions.delete(id);
      mine.close();
    }, 1000);
  };
}
