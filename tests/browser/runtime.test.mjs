// Browser runtime tests: build/web/ (scripts/build-web) in real headless Chromium, served by
// the test-only server in serve.mjs. Run: node --test tests/browser/  (scripts/test-browser)
//
// Chromium: /usr/bin/chromium (Debian's package), driven by playwright-core from web/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startServer, CHROMIUM, CHROMIUM_ARGS } from "./serve.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const WEB = path.join(ROOT, "build", "web");
const ARTIFACTS = path.join(ROOT, "tests", "artifacts");
const require = createRequire(path.join(ROOT, "web", "package.json"));
const { chromium } = require("playwright-core");

const N_DIGITS = Number(process.env.BROWSER_DIGITS ?? 450); // the whole held-out set
const MIN_ACCURACY = 0.97;

// ------------------------------------------------------------------ helpers

/** Minimal .npy reader: little-endian f4/f8/i4/i8/u1, C order. */
function readNpy(file) {
  const buf = fs.readFileSync(file);
  assert.equal(buf.subarray(0, 6).toString("latin1"), "\x93NUMPY", `${file}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLen;
  const header = buf.subarray(major === 1 ? 10 : 12, start).toString("latin1");
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  assert.match(header, /'fortran_order':\s*False/);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  const body = buf.subarray(start);
  const copy = (T, bytes) => new T(new Uint8Array(body.subarray(0, shape.reduce((a, b) => a * b, 1) * bytes)).buffer);
  const types = { "<f4": [Float32Array, 4], "<f8": [Float64Array, 8], "<i4": [Int32Array, 4], "<i8": [BigInt64Array, 8], "|u1": [Uint8Array, 1] };
  assert.ok(types[descr], `${file}: unsupported dtype ${descr}`);
  let data = copy(...types[descr]);
  if (data instanceof BigInt64Array) data = Array.from(data, Number);
  return { shape, data };
}

const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");

let browser;
let A; // the origin under test: isolated, frameable by B's origin
let B; // another origin: a foreign embedder / attacker, no COOP/COEP, no CSP
let C; // like A but serving a tampered copy of the model
let D; // no COOP/COEP and no Document-Isolation-Policy: nothing can be cross-origin isolated
/** Every request any browser context made, with the context's label. */
const browserRequests = [];
/** CSP violations seen by in-page listeners, console messages and workers, per label. */
const violations = [];

async function newContext(label) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  context.on("request", (r) => {
    browserRequests.push({
      label, url: r.url(), method: r.method(), postData: r.postDataBuffer(), resourceType: r.resourceType(),
    });
  });
  // A securitypolicyviolation listener in every document (top and frames, incl. out-of-process).
  await context.exposeBinding("__reportViolation", ({ frame }, v) => violations.push({ label, where: frame?.url(), ...v }));
  await context.addInitScript(() => {
    addEventListener("securitypolicyviolation", (e) => {
      globalThis.__reportViolation?.({ directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample, source: e.sourceFile });
    });
  });
  return context;
}

async function newPage(context, label) {
  const page = await context.newPage();
  const problems = [];
  page.on("console", (m) => {
    const text = m.text();
    if (/Content Security Policy|Trusted Type|Refused to/i.test(text)) violations.push({ label, where: "console", text });
    if (m.type() === "error") problems.push(text);
  });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  // Workers are not covered by init scripts: attach a listener as soon as each one exists.
  page.on("worker", (w) => {
    w.evaluate(() => {
      globalThis.__violations = [];
      addEventListener("securitypolicyviolation", (e) => globalThis.__violations.push({ directive: e.effectiveDirective, sample: e.sample }));
    }).catch(() => { /* worker already gone */ });
  });
  return { page, problems };
}

/**
 * A fresh context and page on `origin` with the sandbox opened (openInPage), collecting console
 * errors and CSP/Trusted Types messages in `problems`.
 * @param {string} origin @param {string} label names the run in assertion messages
 */
async function openWatched(origin, label) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on("console", (m) => { if (m.type() === "error" || /Content Security Policy|Trusted Type/i.test(m.text())) problems.push(m.text()); });
  await page.goto(`${origin}/__test/blank.html`);
  const opened = await openInPage(page);
  assert.ok(opened.ok, `${label}: ${opened.code}: ${opened.message}`);
  return { context, page, problems, opened };
}

/** In a page of `origin`, create a sandbox iframe the way a client page does and open a context. */
async function openInPage(page, { src = "/sandbox.html", requireIsolation = false, timeoutMs } = {}) {
  return page.evaluate(async ({ src, requireIsolation, timeoutMs }) => {
    const { SecureContext } = await import("/secure-context.js");
    const frame = document.createElement("iframe");
    frame.setAttribute("sandbox", "allow-scripts allow-same-origin");
    frame.setAttribute("allow", "cross-origin-isolated");
    frame.src = src;
    document.body.append(frame);
    const progress = [];
    try {
      const ctx = await SecureContext.open({ frame, model: "digits", requireIsolation, timeoutMs, onProgress: (p) => progress.push(p.phase) });
      globalThis.__ctx = ctx;
      return { ok: true, info: JSON.parse(JSON.stringify(ctx.info, (k, v) => (ArrayBuffer.isView(v) ? undefined : v))), progress };
    } catch (e) {
      return { ok: false, code: e.code, message: e.message, progress };
    }
  }, { src, requireIsolation, timeoutMs });
}

function sandboxFrame(page) {
  return page.frames().find((f) => new URL(f.url()).pathname === "/sandbox.html");
}

/** The engine worker: started by the sandbox from a blob: URL of the verified worker.js. */
async function engineWorker(page) {
  const deadline = Date.now() + 10000;
  for (;;) {
    const w = page.workers().find((x) => x.url().startsWith("blob:"));
    if (w) return w;
    if (Date.now() > deadline) throw new Error("no engine worker");
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function waitFor(fn, what, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ------------------------------------------------------------------ setup

before(async () => {
  assert.ok(fs.existsSync(path.join(WEB, "worker.js")) && fs.existsSync(path.join(WEB, "asset-manifest.json")), "build/web is missing: run scripts/build-web");
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  B = await startServer({ root: WEB, isolate: false, csp: false });
  A = await startServer({ root: WEB, frameAncestors: [B.origin] });
  const model = fs.readFileSync(path.join(WEB, "models", "digits.onnx"));
  const tampered = Buffer.from(model);
  tampered[Math.floor(tampered.length / 2)] ^= 0x01;
  C = await startServer({ root: WEB, overrides: { "/models/digits.onnx": tampered } });
  D = await startServer({ root: WEB, isolate: false, dip: false });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  fs.mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await Promise.all([A?.close(), B?.close(), C?.close(), D?.close()]);
});

// ------------------------------------------------------------------ tests

test("demo: isolation everywhere, draw and predict, zero CSP violations, screenshot", async (t) => {
  const context = await newContext("demo");
  const { page, problems } = await newPage(context, "demo");
  await page.goto(`${A.origin}/`);
  await page.waitForFunction(() => document.body.dataset.state, null, { timeout: 60000 });
  assert.equal(await page.evaluate(() => document.body.dataset.state), "ready", await page.evaluate(() => document.getElementById("error").textContent));

  await t.test("crossOriginIsolated in page, iframe and worker; SharedArrayBuffer exists", async () => {
    const probe = () => ({ coi: globalThis.crossOriginIsolated, sab: typeof SharedArrayBuffer });
    const frame = sandboxFrame(page);
    assert.ok(frame, "sandbox iframe present");
    const worker = await engineWorker(page);
    for (const [where, r] of [["page", await page.evaluate(probe)], ["iframe", await frame.evaluate(probe)], ["worker", await worker.evaluate(probe)]]) {
      assert.deepEqual(r, { coi: true, sab: "function" }, where);
    }
    const iframeAttrs = await page.evaluate(() => {
      const f = document.querySelector("iframe");
      return { sandbox: f.getAttribute("sandbox"), allow: f.getAttribute("allow") };
    });
    assert.deepEqual(iframeAttrs, { sandbox: "allow-scripts allow-same-origin", allow: "cross-origin-isolated" });
    const status = JSON.parse(await page.evaluate(() => document.body.dataset.status));
    assert.equal(status.mode, "isolated");
    assert.equal(status.verified, true);
    assert.match(status.engine, /^tract \d+\.\d+\.\d+/);
  });

  await t.test("draw a digit, see it predicted, screenshot", async () => {
    const box = await page.locator("#pad").boundingBox();
    const three = [[0.3, 0.2], [0.5, 0.13], [0.68, 0.22], [0.65, 0.4], [0.45, 0.48], [0.68, 0.58], [0.7, 0.75], [0.5, 0.86], [0.3, 0.8]];
    await page.mouse.move(box.x + three[0][0] * box.width, box.y + three[0][1] * box.height);
    await page.mouse.down();
    for (const [x, y] of three.slice(1)) await page.mouse.move(box.x + x * box.width, box.y + y * box.height, { steps: 8 });
    await page.mouse.up();
    await page.waitForFunction(() => document.body.dataset.prediction !== undefined);
    await page.waitForTimeout(400); // let the last prediction and the bar transitions settle
    assert.equal(await page.evaluate(() => document.body.dataset.prediction), "3");
    await page.screenshot({ path: path.join(ARTIFACTS, "demo.png"), fullPage: true });
  });

  await t.test("zero CSP violations (listeners in page, iframe, worker; console; report endpoint)", async () => {
    await page.waitForTimeout(500); // reports are POSTed asynchronously
    // The listeners really are installed in the page and the (out-of-process) sandbox frame.
    assert.equal(await page.evaluate(() => typeof globalThis.__reportViolation), "function");
    assert.equal(await sandboxFrame(page).evaluate(() => typeof globalThis.__reportViolation), "function");
    const worker = await engineWorker(page);
    const inWorker = await worker.evaluate(() => globalThis.__violations ?? null);
    assert.deepEqual(inWorker, [], "the worker's listener is installed and saw nothing");
    assert.deepEqual(violations.filter((v) => v.label === "demo"), []);
    assert.deepEqual(A.cspReports, []);
    assert.deepEqual(problems, []);
  });

  await t.test("eval is blocked in the worker (and the violation is reported)", async () => {
    const worker = await engineWorker(page);
    // DevTools-evaluated code is exempt from the CSP's eval check, so each attempt runs from a
    // timer callback: ordinary worker code, as an attacker's would be.
    const attempt = (what) => worker.evaluate((what) => new Promise((resolve) => setTimeout(() => {
      try {
        const value = what === "eval" ? (0, eval)("6 * 7")
          : what === "Function" ? new Function("return 6 * 7")()
          : (setTimeout("globalThis.__pwned = 1", 0), "scheduled");
        resolve({ ran: true, value });
      } catch (e) {
        resolve({ ran: false, name: e?.name, message: String(e?.message ?? e) });
      }
    }, 0)), what);
    const results = { eval: await attempt("eval"), Function: await attempt("Function"), setTimeoutString: await attempt("setTimeout") };
    t.diagnostic(Object.entries(results).map(([k, r]) => `${k}: ${r.name}: ${r.message?.split("\n")[0]}`).join(" | "));
    assert.equal(results.eval.ran, false, "eval must throw");
    assert.equal(results.eval.name, "EvalError");
    assert.equal(results.Function.ran, false, "new Function must throw");
    assert.equal(results.setTimeoutString.ran, false, "setTimeout(string) must throw (Trusted Types)");
    await waitFor(() => A.cspReports.length >= 3, "CSP reports for the blocked attempts");
    const directives = A.cspReports.map((r) => r["effective-directive"] ?? r.effectiveDirective).sort();
    t.diagnostic(`reports: ${directives.join(", ")} from ${[...new Set(A.cspReports.map((r) => r["document-uri"]))].join(", ")}`);
    // From the worker: a blob: URL of the sandbox's (it runs under the sandbox's CSP), which a
    // report names by its scheme alone (CSP's "strip URL for use in reports").
    assert.ok(A.cspReports.every((r) => (r["document-uri"] ?? r.documentURL) === "blob"));
    A.cspReports.length = 0;
  });

  await context.close();
});

test("held-out digits: accuracy and the worker's output bytes", async (t) => {
  const x = readNpy(path.join(ROOT, "models", "digits-test", "x.npy"));
  const y = readNpy(path.join(ROOT, "models", "digits-test", "y.npy"));
  assert.deepEqual(x.shape.slice(1), [1, 8, 8]);
  const n = Math.min(N_DIGITS, x.shape[0]);
  const images = Buffer.from(x.data.buffer, 0, n * 64 * 4).toString("base64");

  const context = await newContext("digits");
  const { page, problems } = await newPage(context, "digits");
  await page.goto(`${A.origin}/__test/blank.html`);
  const opened = await openInPage(page);
  assert.ok(opened.ok, `open: ${opened.code}: ${opened.message}`);
  assert.equal(opened.info.model.sha256, JSON.parse(fs.readFileSync(path.join(WEB, "models", "manifest.json"))).models[0].sha256);
  assert.equal(opened.info.graph.sha256, opened.info.model.sha256, "the engine hashed the same bytes");

  const out = await page.evaluate(async ({ images, n }) => {
    const raw = Uint8Array.from(atob(images), (c) => c.charCodeAt(0));
    const all = new Float32Array(raw.buffer);
    const probs = new Float32Array(n * 10);
    let compute = 0;
    for (let i = 0; i < n; i++) {
      const r = await globalThis.__ctx.run({ input: { data: all.slice(i * 64, (i + 1) * 64), shape: [1, 1, 8, 8] } });
      if (r.probabilities.shape.join() !== "1,10") throw new Error(`shape ${r.probabilities.shape}`);
      probs.set(r.probabilities.data, i * 10);
      compute += r.timings.computeMs;
    }
    let s = "";
    const bytes = new Uint8Array(probs.buffer);
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return { b64: btoa(s), compute };
  }, { images, n });

  const bytes = Buffer.from(out.b64, "base64");
  assert.equal(bytes.length, n * 10 * 4);
  const probs = new Float32Array(bytes.buffer, bytes.byteOffset, n * 10);
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const row = probs.subarray(i * 10, i * 10 + 10);
    const sum = row.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-4, `row ${i} sums to ${sum}`);
    let best = 0;
    for (let k = 1; k < 10; k++) if (row[k] > row[best]) best = k;
    if (best === y.data[i]) correct++;
  }
  const accuracy = correct / n;
  t.diagnostic(`accuracy ${correct}/${n} = ${accuracy.toFixed(4)}; mean compute ${(out.compute / n).toFixed(3)} ms`);
  assert.ok(accuracy >= MIN_ACCURACY, `accuracy ${accuracy} < ${MIN_ACCURACY}`);

  // float32 little-endian, row-major [n, 10]: row i is x.npy[i] run alone (batch 1).
  fs.writeFileSync(path.join(ARTIFACTS, "browser-digits-probabilities.bin"), bytes);
  fs.writeFileSync(path.join(ARTIFACTS, "browser-digits-probabilities.json"), JSON.stringify({
    file: "browser-digits-probabilities.bin",
    dtype: "float32", byte_order: "little", shape: [n, 10],
    inputs: "models/digits-test/x.npy", rows: `x.npy[0:${n}], each run alone with shape [1,1,8,8]`,
    model_sha256: opened.info.model.sha256, engine: opened.info.engine.version, engine_build: opened.info.engine.build,
    sha256: sha256(bytes), accuracy,
  }, null, 2) + "\n");
  assert.deepEqual(problems, []);
  await context.close();
});

test("engine errors: a wasi-nn error crosses jco as {code, message}; the graph stays usable", async (t) => {
  const context = await newContext("errors");
  const { page } = await newPage(context, "errors");
  await page.goto(`${A.origin}/__test/blank.html`);
  assert.ok((await openInPage(page)).ok);
  const worker = await engineWorker(page);

  // What jco itself throws for `result<_, error>`: a ComponentError whose payload is the resource.
  const raw = await worker.evaluate(async () => {
    const e = globalThis.__secureContextEngine; // the glue's exports (bundled into the worker)
    try {
      e.graph.load([new Uint8Array([8, 1, 18, 3, 1, 2, 3])], "onnx", "cpu");
      return { threw: false };
    } catch (err) {
      const p = err.payload;
      const r = {
        threw: true, ctor: err?.constructor?.name, isError: err instanceof Error, message: err.message,
        payloadCtor: p?.constructor?.name, code: p?.code?.(), data: p?.data?.(),
      };
      p?.[Symbol.dispose]?.();
      return r;
    }
  });
  t.diagnostic(`jco throws: ${JSON.stringify(raw)}`);
  assert.equal(raw.threw, true);
  assert.equal(raw.ctor, "ComponentError");
  // The payload is the wasi-nn `error` resource (jco names its class Error$N to avoid the global).
  assert.match(raw.payloadCtor, /^Error(\$\d+)?$/);
  assert.ok(["invalid-argument", "invalid-encoding"].includes(raw.code), raw.code);
  assert.ok(raw.data.length > 0);

  // The worker turns the same failure into {code, message} for the sandbox.
  const viaWorker = await worker.evaluate(async () => {
    const replies = [];
    const post = self.postMessage;
    self.postMessage = (m) => replies.push(m);
    try {
      self.dispatchEvent(new MessageEvent("message", { data: { type: "load", id: -7, bytes: new Uint8Array([1, 2, 3]).buffer, encoding: "onnx" } }));
      for (let i = 0; i < 100 && replies.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    } finally {
      self.postMessage = post;
    }
    return replies;
  });
  assert.equal(viaWorker.length, 1);
  assert.equal(viaWorker[0].type, "error");
  assert.equal(viaWorker[0].id, -7);
  assert.ok(["invalid-argument", "invalid-encoding"].includes(viaWorker[0].code), viaWorker[0].code);
  assert.equal(viaWorker[0].fatal, false);
  assert.equal(typeof viaWorker[0].message, "string");

  // The loaded graph still answers.
  const r = await page.evaluate(async () => {
    const out = await globalThis.__ctx.run({ input: { data: new Float32Array(64), shape: [1, 1, 8, 8] } });
    return Array.from(out.probabilities.data).length;
  });
  assert.equal(r, 10);

  // Wrong names and shapes are refused before the engine, with the engine's error vocabulary.
  const refused = await page.evaluate(async () => {
    const tries = [
      { nope: { data: new Float32Array(64), shape: [1, 1, 8, 8] } },
      { input: { data: new Float32Array(72), shape: [1, 1, 8, 9] } },
    ];
    const codes = [];
    for (const inputs of tries) {
      try { await globalThis.__ctx.run(inputs); codes.push("ran"); } catch (e) { codes.push(e.code); }
    }
    return codes;
  });
  assert.deepEqual(refused, ["invalid-argument", "invalid-argument"]);
  await context.close();
});

test("a tampered model is refused with an integrity error", async (t) => {
  const context = await newContext("tampered");
  const { page } = await newPage(context, "tampered");
  await page.goto(`${C.origin}/__test/blank.html`);
  const r = await openInPage(page);
  t.diagnostic(`${r.code}: ${r.message}`);
  assert.equal(r.ok, false);
  assert.equal(r.code, "integrity");
  assert.match(r.message, /integrity/);
  assert.ok(!r.progress.includes("graph"), "the engine never saw the bytes");
  assert.equal(await sandboxFrame(page).evaluate(() => document.documentElement.dataset.state), "error");
  await context.close();
});

test("cache: verified model cached by hash, re-verified on read, evicted when corrupt, purged", async () => {
  const context = await newContext("cache");
  const { page } = await newPage(context, "cache");
  await page.goto(`${A.origin}/__test/blank.html`);
  const first = await openInPage(page);
  assert.equal(first.info.model.source, "network");
  const second = await openInPage(page);
  assert.equal(second.info.model.source, "cache");
  assert.ok(second.progress.includes("cache"));
  const sha = second.info.model.sha256;
  const frames = page.frames().filter((f) => new URL(f.url()).pathname === "/sandbox.html");
  const keys = await frames[0].evaluate(async () => (await (await caches.open("secure-context-models-v1")).keys()).map((r) => r.url));
  assert.deepEqual(keys, [`${A.origin}/models/sha256/${sha}`]);

  // Corrupt the cached copy: the next sandbox must notice, evict it and download again.
  await frames[0].evaluate(async (key) => {
    const c = await caches.open("secure-context-models-v1");
    await c.put(key, new Response(new Uint8Array(25328)));
  }, keys[0]);
  const third = await openInPage(page);
  assert.equal(third.info.model.source, "network");
  const status = await page.evaluate(() => globalThis.__ctx.status());
  assert.equal(status.counters.cacheEvictions, 1);
  assert.equal(status.model.verified, true);

  assert.equal(await page.evaluate(() => globalThis.__ctx.purgeCache()), true);
  const after = await frames[0].evaluate(async () => (await caches.keys()).length);
  assert.equal(after, 0);
  await context.close();
});

test("messages: forged ones from other windows and origins are dropped and counted; bad schema is rejected", async (t) => {
  const context = await newContext("messages");
  const { page } = await newPage(context, "messages");
  await page.goto(`${A.origin}/__test/blank.html`);
  assert.ok((await openInPage(page)).ok);

  await t.test("wrong schema from the parent is rejected with an error reply", async () => {
    const replies = await page.evaluate(async () => {
      const frame = document.querySelector("iframe");
      const got = [];
      const onMsg = (e) => { if (e.source === frame.contentWindow && e.data?.id >= 900) got.push(e.data); };
      addEventListener("message", onMsg);
      const bad = [
        { v: 2, type: "status", id: 901 },
        { v: 1, type: "launch-missiles", id: 902 },
        { v: 1, type: "run", id: 903, inputs: { input: { data: [0, 1], shape: [2] } } },
        { v: 1, type: "status", id: 904, extra: true },
        { v: 1, type: "run", id: 905, inputs: { input: { data: new Float32Array(3), shape: [1, 1, 8, 8] } } },
      ];
      for (const m of bad) frame.contentWindow.postMessage(m, location.origin);
      for (let i = 0; i < 100 && got.length < bad.length; i++) await new Promise((r) => setTimeout(r, 20));
      removeEventListener("message", onMsg);
      return got;
    });
    assert.equal(replies.length, 5);
    for (const r of replies) {
      assert.equal(r.type, "error");
      assert.equal(r.code, "bad-message");
    }
    t.diagnostic(replies.map((r) => `${r.id}: ${r.message}`).join(" | "));
    const status = await page.evaluate(() => globalThis.__ctx.status());
    assert.equal(status.counters.rejected, 5);
  });

  await t.test("same origin, wrong window (a sibling frame): dropped, counted, no answer", async () => {
    await page.evaluate(async () => {
      const sib = document.createElement("iframe");
      sib.src = "/__test/blank.html";
      sib.name = "sibling";
      document.body.append(sib);
      await new Promise((r) => sib.addEventListener("load", r, { once: true }));
    });
    const sibling = page.frames().find((f) => f.name() === "sibling");
    const before = await page.evaluate(() => globalThis.__ctx.status());
    const answers = await sibling.evaluate(async () => {
      const got = [];
      addEventListener("message", (e) => got.push(e.data));
      const sandbox = parent.frames[0];
      sandbox.postMessage({ v: 1, type: "status", id: 1 }, "*");
      sandbox.postMessage({ v: 1, type: "purge", id: 2 }, "*");
      // And a forged reply to the client in the parent.
      parent.postMessage({ v: 1, type: "result", id: 1, outputs: {} }, "*");
      await new Promise((r) => setTimeout(r, 300));
      return got;
    });
    assert.deepEqual(answers, [], "the sandbox never answers a foreign window");
    const status = await page.evaluate(() => globalThis.__ctx.status());
    assert.equal(status.counters.dropped - before.counters.dropped, 2);
    assert.equal(status.client.dropped - before.client.dropped, 1, "the client counted the forged reply");
    const cached = await sandboxFrame(page).evaluate(async () => (await caches.keys()).length);
    assert.equal(cached, 1, "the forged purge did nothing");
  });

  await context.close();

  await t.test("another origin embedding the sandbox: everything dropped and counted", async () => {
    const ctx2 = await newContext("foreign");
    const { page: evil } = await newPage(ctx2, "foreign");
    await evil.goto(`${B.origin}/__test/plain.html`);
    const answers = await evil.evaluate(async (src) => {
      const f = document.createElement("iframe");
      f.setAttribute("sandbox", "allow-scripts allow-same-origin");
      f.src = src;
      document.body.append(f);
      await new Promise((r) => f.addEventListener("load", r, { once: true }));
      const got = [];
      addEventListener("message", (e) => got.push(e.data));
      for (let i = 1; i <= 3; i++) f.contentWindow.postMessage({ v: 1, type: "init", id: i, model: "digits" }, "*");
      f.contentWindow.postMessage({ v: 1, type: "status", id: 4 }, "*");
      await new Promise((r) => setTimeout(r, 500));
      return got;
    }, `${A.origin}/sandbox.html`);
    assert.deepEqual(answers, [], "no hello, no replies to a foreign parent");
    const frame = evil.frames().find((f) => f.url().startsWith(`${A.origin}/sandbox.html`));
    const seen = await frame.evaluate(() => ({
      dropped: document.getElementById("sandbox-dropped").textContent,
      state: document.getElementById("sandbox-state").textContent,
    }));
    t.diagnostic(JSON.stringify(seen));
    assert.equal(seen.dropped, "4");
    assert.match(seen.state, /not an allowed parent/);
    assert.equal(evil.workers().length, 0, "no engine was started");

    // Listed in `parents`, the same foreign page is answered (its origin is on the allowlist).
    const listed = await evil.evaluate(async (src) => {
      const f = document.createElement("iframe");
      f.setAttribute("sandbox", "allow-scripts allow-same-origin");
      const got = [];
      addEventListener("message", (e) => { if (e.source === f.contentWindow) got.push(e.data); });
      f.src = src;
      document.body.append(f);
      await new Promise((r) => f.addEventListener("load", r, { once: true }));
      f.contentWindow.postMessage({ v: 1, type: "status", id: 9 }, new URL(src).origin);
      for (let i = 0; i < 50 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
      return got.map((m) => ({ type: m.type, id: m.id, allowed: m.status?.allowedOrigins }));
    }, `${A.origin}/sandbox.html?parents=${encodeURIComponent(B.origin)}`);
    assert.deepEqual(listed, [
      { type: "hello", id: 0, allowed: undefined },
      { type: "status", id: 9, allowed: [A.origin, B.origin] },
    ]);

    // parents=* is refused outright.
    const star = await evil.evaluate(async (src) => {
      const f = document.createElement("iframe");
      f.src = src;
      document.body.append(f);
      await new Promise((r) => f.addEventListener("load", r, { once: true }));
    }, `${A.origin}/sandbox.html?parents=*`);
    void star;
    const starFrame = evil.frames().find((f) => f.url().endsWith("parents=*"));
    assert.match(await starFrame.evaluate(() => document.getElementById("sandbox-state").textContent), /"\*" is not allowed/);
    await ctx2.close();
  });
});

test("cancel and timeout terminate and respawn the worker", async (t) => {
  const context = await newContext("cancel");
  const { page } = await newPage(context, "cancel");
  await page.goto(`${A.origin}/__test/blank.html`);
  assert.ok((await openInPage(page, { timeoutMs: 200 })).ok);
  const r = await page.evaluate(async () => {
    const ctx = globalThis.__ctx;
    const big = { input: { data: new Float32Array(30000 * 64), shape: [30000, 1, 8, 8] } };
    const small = { input: { data: new Float32Array(64), shape: [1, 1, 8, 8] } };
    const res = {};
    // 1. timeout: a batch far too big for 200 ms
    const t0 = performance.now();
    try { await ctx.run(big); res.timeout = "ran"; } catch (e) { res.timeout = e.code; }
    res.timeoutAfterMs = performance.now() - t0;
    res.afterTimeout = (await ctx.run(small)).probabilities.data.length;
    // 2. cancel: queue two big runs, cancel them
    const p1 = ctx.run(big).then(() => "ran", (e) => e.code);
    const p2 = ctx.run(big).then(() => "ran", (e) => e.code);
    await new Promise((r) => setTimeout(r, 50));
    res.cancelCount = await ctx.cancel();
    res.cancelled = await Promise.all([p1, p2]);
    res.afterCancel = (await ctx.run(small)).probabilities.data.length;
    res.status = await ctx.status();
    return res;
  });
  t.diagnostic(`timeout after ${r.timeoutAfterMs.toFixed(0)} ms; counters ${JSON.stringify(r.status.counters)}`);
  assert.equal(r.timeout, "timeout");
  // The watchdog stops a port run once it has run its timeoutMs, never before (engine-supervisor.js).
  assert.ok(r.timeoutAfterMs >= 200, `stopped after ${r.timeoutAfterMs} ms, before its 200 ms`);
  assert.equal(r.afterTimeout, 10);
  assert.equal(r.cancelCount, 2);
  assert.deepEqual(r.cancelled, ["cancelled", "cancelled"]);
  assert.equal(r.afterCancel, 10);
  assert.ok(r.status.counters.workerRestarts >= 2);
  assert.equal(r.status.counters.timeouts, 1);
  await context.close();
});

test("a trap is reported as an error and the worker is respawned", async (t) => {
  const context = await newContext("trap");
  const { page } = await newPage(context, "trap");
  await page.goto(`${A.origin}/__test/blank.html`);
  assert.ok((await openInPage(page)).ok);
  const worker = await engineWorker(page);
  // Simulate a trap: the next Tensor constructed in this worker instance throws what a wasm
  // `unreachable` throws. A respawned worker instantiates the engine afresh, unpatched.
  await worker.evaluate(() => {
    const e = globalThis.__secureContextEngine;
    e.tensor.Tensor = function () { throw new WebAssembly.RuntimeError("unreachable (simulated trap)"); };
  });
  const r = await page.evaluate(async () => {
    const small = { input: { data: new Float32Array(64), shape: [1, 1, 8, 8] } };
    const res = {};
    try { await globalThis.__ctx.run(small); res.first = "ran"; } catch (e) { res.first = { code: e.code, message: e.message }; }
    res.second = (await globalThis.__ctx.run(small)).probabilities.data.length;
    res.status = await globalThis.__ctx.status();
    return res;
  });
  t.diagnostic(JSON.stringify(r.first));
  assert.equal(r.first.code, "trap");
  assert.match(r.first.message, /simulated trap/);
  assert.equal(r.second, 10);
  assert.equal(r.status.counters.workerRestarts, 1);
  await context.close();
});

test("non-isolated embedder: the sandbox still runs and reports what it has", async (t) => {
  const context = await newContext("plain");
  const { page } = await newPage(context, "plain");
  await page.goto(`${A.origin}/__test/plain.html`);
  assert.equal(await page.evaluate(() => crossOriginIsolated), false, "the embedding page is not isolated");
  const opened = await openInPage(page);
  assert.ok(opened.ok, `${opened.code}: ${opened.message}`);
  const status = await page.evaluate(() => globalThis.__ctx.status());
  t.diagnostic(`isolation: ${JSON.stringify(status.isolation)}`);
  assert.equal(status.isolation.page.crossOriginIsolated, false);
  assert.equal(typeof status.isolation.sandbox.crossOriginIsolated, "boolean");
  assert.equal(status.isolation.mode, status.isolation.sandbox.crossOriginIsolated && status.isolation.worker.crossOriginIsolated ? "isolated" : "single-threaded");
  const x = readNpy(path.join(ROOT, "models", "digits-test", "x.npy"));
  const y = readNpy(path.join(ROOT, "models", "digits-test", "y.npy"));
  const probs = await page.evaluate(async (img) => {
    const r = await globalThis.__ctx.run({ input: { data: new Float32Array(img), shape: [1, 1, 8, 8] } });
    return Array.from(r.probabilities.data);
  }, Array.from(x.data.subarray(0, 64)));
  assert.equal(probs.indexOf(Math.max(...probs)), y.data[0]);

  // requireIsolation is honoured either way: granted where isolated, refused where not.
  const strict = await openInPage(page, { requireIsolation: true });
  if (status.isolation.mode === "isolated") assert.ok(strict.ok, `${strict.code}: ${strict.message}`);
  else assert.equal(strict.code, "not-isolated");
  // Chromium honours Document-Isolation-Policy: the sandbox is isolated though its parent is not.
  assert.equal(status.isolation.sandbox.crossOriginIsolated, true, "Document-Isolation-Policy isolated the sandbox");
  await context.close();
});

test("no isolation at all: runs single-threaded and says so; requireIsolation refuses", async (t) => {
  const context = await newContext("unisolated");
  const { page } = await newPage(context, "unisolated");
  await page.goto(`${D.origin}/__test/plain.html`);
  const strict = await openInPage(page, { requireIsolation: true });
  assert.equal(strict.ok, false);
  assert.equal(strict.code, "not-isolated");
  t.diagnostic(strict.message);
  const opened = await openInPage(page);
  assert.ok(opened.ok, `${opened.code}: ${opened.message}`);
  const status = await page.evaluate(() => globalThis.__ctx.status());
  assert.equal(status.isolation.sandbox.crossOriginIsolated, false);
  assert.equal(status.isolation.worker.crossOriginIsolated, false);
  assert.equal(status.isolation.mode, "single-threaded");
  assert.match(status.isolation.note, /single-threaded/);
  const n = await page.evaluate(async () => (await globalThis.__ctx.run({ input: { data: new Float32Array(64), shape: [1, 1, 8, 8] } })).probabilities.data.length);
  assert.equal(n, 10);
  // No SharedArrayBuffer here: the port's runs are supervised and counted through messages.
  const runs = await page.evaluate(async () => {
    const ctx = globalThis.__ctx;
    const before = (await ctx.status()).counters.runs;
    for (let i = 0; i < 3; i++) await ctx.run({ input: { data: new Float32Array(64), shape: [1, 1, 8, 8] } });
    return (await ctx.status()).counters.runs - before;
  });
  assert.equal(runs, 3);
  await context.close();
});

test("the sandbox starts its engine before init, where the browser names an allowed parent; a misconfigured one starts nothing", async (t) => {
  const context = await newContext("prestart");
  const { page } = await newPage(context, "prestart");
  await page.goto(`${A.origin}/__test/blank.html`);
  // A bare sandbox iframe: nothing talks to it yet.
  await page.evaluate((src) => {
    const frame = document.createElement("iframe");
    frame.setAttribute("sandbox", "allow-scripts allow-same-origin");
    frame.setAttribute("allow", "cross-origin-isolated");
    frame.src = src;
    document.body.append(frame);
  }, "/sandbox.html");
  // No init was sent: the engine's core wasm is fetched (and compiled) all the same.
  // Whichever build this browser picks (engine-variant.js): the threaded module or a component's core wasm.
  const engineFetched = () => browserRequests.some((r) => r.label === "prestart" && /\/(engine(-baseline)?\/inference\.core|engine-threads\/inference-threads)\.[0-9a-f]+\.wasm$/.test(new URL(r.url).pathname));
  await waitFor(engineFetched, "the engine's core wasm, before any init", 30000);
  const worker = await engineWorker(page);
  await waitFor(() => worker.evaluate(() => globalThis.__secureContextEngine != null), "the engine instantiated", 60000);
  // Then init uses that worker: one start in all.
  const opened = await page.evaluate(async () => {
    const { SecureContext } = await import("/secure-context.js");
    const ctx = await SecureContext.open({ frame: document.querySelector("iframe"), model: "digits" });
    const s = await ctx.status();
    return { starts: s.counters.workerStarts, engineInitMs: s.timings.engineInitMs };
  });
  t.diagnostic(`after a prestart: ${JSON.stringify(opened)}`);
  assert.equal(opened.starts, 1);
  await context.close();

  const bad = await newContext("prestart-misconfigured");
  const { page: p2 } = await newPage(bad, "prestart-misconfigured");
  await p2.goto(`${A.origin}/__test/blank.html`);
  await p2.evaluate((src) => {
    const f = document.createElement("iframe");
    f.setAttribute("sandbox", "allow-scripts allow-same-origin");
    f.src = src;
    document.body.append(f);
    return new Promise((r) => f.addEventListener("load", r, { once: true }));
  }, "/sandbox.html?parents=*");
  await new Promise((r) => setTimeout(r, 2000));
  const fetched = browserRequests.filter((r) => r.label === "prestart-misconfigured" && /worker\.js$|\.wasm$/.test(new URL(r.url).pathname));
  assert.deepEqual(fetched.map((r) => r.url), [], "a misconfigured sandbox fetches no engine");
  await bad.close();
});

test("direct port: runs go page -> worker, skip the sandbox document, are validated and counted", async (t) => {
  const context = await newContext("port");
  const { page, problems } = await newPage(context, "port");
  await page.goto(`${A.origin}/__test/blank.html`);
  // Keep a handle on the port the sandbox hands the client (the same MessagePort object).
  await page.evaluate(() => {
    addEventListener("message", (e) => { if (e.data?.type === "port" && e.ports[0]) globalThis.__port = e.ports[0]; });
  });
  assert.ok((await openInPage(page)).ok);
  await waitFor(() => page.evaluate(() => globalThis.__port !== undefined), "the sandbox's port");
  // Count what reaches the sandbox document from the page: runs must not.
  await sandboxFrame(page).evaluate(() => {
    globalThis.__relayedRuns = 0;
    addEventListener("message", (e) => { if (e.data?.type === "run") globalThis.__relayedRuns++; });
  });
  // What the worker tells the sandbox per run: nothing, when they share a PortWatch (isolated).
  const worker = await engineWorker(page);
  await worker.evaluate(() => {
    globalThis.__notices = {};
    const post = self.postMessage.bind(self);
    self.postMessage = (m, t) => {
      globalThis.__notices[m?.type] = (globalThis.__notices[m?.type] ?? 0) + 1;
      return post(m, t);
    };
  });
  const x = readNpy(path.join(ROOT, "models", "digits-test", "x.npy"));
  const r = await page.evaluate(async (img) => {
    const ctx = globalThis.__ctx;
    const before = (await ctx.status()).counters.runs;
    const outs = [];
    for (let i = 0; i < 20; i++) outs.push(Array.from((await ctx.run({ input: { data: new Float32Array(img), shape: [1, 1, 8, 8] } })).probabilities.data));
    // Bad messages straight on the port: answered with bad-message, never run.
    const port = globalThis.__port;
    const got = [];
    const onMsg = (e) => { if (e.data?.id >= 900) got.push(e.data); };
    port.addEventListener("message", onMsg);
    const bad = [
      { v: 1, type: "status", id: 901 },
      { v: 2, type: "run", id: 902, inputs: { input: { data: new Float32Array(64), shape: [1, 1, 8, 8] } } },
      { v: 1, type: "run", id: 903, inputs: { input: { data: new Float32Array(3), shape: [1, 1, 8, 8] } } },
      { v: 1, type: "run", id: 904, inputs: { input: { data: new Float32Array(64), shape: [1, 1, 8, 8] } }, extra: 1 },
      { v: 1, type: "run", id: 905, inputs: { nope: { data: new Float32Array(64), shape: [1, 1, 8, 8] } } },
    ];
    for (const m of bad) port.postMessage(m);
    for (let i = 0; i < 100 && got.length < bad.length; i++) await new Promise((res) => setTimeout(res, 20));
    port.removeEventListener("message", onMsg);
    const status = await ctx.status();
    return { outs, got, runs: status.counters.runs - before, rejected: status.counters.rejected, errors: status.counters.errors };
  }, Array.from(x.data.subarray(0, 64)));
  const relayed = await sandboxFrame(page).evaluate(() => globalThis.__relayedRuns);
  const notices = await worker.evaluate(() => globalThis.__notices);
  t.diagnostic(`worker -> sandbox: ${JSON.stringify(notices)}`);
  // 20 ok runs: no notice; the 5 bad messages: one port-done each (rejected, or error for 905).
  assert.deepEqual(notices, { "port-done": 5 }, "ok runs are supervised through the PortWatch, not messages");
  t.diagnostic(`runs ${r.runs}, relayed ${relayed}; ${r.got.map((m) => `${m.id}: ${m.code}: ${m.message}`).join(" | ")}`);
  assert.equal(relayed, 0, "no run went through the sandbox document");
  assert.equal(r.runs, 20, "the sandbox counted the port's runs");
  assert.ok(r.outs.every((o) => o.join() === r.outs[0].join()));
  assert.deepEqual(r.got.map((m) => [m.id, m.type, m.code]), [
    [901, "error", "bad-message"], [902, "error", "bad-message"], [903, "error", "bad-message"],
    [904, "error", "bad-message"], [905, "error", "invalid-argument"],
  ]);
  assert.equal(r.rejected, 4);
  assert.equal(r.errors, 1);
  assert.deepEqual(problems, []);
  await context.close();
});

/** CPU time (clock ticks) of every thread of every Chromium process, by pid/tid, with its name. */
function chromiumThreadTicks() {
  const out = new Map();
  for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    let tids;
    try {
      if (!/chrom/i.test(fs.readFileSync(`/proc/${pid}/comm`, "utf8"))) continue;
      tids = fs.readdirSync(`/proc/${pid}/task`);
    } catch { continue; }
    for (const tid of tids) {
      try {
        const st = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
        const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
        out.set(`${pid}/${tid}`, { name: st.slice(st.indexOf("(") + 1, st.lastIndexOf(")")), ticks: Number(f[11]) + Number(f[12]) });
      } catch { /* the thread ended */ }
    }
  }
  return out;
}

/**
 * A worker.js that does not see more than one core: the threaded build is then not usable
 * (engine-threads.js threadsUsable) and the relaxed component runs. Served re-pinned, as another
 * build's worker.js would be.
 */
function workerWithoutThreads() {
  const worker = fs.readFileSync(path.join(WEB, "worker.js"), "utf8");
  assert.equal(worker.split("hardwareConcurrency").length, 2, "worker.js reads hardwareConcurrency once");
  return Buffer.from(worker.replace("hardwareConcurrency", "noHardwareConcurrency"));
}

test("engine builds: threads where isolated, relaxed SIMD where the browser has it, the simd128 build where it does not", async (t) => {
  const manifest = JSON.parse(fs.readFileSync(path.join(WEB, "asset-manifest.json"), "utf8"));
  for (const dir of ["engine", "engine-baseline", "engine-threads"]) {
    const wasm = Object.keys(manifest).filter((k) => k.startsWith(`${dir}/`) && k.endsWith(".wasm"));
    assert.ok(wasm.length > 0 && wasm.every((k) => manifest[k].immutable), `${dir}: content-hashed core wasm in the manifest`);
  }
  const x = readNpy(path.join(ROOT, "models", "digits-test", "x.npy"));
  const n = Math.min(N_DIGITS, x.shape[0]);
  const images = Buffer.from(x.data.buffer, 0, n * 64 * 4).toString("base64");
  const runAll = async (origin, label) => {
    const { context, page, problems, opened } = await openWatched(origin, label);
    const b64 = await page.evaluate(async ({ images, n }) => {
      const all = new Float32Array(Uint8Array.from(atob(images), (c) => c.charCodeAt(0)).buffer);
      const probs = new Float32Array(n * 10);
      for (let i = 0; i < n; i++) probs.set((await globalThis.__ctx.run({ input: { data: all.slice(i * 64, (i + 1) * 64), shape: [1, 1, 8, 8] } })).probabilities.data, i * 10);
      let s = "";
      const bytes = new Uint8Array(probs.buffer);
      for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(s);
    }, { images, n });
    await context.close();
    assert.deepEqual(problems, [], label);
    return { build: opened.info.engine.build, bytes: Buffer.from(b64, "base64"), info: opened.info };
  };
  const threads = await runAll(A.origin, "threads");
  assert.equal(threads.build, "relaxed-simd-threads", "isolated Chromium with relaxed SIMD and 2+ cores: the threaded build runs");
  const pool = Number(/, (\d+) threads$/.exec(threads.info.engine.version)?.[1]);
  t.diagnostic(`threaded build: ${threads.info.engine.version}`);
  assert.ok(pool >= 2, `the threaded engine runs a pool of ${pool} threads (${threads.info.engine.version})`);
  const R = await startServer({ root: WEB, repin: true, overrides: { "/worker.js": workerWithoutThreads() } });
  let relaxed;
  try {
    relaxed = await runAll(R.origin, "relaxed");
  } finally {
    await R.close();
  }
  assert.equal(relaxed.build, "relaxed-simd", "Chromium has relaxed SIMD: the relaxed build runs where threads are not");
  // The threaded build splits each matrix product between threads by output panels, never
  // along a sum: the same bits as the single-threaded component.
  assert.ok(threads.bytes.equals(relaxed.bytes), "the threaded build's digits outputs are bit-identical to the relaxed component's");
  // A browser without relaxed SIMD, as far as the worker can tell: Chromium 156 no longer lets
  // V8 flags switch the shipped feature off, so serve a worker.js whose one WebAssembly.validate
  // call (the probe in engine-variant.js) answers false. Everything after it is the real path.
  // That worker.js is another build's: the site is re-pinned for it (web/pins.mjs), as a build
  // would pin it, else the sandbox refuses it (tests/browser/integrity.test.mjs).
  const worker = fs.readFileSync(path.join(WEB, "worker.js"), "utf8");
  assert.equal(worker.split("WebAssembly.validate(").length, 2, "worker.js has exactly one WebAssembly.validate call");
  const E = await startServer({ root: WEB, repin: true, overrides: { "/worker.js": Buffer.from(worker.replace("WebAssembly.validate(", "(()=>!1)(")) } });
  try {
    const baseline = await runAll(E.origin, "baseline");
    assert.equal(baseline.build, "simd128");
    const a = new Float32Array(relaxed.bytes.buffer, relaxed.bytes.byteOffset, n * 10);
    const b = new Float32Array(baseline.bytes.buffer, baseline.bytes.byteOffset, n * 10);
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    t.diagnostic(`relaxed vs simd128 build: max abs diff ${maxDiff.toExponential(2)} over ${n} digits`);
    assert.ok(maxDiff < 1e-5, `the two builds differ by ${maxDiff}`);
    // test_browser_parity.py holds this to `secure-context --component inference-baseline.wasm`.
    fs.writeFileSync(path.join(ARTIFACTS, "browser-digits-probabilities-baseline.bin"), baseline.bytes);
  } finally {
    await E.close();
  }
});

test("threaded build: SqueezeNet and ResNet-50 bit-identical to the relaxed component, computed on the pool's threads; bad input a clear error", async (t) => {
  // onnx's light CNNs from the onnx wheel (requirements-test.txt; Apache-2.0), as scripts/bench-web
  // benches them; run through the worker's engine object, the one worker.js runs models with.
  const light = execFileSync("python3", ["-c", "import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), 'backend', 'test', 'data', 'light'))"], { encoding: "utf8" }).trim();
  const models = Object.fromEntries(["squeezenet", "resnet50"].map((m) => [m, fs.readFileSync(path.join(light, `light_${m}.onnx`)).toString("base64")]));
  const computeAll = async (origin, label) => {
    const { context, page, problems, opened } = await openWatched(origin, label);
    const worker = await engineWorker(page);
    const r = await worker.evaluate(({ models }) => {
      const e = /** @type {any} */ (globalThis).__secureContextEngine;
      const out = {};
      for (const [name, b64] of Object.entries(models)) {
        const g = e.graph.load([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], "onnx", "cpu");
        const input = e.introspection.describe(g).inputs[0];
        const shape = input.shape.map((d) => Number(d.val));
        const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
        for (let i = 0; i < data.length; i++) data[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
        const ctx = g.initExecutionContext();
        const t0 = performance.now();
        const [[, y]] = ctx.compute([[input.name, new e.tensor.Tensor(Uint32Array.from(shape), "FP32", new Uint8Array(data.buffer))]]);
        const ms = performance.now() - t0;
        let s = "";
        const bytes = y.data();
        for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        let bad = null;
        try {
          ctx.compute([[input.name, new e.tensor.Tensor(Uint32Array.from([1, 3, 2, 2]), "FP32", new Uint8Array(48))]]);
        } catch (err) {
          bad = { code: String(err.payload?.code()), message: String(err.payload?.data()) };
        }
        // Kept for the busy-threads check below (ResNet-50: ~95% of its time in matrix products).
        const again = () => ctx.compute([[input.name, new e.tensor.Tensor(Uint32Array.from(shape), "FP32", new Uint8Array(data.buffer))]]);
        globalThis.__again = { ...(globalThis.__again ?? {}), [name]: again };
        g[Symbol.dispose]?.();
        out[name] = { b64: btoa(s), ms, bad };
      }
      return out;
    }, { models });
    // Which of the browser's threads did the work of 5 more ResNet-50 runs (Linux: /proc).
    const before = chromiumThreadTicks();
    await worker.evaluate(() => { for (let i = 0; i < 5; i++) globalThis.__again.resnet50(); });
    const after = chromiumThreadTicks();
    const busy = [...after].filter(([k, v]) => /DedicatedWorker/.test(v.name))
      .map(([k, v]) => v.ticks - (before.get(k)?.ticks ?? 0)).filter((d) => d > 0).sort((a, b) => b - a);
    await context.close();
    assert.deepEqual(problems, [], label);
    return { build: opened.info.engine.build, version: opened.info.engine.version, r, busy };
  };
  const threads = await computeAll(A.origin, "threads");
  assert.equal(threads.build, "relaxed-simd-threads");
  const R = await startServer({ root: WEB, repin: true, overrides: { "/worker.js": workerWithoutThreads() } });
  let relaxed;
  try {
    relaxed = await computeAll(R.origin, "relaxed");
  } finally {
    await R.close();
  }
  assert.equal(relaxed.build, "relaxed-simd");
  // The pool really computes: in the threaded build the work of a ResNet-50 run is spread over
  // worker threads (the pool's), in the component it is one worker thread's. Rayon steals work,
  // so a thread the OS starves does less: the second-busiest need only carry a fifth of the first's.
  t.diagnostic(`CPU ticks of the busiest worker threads over 5 ResNet-50 runs: threads ${threads.busy.slice(0, 4).join(", ")}; component ${relaxed.busy.slice(0, 4).join(", ")}`);
  assert.ok(threads.busy.length >= 2 && threads.busy[1] >= threads.busy[0] / 5, `the threaded build's work ran on one thread: ${threads.busy}`);
  assert.ok(!(relaxed.busy.length >= 2 && relaxed.busy[1] >= relaxed.busy[0] / 5), `the component's work ran on several threads: ${relaxed.busy}`);
  for (const m of Object.keys(models)) {
    t.diagnostic(`${m}: threads (${threads.version}) ${threads.r[m].ms.toFixed(1)} ms, component ${relaxed.r[m].ms.toFixed(1)} ms (one run each, not a benchmark)`);
    assert.ok(threads.r[m].b64.length > 100, `${m}: an output`);
    assert.equal(threads.r[m].b64, relaxed.r[m].b64, `${m}: the threaded build's output is bit-identical to the relaxed component's`);
    // Bad input: the same wasi-nn error from both builds.
    assert.equal(threads.r[m].bad?.code, "invalid-argument", JSON.stringify(threads.r[m].bad));
    assert.deepEqual(threads.r[m].bad, relaxed.r[m].bad);
  }
});

