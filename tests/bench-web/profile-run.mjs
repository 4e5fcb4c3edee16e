// Where a warm run's time goes in the browser, outside the engine (not a test): serves the bench
// site as scripts/bench-web does, opens our runtime on one model in headless Chromium (from the
// bench page, told to run no engine of its own), makes 200 warm-up runs, then records Chromium's
// CPU profile (CDP Profiler) on the page, the sandbox document (its own process) and the engine
// worker during N more runs, and prints each thread's self time per run by function, plus the
// round-trip median. Needs the bench site: scripts/bench-web (a narrowed run is enough) builds it.
//   node tests/bench-web/profile-run.mjs [SITE [EDGE]]   (default build/bench/web, build/bench/edge)
// Env: PROFILE_MODEL (digits), PROFILE_RUNS (2000), PROFILE_OUT (build/bench/profile-run: the
// .cpuprofile files, loadable in DevTools), PROFILE_INTERVAL_US (sampling interval, 50).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { startServer } from "../edge/lib.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const site = path.resolve(process.argv[2] ?? path.join(ROOT, "build/bench/web"));
const edgeDir = path.resolve(process.argv[3] ?? path.join(ROOT, "build/bench/edge"));
const MODEL = process.env.PROFILE_MODEL ?? "digits";
const RUNS = Number(process.env.PROFILE_RUNS ?? 2000);
const OUT = path.resolve(process.env.PROFILE_OUT ?? path.join(ROOT, "build/bench/profile-run"));
const INTERVAL = Number(process.env.PROFILE_INTERVAL_US ?? 50);
const EDGE_WASM = path.join(ROOT, "target/wasm32-wasip2/wasm/edge.wasm");
const require = createRequire(path.join(ROOT, "web", "package.json"));
const { chromium } = require("playwright-core");
const config = JSON.parse(fs.readFileSync(path.join(site, "bench", "config.json"), "utf8"));
const model = config.models.find((m) => m.name === MODEL);
if (!model?.shape) throw new Error(`profile-run: ${MODEL} is not a tensor model of the bench`);

const server = await startServer(["serve", "-Scli", "--dir", `${site}::/web`, "--dir", `${edgeDir}::/edge`, EDGE_WASM]);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  // Three threads: the page, the sandbox document (a sandboxed iframe: its own process) and its
  // engine worker. One browser-level session attaches to each (non-flat: playwright's session
  // cannot address child sessions, so their messages go through Target.sendMessageToTarget).
  const bs = await browser.newBrowserCDPSession();
  let seq = 1;
  const waiting = new Map();
  bs.on("Target.receivedMessageFromTarget", (ev) => {
    const m = JSON.parse(ev.message);
    if (m.id && waiting.has(m.id)) {
      waiting.get(m.id)(m);
      waiting.delete(m.id);
    }
  });
  const send = (sessionId, method, params = {}) => new Promise((resolve, reject) => {
    const id = seq++;
    waiting.set(id, (m) => (m.error ? reject(new Error(`${method}: ${m.error.message}`)) : resolve(m.result)));
    bs.send("Target.sendMessageToTarget", { sessionId, message: JSON.stringify({ id, method, params }) }).catch(reject);
  });
  await page.goto(`${server.origin}/bench/index.html?engine=none`);
  const input = Array.from({ length: model.shape.reduce((a, b) => a * b, 1) }, (_, i) => (i % 17) / 17);
  await page.evaluate(async ({ model, input }) => {
    const { SecureContext } = await import("../secure-context.js");
    const frame = document.createElement("iframe");
    frame.sandbox = "allow-scripts allow-same-origin";
    frame.allow = "cross-origin-isolated";
    frame.src = "../sandbox.html";
    document.body.append(frame);
    const ctx = await SecureContext.open({ frame, model: model.name, timeoutMs: 600000, connectTimeoutMs: 60000 });
    const feed = { [model.input]: { data: new Float32Array(input), shape: model.shape } };
    for (let i = 0; i < 200; i++) await ctx.run(feed);
    globalThis.__profile = { ctx, feed };
  }, { model, input });
  const { targetInfos } = await bs.send("Target.getTargets");
  const threads = [];
  for (const [label, type, url] of [["page", "page", "/bench/"], ["sandbox document", "iframe", "/sandbox.html"], ["engine worker", "worker", "blob:"]]) {
    const t = targetInfos.find((x) => x.type === type && x.url.includes(url));
    if (!t) throw new Error(`profile-run: no ${label} target (${JSON.stringify(targetInfos.map((x) => [x.type, x.url]))})`);
    const { sessionId } = await bs.send("Target.attachToTarget", { targetId: t.targetId, flatten: false });
    await send(sessionId, "Profiler.enable");
    await send(sessionId, "Profiler.setSamplingInterval", { interval: INTERVAL });
    threads.push({ label, sessionId });
  }
  for (const t of threads) await send(t.sessionId, "Profiler.start");
  const times = await page.evaluate(async (runs) => {
    const { ctx, feed } = globalThis.__profile;
    const t = [];
    const comp = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const r = await ctx.run(feed);
      t.push(performance.now() - t0);
      comp.push(r.timings.computeMs + r.timings.tensorInMs + r.timings.tensorOutMs);
    }
    return { t, comp };
  }, RUNS);
  fs.mkdirSync(OUT, { recursive: true });
  const profiles = [];
  for (const t of threads) {
    const { profile } = await send(t.sessionId, "Profiler.stop");
    fs.writeFileSync(path.join(OUT, `${t.label.replace(/ /g, "-")}.cpuprofile`), JSON.stringify(profile));
    profiles.push([t.label, profile]);
  }
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`${MODEL}: ${RUNS} runs under the profiler (${INTERVAL} us sampling): round trip median ${med(times.t).toFixed(3)} ms, engine (tensor in + compute + out) ${med(times.comp).toFixed(3)} ms; load ${fs.readFileSync("/proc/loadavg", "utf8").trim()}`);
  for (const [name, p] of profiles) summarize(name, p);
  await context.close();
} finally {
  await browser.close();
  server.stop();
}

/** Self time per function (name, file, line), and the inclusive time of our own entry points. */
function summarize(name, p) {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = p.timeDeltas;
  const total = (p.endTime - p.startTime) / 1000;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]);
    const f = n.callFrame;
    const key = `${f.functionName || "(anonymous)"} ${f.url ? path.basename(f.url) : ""}:${f.lineNumber + 1}:${f.columnNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + (dt[i + 1] ?? 0) / 1000);
  }
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, 25);
  console.log(`\n${name}: ${total.toFixed(0)} ms profiled, ${(total / RUNS).toFixed(3)} ms a run; self time per run:`);
  for (const [k, ms] of rows) console.log(`  ${(ms / RUNS * 1000).toFixed(1).padStart(7)} us  ${(ms / total * 100).toFixed(1).padStart(5)}%  ${k}`);
}
