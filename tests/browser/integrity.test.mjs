// The integrity chain rooted in sandbox.html (web/pins.mjs), tampered with one file at a time:
// the test server (serve.mjs) serves a changed copy of the file, as a compromised origin or
// cache would, and every other file as built. Each change must be refused with a clear error
// before anything it carries runs or is read, and what depends on it must never be fetched:
//   sandbox.js, sandbox.css        pinned by sandbox.html (<script|link integrity>): the browser
//   worker.js                      pinned in sandbox.js: fetched with SRI, started from a blob:
//   models/manifest.json           pinned in sandbox.js
//   engine*/, text/ core wasm      pinned in sandbox.js, checked by the worker's fetch (the
//                                  threaded build's pool workers get the module compiled from
//                                  the checked bytes and run code carried inside worker.js)
//   a model, a tokenizer.json      pinned in the (pinned) manifest
// Every engine build (the threaded one, the relaxed and simd128 components) and the tokenizer included. Run: node --test tests/browser/integrity.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { startServer, CHROMIUM, CHROMIUM_ARGS } from "./serve.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const WEB = path.join(ROOT, "build", "web");
const { chromium } = createRequire(path.join(ROOT, "web", "package.json"))("playwright-core");

const ASSETS = JSON.parse(fs.readFileSync(path.join(WEB, "asset-manifest.json"), "utf8"));
const MODELS = JSON.parse(fs.readFileSync(path.join(WEB, "models", "manifest.json"), "utf8")).models;
const read = (rel) => fs.readFileSync(path.join(WEB, rel));
const sha256 = (b) => createHash("sha256").update(b).digest("hex");
/** The built file of a component's core module by jco's name, e.g. ("engine", "inference.core.wasm"). */
const core = (dir, name) => {
  const re = new RegExp(`^${dir}/${name.replace(/\.wasm$/, "").replace(/\./g, "\\.")}\\.[0-9a-f]{8}\\.wasm$`);
  const hits = Object.keys(ASSETS).filter((k) => re.test(k));
  assert.equal(hits.length, 1, `${dir}/${name}: ${hits}`);
  return hits[0];
};
/** One bit flipped in the middle: what a corrupted or swapped file looks like to a hash. */
const flip = (b) => {
  const c = Buffer.from(b);
  c[c.length >> 1] ^= 1;
  return c;
};
/** Code that would run first if the file were accepted. */
const inject = (b) => Buffer.concat([Buffer.from("globalThis.__tampered = true;\n"), b]);

let browser;
before(async () => {
  assert.ok(fs.existsSync(path.join(WEB, "asset-manifest.json")), "build/web is missing: run scripts/build-web");
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});
after(async () => {
  await browser?.close();
});

/**
 * Opens `model` in a sandbox served with `overrides` and reports what happened: the client's
 * result, progress, the sandbox's console, the workers that ran, every path the server served.
 */
async function attempt({ overrides, model = "digits", repin = false, connectTimeoutMs = 8000 }) {
  const server = await startServer({ root: WEB, overrides, repin });
  const context = await browser.newContext();
  const page = await context.newPage();
  const consoleText = [];
  page.on("console", (m) => consoleText.push(m.text()));
  const workers = [];
  page.on("worker", (w) => workers.push(w.url()));
  try {
    await page.goto(`${server.origin}/__test/blank.html`);
    const r = await page.evaluate(async ({ model, connectTimeoutMs }) => {
      const { SecureContext } = await import("/secure-context.js");
      const frame = document.createElement("iframe");
      frame.setAttribute("sandbox", "allow-scripts allow-same-origin");
      frame.setAttribute("allow", "cross-origin-isolated");
      frame.src = "/sandbox.html";
      document.body.append(frame);
      const progress = [];
      try {
        const ctx = await SecureContext.open({ frame, model, connectTimeoutMs, onProgress: (p) => progress.push(p.phase) });
        const engine = ctx.info.engine;
        ctx.close();
        return { ok: true, engine, progress };
      } catch (e) {
        return { ok: false, code: e.code, message: e.message, progress };
      }
    }, { model, connectTimeoutMs });
    const sandbox = page.frames().find((f) => new URL(f.url()).pathname === "/sandbox.html");
    r.state = await sandbox?.evaluate(() => document.documentElement.dataset.state ?? null).catch(() => null);
    r.tampered = await sandbox?.evaluate(() => globalThis.__tampered === true).catch(() => null);
    r.workers = workers;
    r.console = consoleText;
    r.served = server.requests.map((q) => new URL(q.url, "http://x").pathname.slice(1));
    // CSP reports (every CSP sends them to the server) arrive on their own time.
    await new Promise((res) => setTimeout(res, 500));
    r.cspReports = [...server.cspReports];
    return r;
  } finally {
    await context.close();
    await server.close();
  }
}