test("network: same origin only, GET only (CSP reports aside), input never leaves", async () => {
  const x = readNpy(path.join(ROOT, "models", "digits-test", "x.npy"));
  // Byte patterns of the first images sent: none may appear in any request.
  const needles = [];
  for (let i = 0; i < 20; i++) needles.push(Buffer.from(x.data.buffer, i * 256, 256).subarray(64, 128));

  const ours = browserRequests.filter((r) => r.label !== "foreign");
  assert.ok(ours.length > 20, "requests were recorded");
  for (const r of ours) {
    const u = new URL(r.url);
    const allowedOrigins = r.label === "tampered" ? [C.origin] : r.label === "unisolated" ? [D.origin] : [A.origin];
    assert.ok(allowedOrigins.includes(u.origin), `${r.label}: cross-origin request ${r.url}`);
    if (r.method !== "GET") {
      assert.equal(r.method, "POST", `${r.label}: ${r.method} ${r.url}`);
      assert.equal(u.pathname, "/__csp-report", `${r.label}: POST ${r.url}`);
    }
    assert.ok(u.search.length < 200, `long query string: ${r.url}`);
    for (const n of needles) assert.ok(!r.postData?.includes(n), `input bytes in ${r.method} ${r.url}`);
  }
  for (const server of [A, C, D]) {
    for (const r of server.requests) {
      if (r.method !== "GET" && r.method !== "HEAD") assert.equal(new URL(r.url, "http://x").pathname, "/__csp-report", `${r.method} ${r.url}`);
      for (const n of needles) assert.ok(!r.body.includes(n), `input bytes reached the server in ${r.method} ${r.url}`);
      assert.ok(["same-origin", "none", undefined].includes(r.headers["sec-fetch-site"]) || r.url.startsWith("/sandbox.html"),
        `${r.url} fetched ${r.headers["sec-fetch-site"]}`);
    }
  }
  const models = A.requests.filter((r) => r.url.startsWith("/models/digits.onnx"));
  assert.ok(models.length >= 1);
});
