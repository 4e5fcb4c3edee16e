// A model's declared pre- and post-processing applied in the sandbox (issue #16.2): MediaPipe's
// selfie segmentation (a real third-party model; its manifest entry declares
// preprocess {kind: image, size [256, 256], layout nhwc} and postprocess {kind: mask}) in input
// mode, framed by a page of another origin. The user picks an image file in the frame; the
// frame decodes it, makes the tensor, runs the engine, thresholds the mask and draws it; on Send
// the embedder gets the outputs and the mask, never the image.
//
// Oracle: tests/browser/image_oracle.py does the same steps with Pillow (BILINEAR on float
// planes), numpy and LiteRT's reference kernels on the same decoded pixels (three real
// photographs saved as plain PNGs, so the browser and Pillow decode identical values).
// Tolerance: the probabilities within 2.5e-4 absolute (measured: 6.4e-5 at worst over the three
// photographs, printed by the test; the engine alone vs LiteRT on this model is ~5e-7 on random
// inputs in tests/models), and a mask pixel may differ only where LiteRT's probability is within
// that of the threshold (measured: no pixel differs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { startServer, CHROMIUM, CHROMIUM_ARGS } from "./serve.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const WEB = path.join(ROOT, "build", "web");
const require = createRequire(path.join(ROOT, "web", "package.json"));
const { chromium } = require("playwright-core");
const MODEL = "selfie";
const PROB_TOL = 2.5e-4;

let browser, A, B, refDir, ref;

before(async () => {
  assert.ok(fs.existsSync(path.join(WEB, "models", "selfie_segmentation.tflite")), "build/web lacks the selfie model: run scripts/build-web");
  refDir = fs.mkdtempSync(path.join(ROOT, "tests", "artifacts", "image-input-"));
  execFileSync("python3", [path.join(ROOT, "tests", "browser", "image_oracle.py"), MODEL, refDir], { stdio: "inherit" });
  ref = JSON.parse(fs.readFileSync(path.join(refDir, "reference.json"), "utf8"));
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
  if (refDir) fs.rmSync(refDir, { recursive: true, force: true });
});

const f32 = (b64) => { const b = Buffer.from(b64, "base64"); return new Float32Array(b.buffer, b.byteOffset, b.length / 4); };

