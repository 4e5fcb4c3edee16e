// The demo in headless Chromium, served by the edge app (`secure-context serve`, what
// scripts/up runs) instead of the test-only tests/browser/serve.mjs: the runtime must work
// under the production header policy (Permissions-Policy, compressed engine, HSTS, ...):
// ready, cross-origin isolated in page, iframe and worker, model verified, zero CSP
// violations, no console errors. Skipped when Chromium is not installed.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { after, before, test } from "node:test";
import { ROOT, startEdge } from "./lib.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const HAVE = fs.existsSync(CHROMIUM) && fs.existsSync(path.join(ROOT, "web/node_modules/playwright-core"));

let edge;
let browser;
before(async () => {
  if (!HAVE) return;
  const require = createRequire(path.join(ROOT, "web", "package.json"));
  const { chromium } = require("playwright-core");
  edge = await startEdge();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update"],
  });
});
after(async () => {
  await browser?.close();
  await edge?.stop();
});

test("demo under the edge app: ready, isolated everywhere, verified, no CSP violations", { skip: !HAVE && "no Chromium" }, async () => {
  const context = await browser.newContext();
  const violations = [];
  const problems = [];
  const encodings = {};
  await context.exposeBinding("__reportViolation", ({ frame }, v) => violations.push({ where: frame?.url(), ...v }));
  await context.addInitScript(() => {
    addEventListener("securitypolicyviolation", (e) => globalThis.__reportViolation?.({ directive: e.effectiveDirective, blocked: e.blockedURI }));
  });
  context.on("response", async (r) => {
    encodings[new URL(r.url()).pathname] = (await r.allHeaders())["content-encoding"] ?? "identity";
  });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (/Content Security Policy|Trusted Type|Refused to|Permissions-Policy|Unrecognized feature/i.test(m.text())) violations.push({ where: "console", text: m.text() });
    if (m.type() === "error") problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  await page.goto(`${edge.origin}/`);
  await page.waitForFunction(() => document.body.dataset.state, null, { timeout: 60000 });
  assert.equal(await page.evaluate(() => document.body.dataset.state), "ready", await page.evaluate(() => document.getElementById("error")?.textContent));

  const probe = () => globalThis.crossOriginIsolated;
  const frame = page.frames().find((f) => new URL(f.url()).pathname === "/sandbox.html");
  assert.ok(frame, "sandbox iframe");
  let worker;
  for (let i = 0; i < 200 && !worker; i++) {
    worker = page.workers().find((w) => w.url().startsWith("blob:")); // started from the verified worker.js
    if (!worker) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(worker, "engine worker");
  assert.equal(await page.evaluate(probe), true, "page");
  assert.equal(await frame.evaluate(probe), true, "iframe");
  assert.equal(await worker.evaluate(probe), true, "worker");
  const status = JSON.parse(await page.evaluate(() => document.body.dataset.status));
  assert.equal(status.mode, "isolated");
  assert.equal(status.verified, true);

  const wasm = Object.keys(encodings).find((p) => p.endsWith(".wasm"));
  assert.ok(wasm, "the engine's core wasm was fetched");
  assert.equal(encodings[wasm], "br", "the engine travels brotli-compressed");
  assert.deepEqual(violations, []);
  assert.deepEqual(problems, []);
  await context.close();
});
