// The sandbox's input mode (init {input: {report}}): the draw pad / file picker live in the
// sandbox document on the runtime's origin, framed by a page of ANOTHER origin (the way the
// Streamlit component frames it). The embedder must get outputs only (report: true) or nothing
// (report: false), never the input; the input UI must run under the strict CSP with Trusted
// Types. build/web (scripts/build-web) in headless Chromium, served by serve.mjs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { startServer, CHROMIUM, CHROMIUM_ARGS } from "./serve.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const WEB = path.join(ROOT, "build", "web");
const require = createRequire(path.join(ROOT, "web", "package.json"));
const { chromium } = require("playwright-core");

let browser;
let A; // the runtime's origin, frameable by B
let B; // the embedder (another origin), like a Streamlit page

before(async () => {
  assert.ok(fs.existsSync(path.join(WEB, "sandbox.js")), "build/web is missing: run scripts/build-web");
  B = await startServer({ root: WEB, isolate: false, csp: false });
  A = await startServer({ root: WEB, frameAncestors: [B.origin] });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [...CHROMIUM_ARGS],
  });
});

after(async () => {
  await browser?.close();
  await Promise.all([A?.close(), B?.close()]);
});

/** A page on B that frames A's sandbox in input mode; records what B's own JS context receives. */
async function embed(report) {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const violations = [];
  await context.exposeBinding("__violation", ({ frame }, v) => violations.push({ where: frame?.url(), ...v }));
  await context.addInitScript(() => {
    addEventListener("securitypolicyviolation", (e) => globalThis.__violation?.({ directive: e.effectiveDirective, sample: e.sample }));
  });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error" || /Trusted Type|Content Security Policy/i.test(m.text())) errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${B.origin}/__test/blank.html`);
  const opened = await page.evaluate(async ({ src, report }) => {
    globalThis.__seen = { messages: [], pointer: 0, results: [] };
    addEventListener("message", (e) => globalThis.__seen.messages.push({ type: e.data?.type, keys: Object.keys(e.data ?? {}).sort() }), true);
    for (const t of ["pointerdown", "pointermove", "pointerup"]) addEventListener(t, () => globalThis.__seen.pointer++, true);
    const { SecureContext } = await import("/secure-context.js");
    const frame = document.createElement("iframe");
    frame.setAttribute("sandbox", "allow-scripts allow-same-origin");
    frame.setAttribute("allow", "cross-origin-isolated");
    frame.style.cssText = "width: 600px; height: 260px";
    frame.src = src;
    document.body.append(frame);
    try {
      globalThis.__ctx = await SecureContext.open({
        frame, model: "digits", requireIsolation: true, input: { report },
        onInput: (r) => globalThis.__seen.results.push({ keys: Object.keys(r).sort(), outputs: Object.keys(r.outputs), typed: r.outputs.probabilities?.data?.constructor?.name, n: r.outputs.probabilities?.data?.length, seq: r.seq }),
      });
      return { ok: true };
    } catch (e) {
      return { ok: false, code: e.code, message: e.message };
    }
  }, { src: `${A.origin}/sandbox.html?parents=${encodeURIComponent(B.origin)}`, report });
  assert.deepEqual(opened, { ok: true });
  const frame = page.frames().find((f) => f.url().startsWith(`${A.origin}/sandbox.html`));
  await frame.locator('[data-role="pad"]').waitFor({ timeout: 20000 });
  return { context, page, frame, violations, errors };
}

async function drawOne(page, frame) {
  const b = await frame.locator('[data-role="pad"]').boundingBox();
  await page.mouse.move(b.x + b.width * 0.5, b.y + b.height * 0.15);
  await page.mouse.down();
  for (let i = 1; i <= 12; i++) await page.mouse.move(b.x + b.width * 0.5, b.y + b.height * (0.15 + 0.7 * i / 12));
  await page.mouse.up();
  await frame.locator('[data-role="input"][data-runs="1"]').waitFor({ timeout: 20000 });
}

