// Helpers for the edge app and API tests: start the app of spin.toml on 127.0.0.1 (a free
// port) — with `secure-context serve --manifest spin.toml` as scripts/up does, or with real
// `spin up` when SC_RUNNER=spin (scripts/test-spin; SPIN_VERSION picks the build in
// ../shared/tools) — and speak raw HTTP/1.1 to it (node's http client would normalize or
// refuse the hostile requests we want to send).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const BIN = process.env.SC_BIN ?? path.join(ROOT, "target/release/secure-context");
export const COMPONENT = path.join(ROOT, "target/wasm32-wasip2/wasm/edge.wasm");
export const WEB = path.join(ROOT, "build/web");
export const EDGE = path.join(ROOT, "build/edge");

export function manifest() {
  return JSON.parse(fs.readFileSync(path.join(WEB, "asset-manifest.json"), "utf8"));
}

export const SPIN_TOML = path.join(ROOT, "spin.toml");

/** Which server runs spin.toml: "local" (secure-context serve) or "spin" (the real Spin CLI). */
export const RUNNER = process.env.SC_RUNNER ?? "local";
if (!["local", "spin"].includes(RUNNER)) throw new Error(`SC_RUNNER=${RUNNER}: use local or spin`);
export const SPIN = process.env.SC_SPIN ?? path.join(ROOT, "..", "shared", "tools", "spin");

/** The argument list scripts/up uses (minus --addr), so tests run what users run. */
export function serveArgs(env = {}, extra = []) {
  const args = ["serve", "--manifest", SPIN_TOML, ...extra];
  for (const [k, v] of Object.entries(env)) args.push("--env", `${k}=${v}`);
  return args;
}

/**
 * Starts the app (every route of spin.toml); resolves to { origin, port, pid, stop, stderr() }.
 * @param {Record<string,string>} env  settings for every component (--env)
 * @param {string[]} extra  more arguments for `secure-context` (e.g. ["--timeout-ms", "200"])
 */
export function startEdge(env = {}, extra = []) {
  if (RUNNER === "spin") {
    if (extra.length) throw new Error(`spin up has no equivalent of: ${extra.join(" ")}`);
    return startSpin(env);
  }
  return startServer(serveArgs(env, extra));
}

/**
 * `spin up` of spin.toml (files mounted directly, component logs in a temp dir, not .spin/ in the
 * checkout), settings given with `-e` as
 * `--env` gives them to the local runner.
 * @param {Record<string,string>} env
 */
