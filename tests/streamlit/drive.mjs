#!/usr/bin/env node
// Drives a running Streamlit app in Debian's headless Chromium (playwright-core from web/).
//   node tests/streamlit/drive.mjs <scenario> <url> [screenshot.png]
// Prints one JSON object: what the page shows. Scenarios:
//   data     wait for the launcher to run the data-mode inference and Python to print it
//   draw     draw a stroke on the client-only pad and wait for Python's answer
//   error    wait for an exception / refusal message and return its text
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "..", "web", "package.json"));
const { chromium } = require("playwright-core");

const [scenario, url, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", ...JSON.parse(process.env.CHROMIUM_EXTRA_ARGS ?? "[]")],
});
const out = { scenario, url, console: [], pageErrors: [], requests: [] };
const deadline = Number(process.env.DRIVE_TIMEOUT_MS ?? 60000);
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1400 } });
  page.on("console", (m) => out.console.length < 20 && out.console.push(`${m.type()}: ${m.text()}`.slice(0, 400)));
  page.on("pageerror", (e) => out.pageErrors.push(String(e).slice(0, 400)));
  page.on("request", (r) => { if (!r.url().startsWith(url)) out.requests.push(r.url().slice(0, 200)); });
  await page.goto(url, { waitUntil: "domcontentloaded" });
  const host = page.locator('[data-role="secure-context"]');
  if (scenario === "data") {
    await page.locator("code", { hasText: "probabilities" }).first().waitFor({ timeout: deadline });
    out.code = await page.locator("code", { hasText: "probabilities" }).first().innerText();
    out.boxes = await host.evaluateAll((els) => els.map((e) => ({ state: e.dataset.state, runs: e.dataset.runs, sha256: e.dataset.sha256, text: e.innerText })));
    out.frames = await page.evaluate(() => {
      const list = [];
      const walk = (root) => {
        for (const f of root.querySelectorAll("iframe")) list.push({ src: f.src, sandbox: f.getAttribute("sandbox"), allow: f.getAttribute("allow") });
        for (const e of root.querySelectorAll("*")) if (e.shadowRoot) walk(e.shadowRoot);
      };
      walk(document);
      return list;
    });
    out.pageIsolated = await page.evaluate(() => self.crossOriginIsolated);
  } else if (scenario === "draw") {
    // let section 1 finish first: its result makes Streamlit rerun the script
    await page.locator("code", { hasText: "probabilities" }).first().waitFor({ timeout: deadline });
    await page.waitForTimeout(1000);
    await host.nth(1).locator('[data-role="model"]').filter({ hasText: "verified" }).waitFor({ timeout: deadline });
    const pad = host.nth(1).locator('[data-role="pad"]');
    const b = await pad.boundingBox();
    // a "1": one vertical stroke
    await page.mouse.move(b.x + b.width * 0.5, b.y + b.height * 0.15);
    await page.mouse.down();
    for (let i = 1; i <= 12; i++) await page.mouse.move(b.x + b.width * 0.5, b.y + b.height * (0.15 + 0.7 * i / 12));
    await page.mouse.up();
    try {
      await page.getByText("You drew a").waitFor({ timeout: deadline });
    } catch (e) {
      out.launcher = await host.nth(1).innerText();
      throw e;
    }
    out.drawn = await page.getByText("You drew a").innerText();
    out.launcher = await host.nth(1).innerText();
  } else if (scenario === "error") {
    const sel = page.locator('[data-testid="stException"], [data-testid="stAlert"], [data-role="error"]:not([hidden])')
      .filter({ hasText: /secure-context refused|SecurityConfigError|ModelPathError|InferenceParamsError|Error/ });
    await sel.first().waitFor({ timeout: deadline });
    await page.waitForTimeout(500);
    out.errors = await sel.allInnerTexts();
  }
  if (shot) await page.screenshot({ path: shot, fullPage: true });
} catch (e) {
  out.failure = String(e?.message ?? e).slice(0, 2000);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