test("an image file picked in the sandbox: tensor, engine and mask as Pillow + LiteRT do them; the embedder gets outputs only", async () => {
  const context = await browser.newContext({ viewport: { width: 900, height: 800 } });
  const violations = [];
  await context.exposeBinding("__violation", ({ frame }, v) => violations.push({ where: frame?.url(), ...v }));
  await context.addInitScript(() => {
    addEventListener("securitypolicyviolation", (e) => globalThis.__violation?.({ directive: e.effectiveDirective, sample: e.sample }));
  });
  try {
    const page = await context.newPage();
    const errors = [];
    page.on("console", (m) => { if (m.type() === "error" || /Trusted Type|Content Security Policy/i.test(m.text())) errors.push(m.text()); });
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${B.origin}/__test/blank.html`);
    const opened = await page.evaluate(async ({ src, model }) => {
      globalThis.__seen = { messages: [], results: [] };
      addEventListener("message", (e) => globalThis.__seen.messages.push({ type: e.data?.type, keys: Object.keys(e.data ?? {}).sort() }), true);
      const { SecureContext } = await import("/secure-context.js");
      const frame = document.createElement("iframe");
      frame.setAttribute("sandbox", "allow-scripts allow-same-origin");
      frame.setAttribute("allow", "cross-origin-isolated");
      frame.style.cssText = "width: 700px; height: 500px";
      frame.src = src;
      document.body.append(frame);
      try {
        globalThis.__ctx = await SecureContext.open({
          frame, model, requireIsolation: true, input: { report: true },
          onInput: (r) => globalThis.__seen.results.push({
            keys: Object.keys(r).sort(), seq: r.seq,
            outputs: Object.fromEntries(Object.entries(r.outputs).map(([k, v]) => [k, { shape: v.shape, data: Array.from(v.data) }])),
            result: r.result && { ...r.result, mask: r.result.mask && Array.from(r.result.mask), typed: r.result.mask?.constructor?.name },
          }),
        });
        return { ok: true, model: globalThis.__ctx.model };
      } catch (e) {
        return { ok: false, code: e.code, message: e.message };
      }
    }, { src: `${A.origin}/sandbox.html?parents=${encodeURIComponent(B.origin)}`, model: MODEL });
    assert.equal(opened.ok, true, JSON.stringify(opened));
    const frame = page.frames().find((f) => f.url().startsWith(`${A.origin}/sandbox.html`));
    const pick = frame.locator('[data-role="file"]');
    await pick.waitFor({ state: "attached", timeout: 30000 });
    assert.equal(await pick.getAttribute("accept"), "image/*");

    const worst = { prob: 0, maskDiff: 0 };
    for (const [i, img] of ref.images.entries()) {
      await pick.setInputFiles(path.join(refDir, img.file));
      await frame.locator(`[data-role="input"][data-runs="${i + 1}"]`).waitFor({ timeout: 60000 });
      assert.match(await frame.locator('[data-role="result"]').innerText(), /^mask 256×256: \d+\.\d% foreground$/);
      // Nothing is posted until Send.
      assert.equal(await page.evaluate(() => globalThis.__seen.results.length), i);
      await frame.locator('[data-role="send"]').click();
      const got = await page.evaluate(async (n) => {
        for (let k = 0; k < 200 && globalThis.__seen.results.length < n; k++) await new Promise((r) => setTimeout(r, 20));
        return globalThis.__seen.results[n - 1];
      }, i + 1);
      assert.ok(got, `no input-result for ${img.file}`);
      assert.deepEqual(got.keys, ["outputs", "result", "seq"]);
      assert.equal(got.seq, i + 1);
      assert.deepEqual(Object.keys(got.outputs), Object.keys(img.outputs));
      let maxProb = 0;
      let probAt = null;
      for (const [name, o] of Object.entries(img.outputs)) {
        assert.deepEqual(got.outputs[name].shape, o.shape);
        const want = f32(o.data);
        const have = got.outputs[name].data;
        for (let k = 0; k < want.length; k++) maxProb = Math.max(maxProb, Math.abs(have[k] - want[k]));
        probAt = want;
      }
      assert.ok(maxProb <= PROB_TOL, `${img.file}: outputs differ from LiteRT by ${maxProb} > ${PROB_TOL}`);
      assert.equal(got.result.kind, "mask");
      assert.equal(got.result.typed, "Uint8Array");
      assert.deepEqual([got.result.width, got.result.height], [img.result.width, img.result.height]);
      let differ = 0;
      for (let k = 0; k < img.result.mask.length; k++) {
        if (got.result.mask[k] === img.result.mask[k]) continue;
        differ++;
        assert.ok(Math.abs(probAt[k] - 0.5) <= PROB_TOL, `${img.file}: mask pixel ${k} differs where LiteRT's probability is ${probAt[k]}`);
      }
      worst.prob = Math.max(worst.prob, maxProb);
      worst.maskDiff = Math.max(worst.maskDiff, differ);
    }
    // The person is found: grace_hopper (a portrait) is mostly foreground, china (a temple) none.
    const share = (r) => r.mask.reduce((a, b) => a + b, 0) / r.mask.length;
    const seen = await page.evaluate(() => globalThis.__seen);
    assert.ok(share(seen.results[0].result) > 0.4, "the portrait's mask is mostly empty");
    console.log(`# selfie vs Pillow + LiteRT on ${ref.images.length} photographs: max |prob diff| ${worst.prob.toExponential(2)}, mask pixels differing (worst image) ${worst.maskDiff}`);
    // The embedder saw input-results (outputs and result) and the usual replies, nothing else.
    const inputResults = seen.messages.filter((m) => m.type === "input-result");
    assert.equal(inputResults.length, ref.images.length);
    for (const m of inputResults) assert.deepEqual(m.keys, ["id", "outputs", "result", "seq", "type", "v"]);
    assert.equal(await page.evaluate(() => { try { return document.querySelector("iframe").contentWindow.document !== undefined; } catch { return false; } }), false);
    assert.deepEqual(violations, []);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("a file that is not an image is refused in the frame with a clear message, and nothing is posted", async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${B.origin}/__test/blank.html`);
    await page.evaluate(async ({ src, model }) => {
      globalThis.__results = 0;
      const { SecureContext } = await import("/secure-context.js");
      const frame = document.createElement("iframe");
      frame.setAttribute("sandbox", "allow-scripts allow-same-origin");
      frame.setAttribute("allow", "cross-origin-isolated");
      frame.src = src;
      document.body.append(frame);
      await SecureContext.open({ frame, model, input: { report: true }, onInput: () => globalThis.__results++ });
    }, { src: `${A.origin}/sandbox.html?parents=${encodeURIComponent(B.origin)}`, model: MODEL });
    const frame = page.frames().find((f) => f.url().startsWith(`${A.origin}/sandbox.html`));
    await frame.locator('[data-role="file"]').setInputFiles({ name: "notes.png", mimeType: "image/png", buffer: Buffer.from("not a png at all") });
    await frame.locator('[data-role="input"][data-state="error"]').waitFor({ timeout: 20000 });
    assert.equal(await frame.locator('[data-role="result"]').innerText(), "cannot use this image: not an image this browser can decode");
    assert.ok(await frame.locator('[data-role="send"]').isDisabled());
    assert.equal(await page.evaluate(() => globalThis.__results), 0);
  } finally {
    await context.close();
  }
});

test("init.input.kind: a model that cannot take that kind of input is refused with what it lacks", async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${B.origin}/__test/blank.html`);
    const got = await page.evaluate(async (src) => {
      const { SecureContext } = await import("/secure-context.js");
      const out = [];
      for (const [model, kind, rate] of [["digits", "image"], ["digits", "text"], ["selfie", "pixels"], ["selfie", "image", 2], ["selfie", "camera", 100]]) {
        const frame = document.createElement("iframe");
        frame.setAttribute("sandbox", "allow-scripts allow-same-origin");
        frame.src = src;
        document.body.append(frame);
        try {
          await SecureContext.open({ frame, model, input: { report: true, kind, ...(rate ? { rate } : {}) }, onInput: () => {} });
          out.push("opened");
        } catch (e) {
          out.push(`${e.code}: ${e.message}`);
        }
        frame.remove();
      }
      return out;
    }, `${A.origin}/sandbox.html?parents=${encodeURIComponent(B.origin)}`);
    assert.match(got[0], /^invalid-argument: input kind "image": model "digits" declares no image preprocess/);
    assert.match(got[1], /^invalid-argument: input kind "text": model "digits" takes tensors/);
    assert.match(got[2], /^bad-message: init\.input\.kind must be one of tensor, image, text, camera, audio, microphone$/);
    assert.equal(got[3], 'bad-message: init.input.rate must be a number in (0, 30], with kind "camera" or "microphone"');
    assert.equal(got[4], 'bad-message: init.input.rate must be a number in (0, 30], with kind "camera" or "microphone"');
  } finally {
    await context.close();
  }
});

test("maskPlacement: where a mask of the model's input lies on the picture (crop, letterbox, stretch)", async () => {
  const { maskPlacement } = await import("../../static/sandbox-image.js");
  // 400x200 picture, model 100x100: crop resizes the shorter side to 100 (200x100) and takes
  // x 50..150 of it, i.e. x 100..300 of the picture; letterbox fits it as 100x50 at y 25.
  assert.deepEqual(maskPlacement({ size: [100, 100], resize: "crop" }, 400, 200, 100, 100),
    { sx: 0, sy: 0, sw: 100, sh: 100, dx: 100, dy: 0, dw: 200, dh: 200 });
  assert.deepEqual(maskPlacement({ size: [100, 100], resize: "letterbox" }, 400, 200, 50, 50),
    { sx: 0, sy: 12.5, sw: 50, sh: 25, dx: 0, dy: 0, dw: 400, dh: 200 });
  assert.deepEqual(maskPlacement({ size: [100, 100], resize: "stretch" }, 400, 200, 100, 100),
    { sx: 0, sy: 0, sw: 100, sh: 100, dx: 0, dy: 0, dw: 400, dh: 200 });
});