test("report: true: the embedder gets outputs only, when the user sends them; none of the pointer events", async () => {
  const { context, page, frame, violations, errors } = await embed(true);
  try {
    const statusBefore = await page.evaluate(() => globalThis.__ctx.status());
    await drawOne(page, frame);
    assert.match(await frame.locator('[data-role="result"]').innerText(), /^probabilities: 1 \(/);
    // A stroke runs in the frame and posts nothing, not even its timing; status does not count it.
    await page.waitForTimeout(300);
    const quiet = await page.evaluate(() => globalThis.__seen.messages.filter((m) => m.type === "input-result").length);
    assert.equal(quiet, 0, "a stroke posted to the embedder");
    const statusAfter = await page.evaluate(() => globalThis.__ctx.status());
    assert.deepEqual(statusAfter.counters, statusBefore.counters, "status reveals the user's runs");
    // The parent cannot run (or cancel) on the user's engine in input mode.
    const refused = await page.evaluate(async () => {
      try {
        await globalThis.__ctx.run({ input: { data: new Float32Array(64), shape: [1, 1, 8, 8] } });
        return null;
      } catch (e) {
        return e.code;
      }
    });
    assert.equal(refused, "invalid-state");
    await frame.locator('[data-role="send"]').click();
    const seen = await page.evaluate(async () => {
      for (let i = 0; i < 100 && globalThis.__seen.results.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      return globalThis.__seen;
    });
    assert.deepEqual(seen.results, [{ keys: ["outputs", "seq"], outputs: ["probabilities"], typed: "Float32Array", n: 10, seq: 1 }]);
    const inputResults = seen.messages.filter((m) => m.type === "input-result");
    assert.deepEqual(inputResults, [{ type: "input-result", keys: ["id", "outputs", "seq", "type", "v"] }]);
    assert.ok(await frame.locator('[data-role="send"]').isDisabled(), "a result is sent once");
    assert.equal(seen.pointer, 0, "the embedder saw pointer events of the drawing");
    // The embedder cannot read the frame's document.
    assert.equal(await page.evaluate(() => { try { return document.querySelector("iframe").contentWindow.document !== undefined; } catch { return false; } }), false);
    // A forged input-result from another window is dropped and counted, not delivered.
    const after = await page.evaluate(async () => {
      const before = (await globalThis.__ctx.status()).client.dropped;
      postMessage({ v: 1, type: "input-result", id: 1, seq: 99, outputs: { probabilities: { data: new Float32Array(10), shape: [1, 10] } } }, location.origin);
      await new Promise((r) => setTimeout(r, 200));
      return { dropped: (await globalThis.__ctx.status()).client.dropped - before, results: globalThis.__seen.results.length };
    });
    assert.deepEqual(after, { dropped: 1, results: 1 });
    assert.deepEqual(violations, []);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("report: false: the input runs in the frame and nothing is posted to the embedder", async () => {
  const { context, page, frame, violations, errors } = await embed(false);
  try {
    await drawOne(page, frame);
    assert.match(await frame.locator('[data-role="result"]').innerText(), /^probabilities: 1 \(/);
    assert.match(await frame.locator(".in-note").innerText(), /nothing is sent to the app/);
    await page.waitForTimeout(300);
    const seen = await page.evaluate(() => globalThis.__seen);
    assert.deepEqual(seen.results, []);
    assert.deepEqual(seen.messages.filter((m) => m.type === "input-result"), []);
    const status = await page.evaluate(() => globalThis.__ctx.status());
    assert.equal(await frame.locator('[data-role="input"]').getAttribute("data-runs"), "1", "the run happened in the sandbox");
    assert.equal(status.counters.runs, 0, "status reveals the user's run");
    assert.equal(await frame.locator('[data-role="send"]').count(), 0, "nothing to send with report: false");
    assert.deepEqual(violations, []);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("a bad init.input is rejected with bad-message", async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${B.origin}/__test/blank.html`);
    const replies = await page.evaluate(async (src) => {
      const out = [];
      for (const input of [{ report: "yes" }, { report: true, echo: true }, [true]]) {
        const frame = document.createElement("iframe");
        frame.setAttribute("sandbox", "allow-scripts allow-same-origin");
        frame.src = src;
        const hello = new Promise((r) => addEventListener("message", function on(e) {
          if (e.source === frame.contentWindow && e.data?.type === "hello") { removeEventListener("message", on); r(); }
        }));
        document.body.append(frame);
        await hello;
        const reply = new Promise((r) => addEventListener("message", function on(e) {
          if (e.source === frame.contentWindow && e.data?.id === 7) { removeEventListener("message", on); r(e.data); }
        }));
        frame.contentWindow.postMessage({ v: 1, type: "init", id: 7, model: "digits", input }, new URL(src).origin);
        const r = await reply;
        out.push({ type: r.type, code: r.code, message: r.message });
        frame.remove();
      }
      return out;
    }, `${A.origin}/sandbox.html?parents=${encodeURIComponent(B.origin)}`);
    assert.deepEqual(replies, [
      { type: "error", code: "bad-message", message: "init.input.report must be a boolean" },
      { type: "error", code: "bad-message", message: 'init.input: unexpected field "echo"' },
      { type: "error", code: "bad-message", message: "init.input must be an object {report: boolean}" },
    ]);
  } finally {
    await context.close();
  }
});
