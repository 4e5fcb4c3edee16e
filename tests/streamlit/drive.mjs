#!/usr/bin/env node
// Drives a running Streamlit app in Debian's headless Chromium (playwright-core from web/).
//   node tests/streamlit/drive.mjs <scenario> <url> [screenshot.png]
// Prints one JSON object: what the page shows. Scenarios:
//   data     wait for the launcher to run the data-mode inference and Python to print it
//   draw     draw a stroke on the client-only pad (inside the framed sandbox document of the
//            serving origin) and wait for Python's answer
//   file     pick $DRIVE_PRIVATE's file in that frame (through the browser's file chooser) and
//            wait for Python's answer; then search the Streamlit page's DOM, every message it
//            received, every request of the browser and every websocket frame for the file's
//            name and values ($DRIVE_PRIVATE: {file, strings: [...], hex: [...]}).
//   text     examples/pii_demo.py: type $DRIVE_PRIVATE's text ({text, strings, hex}) into the
//            frame's text box, run, wait for Python's answer, then search like `file` does
//   image    examples/image_demo.py: pick $DRIVE_PRIVATE's image ({file, strings, hex}) in the frame,
//            press Send, wait for Python's answer (the text $DRIVE_PYTHON_TEXT, default "Person
//            mask:"), then search like `file` does
//   camera   examples/camera_demo.py (Chromium with a fake camera, CHROMIUM_EXTRA_ARGS): press Start in
//            the frame, wait for Python's answers for a few seconds, then search like `file` does
//   audio    examples/audio_demo.py: pick $DRIVE_PRIVATE's recording ({file, strings, hex}) in the frame,
//            press Send, wait for Python's answer, then search like `file` does
//   microphone examples/audio_demo.py?source=microphone (Chromium with a fake microphone,
//            CHROMIUM_EXTRA_ARGS): press Start in the frame, wait for Python's answers for a few
//            seconds, then search like `file` does
//   silent   tests/streamlit/app_checks.py?case=silent (return_result=False): draw in the first
//            box's frame, wait for the frame's own result, report what reached the page
//   error    wait for an exception / refusal message and return its text
// draw and file also report what the Streamlit page itself saw ("privacy"): the messages it
// received from the sandbox (types, keys), pointer events, and whether it can read the frame.
import fs from "node:fs";
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
const imageAnswer = process.env.DRIVE_PYTHON_TEXT ?? "Person mask:";
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 1400 } });
  const seen = { requests: [], ws: [], console: [] };
  const streamlitOrigin = new URL(url).origin;
  // What the Streamlit page's own JS context gets: every message event and pointer event,
  // recorded before any app code runs (capture phase, first listener). Frames of other
  // origins (the sandbox) are left alone.
  await context.addInitScript((origin) => {
    if (location.origin !== origin || window.top !== window) return;
    const log = (globalThis.__scSeen = { messages: [], pointer: 0, keys: 0 });
    const plain = (v, depth = 0) => {
      if (ArrayBuffer.isView(v)) return { typed: v.constructor.name, values: Array.from(v) };
      if (Array.isArray(v)) return v.map((x) => plain(x, depth + 1));
      if (v && typeof v === "object" && depth < 8) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x, depth + 1)]));
      return v;
    };
    // Which window sent each message (a page can hold several frames of the runtime: the data-mode
    // one is offered a direct port, the input-mode one must not be).
    const sources = new Map();
    log.sourceOf = (w) => (sources.has(w) ? sources.get(w) : -1);
    addEventListener("message", (e) => {
      if (!sources.has(e.source)) sources.set(e.source, sources.size);
      const src = sources.get(e.source);
      try { log.messages.push({ origin: e.origin, src, data: plain(e.data) }); } catch { log.messages.push({ origin: e.origin, src, data: "<unserializable>" }); }
    }, true);
    for (const t of ["pointerdown", "pointermove", "pointerup", "mousedown", "mousemove", "mouseup"]) addEventListener(t, () => { log.pointer++; }, true);
    for (const t of ["keydown", "keyup", "keypress", "input", "paste"]) addEventListener(t, () => { log.keys++; }, true);
  }, streamlitOrigin);
  const page = await context.newPage();
  page.on("console", (m) => { seen.console.push(m.text()); out.console.length < 20 && out.console.push(`${m.type()}: ${m.text()}`.slice(0, 400)); });
  page.on("pageerror", (e) => out.pageErrors.push(String(e).slice(0, 400)));
  page.on("request", (r) => { if (!r.url().startsWith(url)) out.requests.push(r.url().slice(0, 200)); });
  // Every request of the browser (page, frames, workers): URL, headers and body.
  context.on("request", (r) => seen.requests.push({ url: r.url(), method: r.method(), headers: JSON.stringify(r.headers()), body: r.postDataBuffer() ?? Buffer.alloc(0) }));
  // The headers the browser got with each sandbox document (which server's policy applied).
  out.sandboxResponses = [];
  context.on("response", async (r) => {
    if (new URL(r.url()).pathname.endsWith("/sandbox.html")) out.sandboxResponses.push({ url: r.url(), status: r.status(), headers: await r.allHeaders() });
  });
  page.on("websocket", (ws) => {
    const keep = (dir) => (f) => seen.ws.push({ dir, data: Buffer.isBuffer(f.payload) ? f.payload : Buffer.from(String(f.payload)) });
    ws.on("framesent", keep("sent"));
    ws.on("framereceived", keep("received"));
  });
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
  } else if (scenario === "draw" || scenario === "file" || scenario === "silent" || scenario === "text" || scenario === "image" || scenario === "camera" || scenario === "audio" || scenario === "microphone") {
    if (scenario === "draw" || scenario === "file") {
      // let section 1 finish first: its result makes Streamlit rerun the script
      await page.locator("code", { hasText: "probabilities" }).first().waitFor({ timeout: deadline });
      await page.waitForTimeout(1000);
    }
    const box = host.nth(scenario === "draw" || scenario === "file" ? 1 : 0);
    await box.locator('[data-role="model"]').filter({ hasText: "verified" }).waitFor({ timeout: deadline });
    // The input UI is in the sandbox document, not in the page.
    out.inputUiInPage = await box.evaluate((e) => e.querySelectorAll("canvas, input, button").length);
    const frameEl = box.locator("iframe.sc-frame-input");
    out.inputFrameSrc = await frameEl.getAttribute("src");
    const frame = await (await frameEl.elementHandle()).contentFrame();
    const inFrame = frame.locator('[data-role="input"]');
    await inFrame.waitFor({ timeout: deadline });
    const before = await page.evaluate(() => globalThis.__scSeen.pointer);
    const keysBefore = await page.evaluate(() => globalThis.__scSeen.keys);
    const requestsBefore = seen.requests.length;
    const wsBefore = seen.ws.filter((f) => f.dir === "sent").length;
    if (scenario === "draw" || scenario === "silent") {
      const b = await frame.locator('[data-role="pad"]').boundingBox();
      // a "1": one vertical stroke
      await page.mouse.move(b.x + b.width * 0.5, b.y + b.height * 0.15);
      await page.mouse.down();
      for (let i = 1; i <= 12; i++) await page.mouse.move(b.x + b.width * 0.5, b.y + b.height * (0.15 + 0.7 * i / 12));
      await page.mouse.up();
    } else if (scenario === "camera" || scenario === "microphone") {
      out.frameAllow = await frameEl.getAttribute("allow");
      await frame.locator(`[data-role="${scenario}-start"]`).click();
    } else if (scenario === "text") {
      const priv = JSON.parse(fs.readFileSync(process.env.DRIVE_PRIVATE, "utf8"));
      const area = frame.locator('[data-role="text"]');
      await area.fill(priv.text.slice(0, -12));
      await area.pressSequentially(priv.text.slice(-12)); // real key events for the tail
      await frame.locator('[data-role="run"]').click();
    } else {
      const priv = JSON.parse(fs.readFileSync(process.env.DRIVE_PRIVATE, "utf8"));
      // a real click on the picker in the frame must open the browser's file chooser
      const [chooser] = await Promise.all([page.waitForEvent("filechooser", { timeout: deadline }), frame.locator('[data-role="file"]').click()]);
      out.chooserInFrame = chooser.element() ? await chooser.element().evaluate((e) => location.origin) : null;
      await chooser.setFiles(priv.file);
    }
    try {
      if (scenario === "camera") {
        await page.getByText("Camera person mask:").waitFor({ timeout: deadline });
        await page.waitForTimeout(3000); // a few more results, at the app's rate
        await frame.locator('[data-role="camera-stop"]').click();
        await page.waitForTimeout(500); // a frame in flight is dropped, not sent, once stopped
        out.pythonSaw = await page.getByText("Camera person mask:").innerText();
        out.frames = Number(await frame.locator('[data-role="input"]').getAttribute("data-frames"));
        out.sent = Number(await frame.locator('[data-role="input"]').getAttribute("data-sent"));
      } else if (scenario === "microphone") {
        await page.getByText("Speech heard:").waitFor({ timeout: deadline });
        await page.waitForTimeout(3000); // a few more results, at the app's rate
        await frame.locator('[data-role="microphone-stop"]').click();
        await page.waitForTimeout(500);
        out.pythonSaw = await page.getByText("Speech heard:").innerText();
        out.windows = Number(await frame.locator('[data-role="input"]').getAttribute("data-windows"));
        out.sent = Number(await frame.locator('[data-role="input"]').getAttribute("data-sent"));
      } else await frame.locator('[data-role="input"][data-runs="1"]').waitFor({ timeout: deadline });
      // Nothing leaves the frame until the user sends the result (there is no Send when silent).
      if (scenario !== "silent" && scenario !== "camera" && scenario !== "microphone") await frame.locator('[data-role="send"]').click({ timeout: deadline });
      if (scenario === "text") await page.getByText("Tokens flagged").waitFor({ timeout: deadline });
      else if (scenario === "image") await page.getByText(imageAnswer).waitFor({ timeout: deadline });
      else if (scenario === "audio") await page.getByText(/^Speech in \d+ of/).waitFor({ timeout: deadline });
      else if (scenario === "camera" || scenario === "microphone") { /* waited above */ }
      else if (scenario !== "silent") await page.getByText("You drew a").waitFor({ timeout: deadline });
    } catch (e) {
      out.launcher = await box.innerText();
      throw e;
    }
    await page.waitForTimeout(scenario === "silent" ? 1500 : 500);
    if (scenario === "silent") {
      out.pythonSaw = await page.getByText("silent result:").innerText();
      out.wsSentAfterInput = seen.ws.filter((f) => f.dir === "sent").length - wsBefore;
    } else if (scenario === "image") {
      out.pythonSaw = await page.getByText(imageAnswer).innerText();
    } else if (scenario === "audio") {
      out.pythonSaw = await page.getByText(/^Speech in \d+ of/).innerText();
    } else if (scenario === "camera" || scenario === "microphone") {
      /* read above, before Stop */
    } else if (scenario === "text") {
      out.flagged = await page.getByText("Tokens flagged").innerText();
      out.frameEntities = await frame.locator('[data-role="input"]').getAttribute("data-entities");
    } else {
      out.drawn = await page.getByText("You drew a").innerText();
      out.code = await page.locator("code", { hasText: "result_of_your_input" }).first().innerText();
    }
    out.launcher = await box.innerText();
    out.frameResult = await frame.locator('[data-role="result"]').innerText();
    out.frameRuns = await frame.locator('[data-role="input"]').getAttribute("data-runs");
    const pageSeen = await page.evaluate(() => { const { messages, pointer, keys } = globalThis.__scSeen; return { messages, pointer, keys }; });
    const inputFrameSource = await frameEl.evaluate((f) => globalThis.__scSeen.sourceOf(f.contentWindow));
    const sandboxOrigin = new URL(out.inputFrameSrc).origin;
    // What the input-mode frame sent this page (a data-mode frame on the same page is another sender).
    const fromSandbox = pageSeen.messages.filter((m) => m.origin === sandboxOrigin && m.src === inputFrameSource);
    out.privacy = {
      pointerEventsInPageWhileInputting: pageSeen.pointer - before,
      keyEventsInPageWhileInputting: pageSeen.keys - keysBefore,
      // the page cannot reach into the frame's document
      pageCanReadFrame: await frameEl.evaluate((f) => { try { return f.contentDocument !== null || !!f.contentWindow.document; } catch { return false; } }),
      sandboxMessageTypes: [...new Set(fromSandbox.map((m) => m.data?.type))].sort(),
      inputResults: fromSandbox.filter((m) => m.data?.type === "input-result").map((m) => ({
        keys: Object.keys(m.data).sort(),
        outputs: Object.fromEntries(Object.entries(m.data.outputs ?? {}).map(([k, o]) => [k, { keys: Object.keys(o).sort(), typed: o.data?.typed, length: o.data?.values?.length, shape: o.shape }])),
        ...(m.data.result ? { result: { keys: Object.keys(m.data.result).sort(), kind: m.data.result.kind, typed: m.data.result.mask?.typed } } : {}),
      })),
      requestsAfterInput: seen.requests.slice(requestsBefore).map((r) => `${r.method} ${r.url}`),
      websocketFrames: seen.ws.length,
    };
    if (scenario === "file" || scenario === "text" || scenario === "image" || scenario === "camera" || scenario === "audio" || scenario === "microphone") {
      const priv = JSON.parse(fs.readFileSync(process.env.DRIVE_PRIVATE, "utf8"));
      const dom = await page.evaluate(() => {
        const parts = [];
        const walk = (root) => {
          for (const e of root.querySelectorAll("*")) {
            if ("value" in e && typeof e.value === "string") parts.push(e.value);
            if (e.shadowRoot) { parts.push(e.shadowRoot.innerHTML); walk(e.shadowRoot); }
          }
        };
        parts.push(document.documentElement.outerHTML);
        walk(document);
        return parts.join("\n");
      });
      const texts = {
        "page DOM": dom,
        "messages to the page": JSON.stringify(pageSeen.messages),
        "page console": seen.console.join("\n"),
        "request URLs and headers": seen.requests.map((r) => `${r.method} ${r.url} ${r.headers}`).join("\n"),
      };
      const binaries = {
        "request bodies": Buffer.concat(seen.requests.map((r) => r.body)),
        "websocket frames": Buffer.concat(seen.ws.map((f) => f.data)),
      };
      const leaks = [];
      for (const [where, text] of Object.entries(texts)) for (const m of priv.strings) if (text.includes(m)) leaks.push(`${where}: ${m}`);
      for (const [where, buf] of Object.entries(binaries)) {
        for (const m of priv.strings) if (buf.includes(Buffer.from(m))) leaks.push(`${where}: ${m}`);
        for (const h of priv.hex) if (buf.includes(Buffer.from(h, "hex"))) leaks.push(`${where}: bytes ${h}`);
      }
      out.privacy.searched = { markers: priv.strings.length + priv.hex.length, textBytes: Object.values(texts).reduce((a, t) => a + t.length, 0),
        binaryBytes: Object.values(binaries).reduce((a, b) => a + b.length, 0), requests: seen.requests.length, websocketFrames: seen.ws.length };
      out.privacy.leaks = leaks;
      // Positive controls (the result's values): the same search must find them where the result goes.
      out.privacy.controls = Object.fromEntries((priv.controls ?? []).map((m) => [m,
        [...Object.entries(texts).filter(([, t]) => t.includes(m)).map(([w]) => w),
          ...Object.entries(binaries).filter(([, b]) => b.includes(Buffer.from(m))).map(([w]) => w)]]));
    }
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