export async function startSpin(env = {}) {
  const port = await freePort();
  const logs = fs.mkdtempSync(path.join(os.tmpdir(), "sc-spin-logs-"));
  const args = ["up", "-f", SPIN_TOML, "--listen", `127.0.0.1:${port}`, "--direct-mounts", "--log-dir", logs];
  for (const [k, v] of Object.entries(env)) args.push("-e", `${k}=${v}`);
  // The first start of a Spin build compiles both components (the API embeds the engine) before
  // wasmtime's cache has them: minutes on a busy 2-core machine.
  return spawnUntil(SPIN, args, port, /Serving http:\/\//, "spin up", 900_000);
}

/**
 * Runs `secure-context ARGS --addr 127.0.0.1:<free port>` until it says it is serving.
 * @param {string[]} args
 */
export async function startServer(args) {
  const port = await freePort();
  return spawnUntil(BIN, [...args, "--addr", `127.0.0.1:${port}`], port, /Serving HTTP on/, "secure-context serve");
}

/** Runs `bin args` until its output matches `ready`; the server then listens on `port`. */
async function spawnUntil(bin, args, port, ready, what, startMs = 120_000) {
  const child = spawn(bin, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr.on("data", (d) => { err += d; });
  child.stdout.on("data", (d) => { err += d; });
  const deadline = Date.now() + startMs;
  while (!ready.test(err)) {
    if (child.exitCode !== null) throw new Error(`${what} exited: ${err}`);
    if (Date.now() > deadline) { child.kill(); throw new Error(`${what} did not start: ${err}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid,
    stderr: () => err,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGINT");
    }),
  };
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = /** @type {net.AddressInfo} */ (s.address());
      s.close(() => resolve(port));
    });
  });
}

/**
 * Sends raw bytes, reads until the server closes (or timeout), parses one response.
 * @returns {Promise<{status:number, headers:Record<string,string[]>, body:Buffer, raw:Buffer}>}
 */
export function rawRequest(port, bytes, { timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    const chunks = [];
    const timer = setTimeout(() => { sock.destroy(); finish(); }, timeoutMs);
    let done = false;
    function finish() {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const raw = Buffer.concat(chunks);
      try { resolve(parseResponse(raw)); } catch (e) { reject(e); }
    }
    sock.on("data", (d) => {
      chunks.push(d);
      if (complete(Buffer.concat(chunks))) { sock.destroy(); finish(); }
    });
    sock.on("end", finish);
    sock.on("close", finish);
    sock.on("error", () => finish());
    sock.write(bytes);
  });
}

/** A whole response is in `raw` (keep-alive: the server does not close). */
function complete(raw) {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) return false;
  const head = raw.subarray(0, end).toString("latin1");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]);
  if (status === 304 || status === 204 || (status >= 100 && status < 200)) return true;
  const body = raw.length - end - 4;
  const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (cl) return body >= Number(cl[1]);
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) return raw.subarray(raw.length - 5).toString("latin1") === "0\r\n\r\n";
  return false;
}

export function parseResponse(raw) {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) return { status: 0, headers: {}, body: Buffer.alloc(0), raw };
  const head = raw.subarray(0, end).toString("latin1").split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
  const headers = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(":");
    const k = line.slice(0, i).trim().toLowerCase();
    (headers[k] ??= []).push(line.slice(i + 1).trim());
  }
  let body = raw.subarray(end + 4);
  if ((headers["transfer-encoding"] ?? [])[0] === "chunked") body = dechunk(body);
  return { status: m ? Number(m[1]) : 0, headers, body, raw };
}

function dechunk(buf) {
  const out = [];
  let i = 0;
  while (i < buf.length) {
    const eol = buf.indexOf("\r\n", i);
    if (eol < 0) break;
    const n = parseInt(buf.subarray(i, eol).toString("latin1"), 16);
    if (!n) break;
    out.push(buf.subarray(eol + 2, eol + 2 + n));
    i = eol + 2 + n + 2;
  }
  return Buffer.concat(out);
}

/** A well-formed request; `target` is sent byte for byte. */
export function req(port, method, target, headers = {}) {
  const h = { Host: `127.0.0.1:${port}`, Connection: "close", ...headers };
  const lines = [`${method} ${target} HTTP/1.1`, ...Object.entries(h).filter(([, v]) => v !== null).map(([k, v]) => `${k}: ${v}`)];
  // Well-formed: the server answers it, so a long timeout only matters on a loaded machine.
  return rawRequest(port, Buffer.from(lines.join("\r\n") + "\r\n\r\n", "latin1"), { timeoutMs: 60_000 });
}

export const first = (r, name) => (r.headers[name] ?? [])[0];

const REQUIRED_CSP = [
  "default-src 'none'", "base-uri 'none'", "form-action 'none'", "object-src 'none'",
  "require-trusted-types-for 'script'",
];
/** Every document's and the worker's CSP (script-src and worker-src per kind, below). */
export const DOCUMENT_CSP = [
  "connect-src 'self'", "style-src 'self'",
  "img-src 'self'", "frame-src 'self'", "trusted-types secure-context",
];

/** Documents compile no wasm; only a worker and the sandbox document, whose engine worker (a
 * blob: URL of the SRI-verified worker.js) runs under its CSP, may. */
export const DOCUMENT_SCRIPT_SRC = "script-src 'self';";
export const WORKER_SCRIPT_SRC = "script-src 'self' 'wasm-unsafe-eval';";
export const SANDBOX_SCRIPT_SRC = WORKER_SCRIPT_SRC;
/** Workers start from this origin's URLs, except in the sandbox: from blob: URLs only. */
export const DOCUMENT_WORKER_SRC = "worker-src 'self'";
export const SANDBOX_WORKER_SRC = "worker-src blob:";

/** The header policy every response must carry. */
export function assertPolicy(r, what) {
  const h = (n) => first(r, n);
  assert.equal(h("cross-origin-opener-policy"), "same-origin", `${what}: COOP`);
  assert.equal(h("cross-origin-embedder-policy"), "require-corp", `${what}: COEP`);
  assert.equal(h("cross-origin-resource-policy"), "same-origin", `${what}: CORP`);
  assert.equal(h("referrer-policy"), "no-referrer", `${what}: Referrer-Policy`);
  assert.equal(h("x-content-type-options"), "nosniff", `${what}: nosniff`);
  assert.equal(h("x-permitted-cross-domain-policies"), "none", `${what}: XPCDP`);
  assert.match(h("strict-transport-security") ?? "", /^max-age=(\d+)/, `${what}: HSTS`);
  assert.ok(Number(/max-age=(\d+)/.exec(h("strict-transport-security"))[1]) >= 31536000, `${what}: HSTS 1 year`);
  const pp = h("permissions-policy") ?? "";
  // The sandbox document (the one kind with Document-Isolation-Policy) alone may use the camera
  // and the microphone, where its embedder delegates them (the camera and microphone input
  // modes); every other response: camera=(), microphone=().
  const sandbox = Boolean(h("document-isolation-policy"));
  const camera = sandbox ? "camera=(self)" : "camera=()";
  const microphone = sandbox ? "microphone=(self)" : "microphone=()";
  assert.ok(!pp.includes(sandbox ? "camera=()" : "camera=(self)"), `${what}: Permissions-Policy camera`);
  assert.ok(!pp.includes(sandbox ? "microphone=()" : "microphone=(self)"), `${what}: Permissions-Policy microphone`);
  for (const f of [camera, microphone, "geolocation=()", "accelerometer=()", "gyroscope=()", "magnetometer=()", "usb=()", "payment=()", "cross-origin-isolated=(self)"]) {
    assert.ok(pp.includes(f), `${what}: Permissions-Policy ${f}`);
  }
  const csp = h("content-security-policy") ?? "";
  assert.equal((r.headers["content-security-policy"] ?? []).length, 1, `${what}: one CSP`);
  for (const d of REQUIRED_CSP) assert.ok(csp.includes(d), `${what}: CSP ${d} in ${csp}`);
  assert.match(csp, /frame-ancestors /, `${what}: frame-ancestors`);
  // blob: only as the sandbox's whole worker-src (its verified engine worker), nowhere else.
  const rest = csp.replace(/(^|; )worker-src blob:(?=;|$)/, "$1");
  assert.doesNotMatch(rest, /'unsafe-inline'|'unsafe-eval'|'unsafe-hashes'|\s\*|data:|blob:|https?:(\s|;|$)/, `${what}: nothing unsafe`);
  assert.ok(h("cache-control"), `${what}: Cache-Control`);
  assert.equal(r.headers["server"], undefined, `${what}: no Server`);
}
