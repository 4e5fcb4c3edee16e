#!/usr/bin/env node
// Runs the composed wasi-nn guest once in headless Chromium and prints {code, stdout, stderr,
// cspReports, demo} as JSON, for tests/bindings/test_bindings.py to judge.
//
//   node tests/bindings/browser_guest.mjs ARGS_JSON FILES_JSON [EXTRA_FILE=PATH...]
//
// Serves build/bindings/guest/web/ with the test server of tests/browser (the runtime's CSP,
// COOP/COEP); EXTRA_FILE=PATH serves the local file PATH at the url path EXTRA_FILE.
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startServer } from "../browser/serve.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
// playwright-core is installed in web/ (pinned in web/package-lock.json).
const { chromium } = createRequire(path.join(ROOT, "web", "package.json"))("playwright-core");
const WEB = path.join(ROOT, "build/bindings/guest/web");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

const [argsJson, filesJson, ...extra] = process.argv.slice(2);
const overrides = Object.fromEntries(
  extra.map((e) => {
    const eq = e.indexOf("=");
    return [e.slice(0, eq), fs.readFileSync(e.slice(eq + 1))];
  }),
);
const server = await startServer({ root: WEB, overrides });
const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
try {
  const page = await browser.newPage();
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(`${server.origin}/index.html?manual`);
  await page.waitForFunction(() => typeof window.runGuest === "function", null, { timeout: 30_000 });
  const result = await page.evaluate(([a, f]) => window.runGuest(a, f), [JSON.parse(argsJson), JSON.parse(filesJson)]);
  // The demo page as a visitor sees it (no ?manual): it runs the guest by itself.
  const demo = await browser.newPage();
  await demo.goto(`${server.origin}/index.html`);
  await demo.waitForFunction(() => !document.getElementById("out").textContent.startsWith("running"), null, {
    timeout: 60_000,
  });
  result.demo = await demo.textContent("#out");
  result.pageErrors = pageErrors;
  result.cspReports = server.cspReports;
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
  await server.close();
}