/** What every refusal must show: an integrity error naming the file; the sandbox in `error`. */
function refused(t, r, names) {
  t.diagnostic(`${r.code}: ${r.message}`);
  assert.equal(r.ok, false, "the sandbox accepted it");
  assert.equal(r.code, "integrity", r.message);
  assert.ok(r.message.includes(names), `the error names ${names}: ${r.message}`);
  assert.match(r.message, /Refusing|refus/i);
  assert.equal(r.state, "error");
  assert.notEqual(r.tampered, true, "injected code ran in the sandbox");
}

test("untampered: the chain holds and the engine runs (the control)", async () => {
  const r = await attempt({ overrides: {} });
  assert.equal(r.ok, true, `${r.code}: ${r.message}`);
  assert.equal(r.engine.build, "relaxed-simd-threads");
  assert.ok(r.workers.length >= 1);
  // The engine worker, and the threaded build's pool workers it starts: blob: URLs of verified bytes.
  for (const w of r.workers) assert.match(w, /^blob:/, "every worker runs from a blob: URL of the verified bytes");
  assert.deepEqual(r.cspReports, [], "no CSP violation on the way (worker-src blob:, Trusted Types, wasm)");
  for (const p of ["sandbox.js", "sandbox.css", "worker.js", "models/manifest.json", "models/digits.onnx"]) assert.ok(r.served.includes(p), `${p} was fetched`);
  assert.ok(r.served.some((p) => /^engine-threads\/inference-threads\.[0-9a-f]{8}\.wasm$/.test(p)), "the threaded engine's core wasm was fetched");
  assert.ok(!r.served.some((p) => /^engine\//.test(p)), "the component's core wasm was not fetched");
  // Nothing else was: the pool workers run code inside worker.js and fetch nothing.
  const scripts = r.served.filter((p) => p.endsWith(".js"));
  assert.ok(scripts.every((p) => ["secure-context.js", "sandbox.js", "worker.js"].includes(p)), `scripts fetched: ${scripts}`);
  const html = read("sandbox.html").toString();
  assert.match(html, /<script type="module" src="sandbox\.js" integrity="sha256-[A-Za-z0-9+/]{43}="><\/script>/);
  assert.match(html, /<link rel="stylesheet" href="sandbox\.css" integrity="sha256-[A-Za-z0-9+/]{43}=">/);
});

test("sandbox.js changed: the browser refuses it (sandbox.html's integrity); nothing loads", async (t) => {
  const r = await attempt({ overrides: { "/sandbox.js": inject(read("sandbox.js")) }, connectTimeoutMs: 4000 });
  t.diagnostic(`${r.code}: ${r.message}`);
  assert.equal(r.ok, false);
  assert.equal(r.code, "timeout", "no script of the sandbox ran, so nothing answered");
  assert.match(r.message, /integrity check/);
  assert.ok(r.console.some((c) => /integrity/i.test(c) && /sandbox\.js/.test(c)), `the browser says why: ${r.console.join(" | ")}`);
  assert.notEqual(r.tampered, true);
  assert.deepEqual(r.workers, []);
  for (const p of ["worker.js", "models/manifest.json", "models/digits.onnx"]) assert.ok(!r.served.includes(p), `${p} was fetched`);
});

test("sandbox.css changed: the browser drops it and the sandbox refuses to load anything", async (t) => {
  const r = await attempt({ overrides: { "/sandbox.css": Buffer.concat([read("sandbox.css"), Buffer.from("\n.in-note{display:none}\n")]) } });
  refused(t, r, "sandbox.css");
  assert.deepEqual(r.workers, []);
  for (const p of ["worker.js", "models/manifest.json", "models/digits.onnx"]) assert.ok(!r.served.includes(p), `${p} was fetched`);
});

test("worker.js changed: refused before any worker starts; no engine file is fetched", async (t) => {
  const r = await attempt({ overrides: { "/worker.js": inject(read("worker.js")) } });
  refused(t, r, "worker.js");
  assert.match(r.message, new RegExp(`the server sent bytes with sha256 ${sha256(inject(read("worker.js")))}`));
  assert.deepEqual(r.workers, [], "a worker started");
  assert.ok(!r.served.some((p) => p.endsWith(".wasm")), "engine files were fetched");
  assert.ok(!r.progress.includes("graph"), "a graph was loaded");
});

test("the model manifest changed (pointing at another model): refused; no model is fetched", async (t) => {
  const manifest = JSON.parse(read("models/manifest.json"));
  const other = flip(read("models/digits.onnx"));
  const d = createHash("sha256").update(other).digest();
  Object.assign(manifest.models.find((m) => m.name === "digits"), { sha256: d.toString("hex"), integrity: `sha256-${d.toString("base64")}` });
  const r = await attempt({ overrides: { "/models/manifest.json": Buffer.from(JSON.stringify(manifest)), "/models/digits.onnx": other } });
  refused(t, r, "models/manifest.json");
  assert.ok(!r.served.includes("models/digits.onnx"), "the model was fetched");
  assert.ok(!r.progress.includes("graph"));
});

test("engine-threads core wasm changed: refused by the worker's fetch; no pool worker starts", async (t) => {
  const file = core("engine-threads", "inference-threads.wasm");
  const r = await attempt({ overrides: { [`/${file}`]: flip(read(file)) } });
  refused(t, r, "inference-threads.wasm");
  assert.ok(r.message.includes("the engine (engine-threads)"), r.message);
  assert.ok(!r.progress.includes("ready"));
  assert.ok(r.workers.every((w) => !/pool/.test(w)), `pool workers ran: ${r.workers}`);
});

/**
 * Overrides serving a worker.js changed as `edit` says, the site re-pinned for it as a build
 * would pin it (so the sandbox accepts it): how a test gets a worker that picks another build.
 */
async function repinnedWorker(edit) {
  const { repin } = await import("../../web/pins.mjs");
  const pinned = repin(ASSETS, read, { "worker.js": Buffer.from(edit(read("worker.js").toString())) });
  return Object.fromEntries(Object.entries(pinned).map(([k, v]) => [`/${k}`, v]));
}
/** A worker that sees one core: the threaded build is not usable, the relaxed component runs. */
const withoutThreads = (w) => {
  assert.equal(w.split("hardwareConcurrency").length, 2);
  return w.replace("hardwareConcurrency", "noHardwareConcurrency");
};

for (const [dir, name] of [["engine", "inference.core.wasm"], ["engine", "inference.core2.wasm"], ["engine", "inference.core3.wasm"]]) {
  test(`${dir}/${name} changed: refused by the worker's fetch where the relaxed component runs; the engine is never instantiated`, async (t) => {
    const overrides = await repinnedWorker(withoutThreads);
    const file = core(dir, name);
    const r = await attempt({ overrides: { ...overrides, [`/${file}`]: flip(read(file)) } });
    refused(t, r, name);
    assert.ok(r.message.includes(`the engine (${dir})`), r.message);
    assert.ok(!r.progress.includes("ready"));
  });
}

test("engine-baseline core wasm changed: refused where the simd128 build runs", async (t) => {
  // A browser without relaxed SIMD, as runtime.test.mjs makes one: a worker.js whose probe says
  // no, re-pinned as a build would pin it (so it is accepted), and a changed baseline engine.
  const file = core("engine-baseline", "inference.core.wasm");
  const bad = flip(read(file));
  const overrides = await repinnedWorker((w) => {
    assert.equal(w.split("WebAssembly.validate(").length, 2);
    return w.replace("WebAssembly.validate(", "(()=>!1)(");
  });
  const control = await attempt({ overrides });
  assert.equal(control.ok, true, `${control.code}: ${control.message}`);
  assert.equal(control.engine.build, "simd128", "the re-pinned worker runs the baseline build");
  const r = await attempt({ overrides: { ...overrides, [`/${file}`]: bad } });
  refused(t, r, "inference.core.wasm");
  assert.ok(r.message.includes("the engine (engine-baseline)"), r.message);
});

const pii = MODELS.find((m) => m.name === "pii" && m.tokenizer);
test("the tokenizer's core wasm changed: a text model is refused before its tokenizer runs", { skip: !pii && "no text model in the manifest" }, async (t) => {
  const file = core("text", "tokenizer.core.wasm");
  const r = await attempt({ overrides: { [`/${file}`]: flip(read(file)) }, model: "pii" });
  refused(t, r, "tokenizer.core.wasm");
  assert.ok(r.message.includes("the tokenizer"), r.message);
});

test("a tokenizer.json changed: refused by the manifest's pin; never handed to the worker", { skip: !pii && "no text model in the manifest" }, async (t) => {
  const rel = `models/${pii.tokenizer.file}`;
  const r = await attempt({ overrides: { [`/${rel}`]: flip(read(rel)) }, model: "pii" });
  refused(t, r, "tokenizer");
  assert.ok(!r.progress.includes("graph"));
});

test("a model changed: refused by the manifest's pin; never handed to the worker", async (t) => {
  const r = await attempt({ overrides: { "/models/digits.onnx": flip(read("models/digits.onnx")) } });
  refused(t, r, "digits");
  assert.ok(!r.progress.includes("graph"));
});
