// Browser half of scripts/bench-web: serves the bench site with the edge app
// (`secure-context serve`, the production header policy) and drives headless Chromium through
// each model, alternating engines: ours (the runtime client, sandbox iframe + worker) single-
// threaded (the relaxed component) and with all threads (the threaded build), and
// onnxruntime-web's wasm backend with 1 thread and with all threads.
//   node tests/bench-web/run.mjs SITE EDGE OUT.json
// Env: BENCH_RUNS (warm runs per engine and model, default 50), BENCH_ROUNDS (fresh pages per
// engine and model, default 3; warm runs are split across them), BENCH_MODELS (comma list).
// Each round is a new browser context (empty HTTP cache and Cache Storage) in the one browser.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { startServer } from "../edge/lib.mjs";
import { repin } from "../../web/pins.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const [site, edgeDir, outFile] = process.argv.slice(2).map((p) => path.resolve(p));
if (!outFile) throw new Error("usage: run.mjs SITE EDGE OUT.json");
const RUNS = Number(process.env.BENCH_RUNS ?? 50);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const BIN = path.join(ROOT, "target/release/secure-context");
const EDGE_WASM = path.join(ROOT, "target/wasm32-wasip2/wasm/edge.wasm");
// Outputs must agree this closely (absolute, per element) or the run is not a benchmark.
const TOLERANCE = Number(process.env.BENCH_TOLERANCE ?? 1e-3);

const require = createRequire(path.join(ROOT, "web", "package.json"));
const { chromium } = require("playwright-core");
const config = JSON.parse(fs.readFileSync(path.join(site, "bench", "config.json"), "utf8"));
const wanted = process.env.BENCH_MODELS?.split(",").filter(Boolean);
const models = config.models.filter((m) => !wanted || wanted.includes(m.name));

function serve() {
  return startServer(["serve", "-Scli", "--dir", `${site}::/web`, "--dir", `${edgeDir}::/edge`, EDGE_WASM]);
}

// Ours single-threaded is the same site with a worker.js that sees one core (the threaded build
// is then not usable and the relaxed component runs), re-pinned up to sandbox.html as a build
// would pin it (web/pins.mjs), and put in place of the site's files in the browser (headers as
// the edge app sent them): one server, one policy, the product's own fallback path.
function singleThreadSite() {
  const assets = JSON.parse(fs.readFileSync(path.join(site, "asset-manifest.json"), "utf8"));
  const read = (rel) => fs.readFileSync(path.join(site, rel));
  const worker = read("worker.js").toString();
  if (worker.split("hardwareConcurrency").length !== 2) throw new Error("worker.js should read hardwareConcurrency once");
  return repin(assets, read, { "worker.js": Buffer.from(worker.replace("hardwareConcurrency", "noHardwareConcurrency")) });
}

const ENGINES = [
  { id: "ours", engine: "ours", threads: 1, files: singleThreadSite() },
  { id: "ours-all", engine: "ours", threads: 0 }, // the threaded build: threads as the worker picks them
  { id: "ort-1t", engine: "ort", threads: 1 },
  { id: "ort-all", engine: "ort", threads: 0 }, // 0: navigator.hardwareConcurrency, set below
];

/** One fresh page: returns the page's figures plus what crossed the network. */
async function measure(browser, origin, model, eng, runs) {
  const context = await browser.newContext();
  const violations = [];
  const problems = [];
  const transfers = [];
  await context.exposeBinding("__reportViolation", ({ frame }, v) => violations.push({ where: frame?.url(), ...v }));
  await context.addInitScript(() => {
    addEventListener("securitypolicyviolation", (e) => globalThis.__reportViolation?.({ directive: e.effectiveDirective, blocked: e.blockedURI }));
  });
  /** @type {Map<string, string>} path -> the encoding the edge app sent it in */
  const routed = new Map();
  const pending = [];
  context.on("requestfinished", (req) => pending.push((async () => {
    const s = await req.sizes();
    const r = await req.response();
    const p = new URL(req.url()).pathname;
    const encoding = (await r?.allHeaders())?.["content-encoding"] ?? "identity";
    // A file put in place by the route below crossed as plain bytes: count it as the edge app
    // sent the site's own (the same file but for a changed pin, a few bytes apart).
    const routedAs = routed.get(p);
    const estimated = routedAs !== undefined || (s.responseBodySize === 0 && r?.status() === 200 && req.method() === "GET");
    const body = estimated ? servedSize(p, routedAs ?? encoding) ?? 0 : s.responseBodySize;
    transfers.push({ path: p, status: r?.status(), encoding: routedAs ?? encoding, bytes: body + s.responseHeadersSize, body, ...(estimated ? { body_from_server_files: true } : {}) });
  })()));
  context.on("requestfailed", (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`));
  if (eng.files) {
    await context.route((u) => Object.hasOwn(eng.files, u.pathname.slice(1)), async (route) => {
      const real = await route.fetch();
      const headers = { ...real.headers() };
      routed.set(new URL(route.request().url()).pathname, headers["content-encoding"] ?? "identity");
      for (const h of ["content-encoding", "content-length", "etag"]) delete headers[h];
      await route.fulfill({ status: real.status(), headers, body: eng.files[new URL(route.request().url()).pathname.slice(1)] });
    });
  }
  const page = await context.newPage();
  page.on("console", (m) => {
    if (/Content Security Policy|Trusted Type|Refused to/i.test(m.text())) violations.push({ where: "console", text: m.text() });
    if (m.type() === "error") problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  const threads = eng.threads || (await hardwareConcurrency(browser));
  const url = `${origin}/bench/index.html?engine=${eng.engine}&threads=${threads}&model=${encodeURIComponent(model.name)}&runs=${runs}`;
  await page.goto(url);
  await page.waitForFunction(() => globalThis.__bench, null, { timeout: 900_000, polling: 100 });
  const r = await page.evaluate(() => globalThis.__bench);
  await Promise.all(pending);
  await context.close();
  if (r.error) throw new Error(`${eng.id} on ${model.name}: ${r.error}\n${problems.join("\n")}\n${JSON.stringify(violations)}`);
  // Both engines must run under the policy as served, not around it.
  if (violations.length) throw new Error(`${eng.id} on ${model.name}: CSP violations ${JSON.stringify(violations)}`);
  return { ...r, threads, transfers, violations, problems };
}

let hc;
async function hardwareConcurrency(browser) {
  if (hc) return hc;
  const p = await browser.newPage();
  hc = await p.evaluate(() => navigator.hardwareConcurrency);
  await p.close();
  return hc;
}

const decode = (o) => {
  const b = Buffer.from(o.base64, "base64");
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
};
const pct = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.round((s.length - 1) * q)]; };
const median = (xs) => pct(xs, 0.5);

/** Bytes per role: engine (core wasm), glue (JS that loads and drives it), model, page. */
function classify(p, model) {
  if (p.endsWith(".wasm")) return "engine";
  if (p === `/models/${model.file}`) return "model";
  if (p.startsWith("/bench/") || p === "/favicon.svg") return "page";
  return "glue"; // runtime client, sandbox, worker, shim, engine JS; ort's JS; the model manifest
}

const server = await serve();
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
// The machine is shared: record how busy it was, and with what, before and after.
const load = () => ({
  at: new Date().toISOString(),
  loadavg: fs.readFileSync("/proc/loadavg", "utf8").trim(),
  top: execFileSync("ps", ["-eo", "pcpu,etime,comm", "--sort=-pcpu"], { encoding: "utf8" }).split("\n").slice(0, 6),
});
const result = { chromium: browser.version(), origin: server.origin, runs: RUNS, rounds: ROUNDS, tolerance: TOLERANCE, load_start: load(), models: [] };
// Chromium reports no body size for a worker's own script; count what the server sends for it.
const assets = JSON.parse(fs.readFileSync(path.join(site, "asset-manifest.json"), "utf8"));
const encodings = JSON.parse(fs.readFileSync(path.join(edgeDir, "encodings.json"), "utf8"));
function servedSize(p, encoding) {
  const rel = p.replace(/^\//, "");
  if (encoding === "br") return encodings[rel]?.br?.size;
  if (encoding === "gzip") return encodings[rel]?.gzip?.size;
  return assets[rel]?.size;
}
try {
  for (const model of models) {
    const per = Object.fromEntries(ENGINES.map((e) => [e.id, { ttfr: [], warm: [], compute: [], bytes: [], transfers: null, outputs: [], detail: null, threads: null, violations: [], problems: [] }]));
    for (let round = 0; round < ROUNDS; round++) {
      const runs = Math.ceil(RUNS / ROUNDS);
      // Alternate: rotate the engine order each round so neither always goes first.
      const order = ENGINES.map((_, i) => ENGINES[(i + round) % ENGINES.length]);
      for (const eng of order) {
        const r = await measure(browser, server.origin, model, eng, runs);
        const acc = per[eng.id];
        acc.ttfr.push(r.ttfrMs);
        acc.warm.push(...r.warmMs);
        if (r.engineComputeMs) acc.compute.push(...r.engineComputeMs);
        const byRole = { engine: 0, glue: 0, model: 0, page: 0 };
        for (const t of r.transfers) byRole[classify(t.path, model)] += t.bytes;
        acc.bytes.push(byRole);
        acc.transfers ??= r.transfers;
        acc.outputs.push(r.output);
        acc.detail ??= r.detail;
        acc.threads = r.threads;
        acc.violations.push(...r.violations);
        acc.problems.push(...r.problems);
        console.error(`${model.name} round ${round + 1} ${eng.id}: first result ${r.ttfrMs.toFixed(0)} ms, warm median ${median(r.warmMs).toFixed(2)} ms, ${(Object.values(byRole).reduce((a, b) => a + b, 0) / 1024).toFixed(0)} KiB`);
      }
    }
    // Same input, so the same output within tolerance, every engine and every round.
    const ref = decode(per["ort-1t"].outputs[0]);
    const agreement = {};
    for (const [id, acc] of Object.entries(per)) {
      let max = 0;
      for (const o of acc.outputs) {
        const x = decode(o);
        if (x.length !== ref.length) throw new Error(`${model.name}: ${id} output has ${x.length} values, ort-1t ${ref.length}`);
        for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i] - ref[i]));
      }
      agreement[id] = max;
      if (!(max <= TOLERANCE)) throw new Error(`${model.name}: ${id} differs from onnxruntime-web by up to ${max} (> ${TOLERANCE}); not timing a failure`);
    }
    // The threaded build computes the same bits as the component (README "The threaded build").
    const identical = per["ours-all"].outputs.every((o) => o.base64 === per.ours.outputs[0].base64);
    const engines = {};
    for (const [id, acc] of Object.entries(per)) {
      const total = acc.bytes.map((b) => b.engine + b.glue + b.model);
      engines[id] = {
        threads: acc.threads,
        ttfr_ms: median(acc.ttfr), ttfr_all_ms: acc.ttfr,
        warm_median_ms: median(acc.warm), warm_p95_ms: pct(acc.warm, 0.95), warm_runs: acc.warm.length,
        engine_compute_median_ms: acc.compute.length ? median(acc.compute) : null,
        bytes: { ...acc.bytes[0], total: median(total) },
        bytes_by_round: acc.bytes,
        transfers: acc.transfers,
        max_abs_diff_vs_ort_1t: agreement[id],
        ...(id === "ours-all" ? { bit_identical_to_ours: identical } : {}),
        csp_violations: acc.violations, console_errors: acc.problems,
        detail: acc.detail,
      };
    }
    result.models.push({ model: model.name, file: model.file, size: model.size, sha256: model.sha256, source: model.source, input: model.input, shape: model.shape, engines });
  }
  result.load_end = load();
} finally {
  await browser.close();
  await server.stop();
}
fs.writeFileSync(outFile, JSON.stringify(result, null, 2) + "\n");
console.error(`wrote ${outFile}`);
