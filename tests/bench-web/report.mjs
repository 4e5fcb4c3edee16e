// Last step of scripts/bench-web: merges the browser figures (run.mjs) and the server figures
// (`secure-context bench`) into bench/web.json with the machine described, draws bench/web.png
// (an SVG rendered by the same headless Chromium), and prints the README table (markdown).
//   node tests/bench-web/report.mjs BROWSER.json SERVER.json SITE EDGE OUT.json OUT.png
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const [browserFile, serverFile, site, edgeDir, outJson, outPng] = process.argv.slice(2);
if (!outPng) throw new Error("usage: report.mjs BROWSER.json SERVER.json SITE EDGE OUT.json OUT.png");
const browser = JSON.parse(fs.readFileSync(browserFile, "utf8"));
const server = JSON.parse(fs.readFileSync(serverFile, "utf8"));
const assets = JSON.parse(fs.readFileSync(path.join(site, "asset-manifest.json"), "utf8"));
const encodings = JSON.parse(fs.readFileSync(path.join(edgeDir, "encodings.json"), "utf8"));
const require = createRequire(path.join(ROOT, "web", "package.json"));
const pkgVersion = (name) => JSON.parse(fs.readFileSync(path.join(ROOT, "web", "node_modules", name, "package.json"), "utf8")).version;

const ENGINE_IDS = ["ours", "ours-all", "ort-1t", "ort-all"];
const LABEL = { ours: "secure-context", "ours-all": "secure-context all threads", "ort-1t": "onnxruntime-web 1 thread", "ort-all": "onnxruntime-web all threads" };
// Ratio rows: ours single-threaded against both onnxruntime-web rows, ours threaded against its
// threaded row (and its single-threaded one, for the threads' own gain).
const RATIOS = [["ours", "ort-1t"], ["ours", "ort-all"], ["ours-all", "ort-all"], ["ours-all", "ort-1t"]];

/** raw/gzip/brotli bytes of a set of site files, as the edge app serves them. */
function sizes(files) {
  const s = { raw: 0, gzip: 0, brotli: 0, files };
  for (const f of files) {
    const a = assets[f];
    if (!a) throw new Error(`${f} is not in the bench site's asset-manifest.json`);
    s.raw += a.size;
    s.gzip += encodings[f]?.gzip?.size ?? a.size;
    s.brotli += encodings[f]?.br?.size ?? a.size;
  }
  return s;
}
// What each engine's page fetched, by role (run.mjs's classification), from the first model.
function fetched(id, role) {
  const m = browser.models[0];
  const files = new Set(m.engines[id].transfers.map((t) => t.path.replace(/^\//, "")));
  return [...files].filter((f) => assets[f] && (role === "engine" ? f.endsWith(".wasm")
    : !f.endsWith(".wasm") && !f.startsWith("bench/") && !f.startsWith("models/") && f !== "favicon.svg")).sort();
}
const engineSizes = {
  ours: { engine: sizes(fetched("ours", "engine")), glue: sizes(fetched("ours", "glue")) },
  ort: { engine: sizes(fetched("ort-1t", "engine")), glue: sizes(fetched("ort-all", "glue")) },
};
if (browser.models[0].engines["ours-all"]) engineSizes["ours-all"] = { engine: sizes(fetched("ours-all", "engine")), glue: sizes(fetched("ours-all", "glue")) };

const ratio = (a, b) => (a != null && b ? a / b : null);
const models = browser.models.map((m) => {
  const e = m.engines;
  const srv = server.models.find((s) => s.model === m.model) ?? null;
  const r = {};
  for (const [a, b] of RATIOS) {
    if (!e[a] || !e[b]) continue;
    r[`${a}/${b}`] = {
      ttfr: ratio(e[a].ttfr_ms, e[b].ttfr_ms),
      warm_median: ratio(e[a].warm_median_ms, e[b].warm_median_ms),
      warm_p95: ratio(e[a].warm_p95_ms, e[b].warm_p95_ms),
      bytes: ratio(e[a].bytes.total, e[b].bytes.total),
    };
  }
  // #14's server goal: the component on wasmtime no slower than the same engine in the browser's
  // worker (its in-worker compute time, the same wasm minus the page's message hops), and how far
  // it is from the engine compiled natively and from native onnxruntime.
  const server_ratios = srv ? {
    "component/browser_worker": ratio(srv.component.median_ms, e.ours.engine_compute_median_ms),
    "component/native": ratio(srv.component.median_ms, srv.native.median_ms),
    "component/onnxruntime": ratio(srv.component.median_ms, srv.onnxruntime?.median_ms),
    "native/onnxruntime": ratio(srv.native.median_ms, srv.onnxruntime?.median_ms),
  } : null;
  // Issue #14's goals, each a ratio from this run (<= 1.0x onnxruntime-web).
  const goal = {
    warm_le_ort_1t: r["ours/ort-1t"].warm_median <= 1,
    // With all threads: ours with all threads (the threaded build) where this run has it.
    warm_le_ort_all: (r["ours-all/ort-all"] ?? r["ours/ort-all"]).warm_median <= 1,
    ttfr_le_ort: e.ours.ttfr_ms <= Math.min(e["ort-1t"].ttfr_ms, e["ort-all"].ttfr_ms),
    bytes_le_ort: e.ours.bytes.total <= Math.min(e["ort-1t"].bytes.total, e["ort-all"].bytes.total),
    server_component_le_browser: srv && e.ours.engine_compute_median_ms != null ? srv.component.median_ms <= e.ours.engine_compute_median_ms : null,
  };
  return { ...m, ratios: r, server: srv, server_ratios, goal };
});

const cpu = (fs.readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.*)$/m) ?? [])[1] ?? os.cpus()[0]?.model;
const sh = (cmd, args) => { try { return execFileSync(cmd, args, { encoding: "utf8" }).trim(); } catch { return null; } };
const doc = {
  command: "scripts/bench-web",
  generated: new Date().toISOString(),
  machine: {
    cpu, cores: os.cpus().length, ram_bytes: os.totalmem(), os: `${os.type()} ${os.release()} ${os.arch()}`,
    load_browser_start: browser.load_start, load_browser_end: browser.load_end,
    load_report: fs.readFileSync("/proc/loadavg", "utf8").trim(),
  },
  versions: {
    chromium: browser.chromium,
    "onnxruntime-web": pkgVersion("onnxruntime-web"),
    jco: pkgVersion("@bytecodealliance/jco"),
    "preview2-shim": pkgVersion("@bytecodealliance/preview2-shim"),
    "playwright-core": pkgVersion("playwright-core"),
    tract: browser.models[0].engines.ours.detail?.engine?.version ?? null,
    onnxruntime_python: sh("python3", ["-c", "import onnxruntime; print(onnxruntime.__version__)"]),
    node: process.version,
  },
  method: {
    browser: `headless Chromium, one browser; per model ${browser.rounds} rounds, each a fresh context (empty HTTP cache and Cache Storage) per engine, engine order rotated per round; ` +
      `time to first result = performance.now() at the first output (from navigation start: page, engine, model download, compile, load, one run), median over rounds; ` +
      `warm = ${browser.runs} runs split over the rounds, timed on the page (ours: the client's run() round trip page -> sandbox iframe -> worker); ` +
      `bytes = response bodies + headers seen by Chromium (engine + glue + model, page excluded); same seeded random input for all; outputs compared to onnxruntime-web 1 thread (max abs diff, tolerance ${browser.tolerance})`,
    server: `secure-context bench --runs ${server.runs}: component on wasmtime, same engine native, onnxruntime (Python, 1 intra-op thread); inputs arange(n)/n, a text model's the int64 token ids onnxruntime-web got (.npy files, --input)`,
    served_by: "the edge app (target/wasm32-wasip2/wasm/edge.wasm) under `secure-context serve`, one origin and one header policy for both engines; onnxruntime-web's glue served as .js; its pthread workers created through a Trusted Types policy on the bench page (the CSP is unchanged)",
  },
  engine_sizes: engineSizes,
  engine_builds: {
    browser_core_wasm: Object.entries(assets).filter(([k]) => /^engine(-[a-z0-9]+)?\//.test(k) && k.endsWith(".wasm")).map(([k, v]) => ({ file: k, sha256: v.sha256, size: v.size, gzip: encodings[k]?.gzip?.size ?? null })),
    browser_build_run: browser.models[0].engines.ours.detail?.engine?.build ?? null,
    browser_build_run_all_threads: browser.models[0].engines["ours-all"]?.detail?.engine?.build ?? null,
    browser_engine_all_threads: browser.models[0].engines["ours-all"]?.detail?.engine?.version ?? null,
    server_component: (() => {
      const f = path.join(ROOT, "build/bench/inference.wasm");
      if (!fs.existsSync(f)) return null;
      const b = fs.readFileSync(f);
      return { file: "build/bench/inference.wasm (copy of target/wasm32-wasip2/wasm/inference.wasm)", sha256: createHash("sha256").update(b).digest("hex"), size: b.length };
    })(),
    note: "the browser runs build/web's engine (scripts/build-web); the server half runs the component in target/ at bench time: the same source only if nobody rebuilt in between",
  },
  server_engine_bytes: server.engine_bytes,
  models,
};
fs.mkdirSync(path.dirname(outJson), { recursive: true });
fs.writeFileSync(outJson, JSON.stringify(doc, null, 2) + "\n");

// --- README table ---
const f = (x, d = 1) => (x == null ? "-" : x >= 100 ? x.toFixed(0) : x.toFixed(d));
const x2 = (x) => (x == null ? "-" : `${x.toFixed(2)}x`);
const kib = (b) => `${(b / 1024).toFixed(0)} KiB`;
const md = [];
const build = browser.models[0].engines.ours.detail?.engine?.build;
const buildAll = browser.models[0].engines["ours-all"]?.detail?.engine;
md.push(`| model | engine${build ? ` (ours: ${build} build${buildAll ? `; all threads: ${buildAll.build}, ${buildAll.version}` : ""})` : ""} | first result ms | warm median ms | warm p95 ms | transferred | max abs diff |`);
md.push("|---|---|---:|---:|---:|---:|---:|");
for (const m of models) {
  for (const id of ENGINE_IDS) {
    const e = m.engines[id];
    if (!e) continue;
    const compute = id.startsWith("ours") && e.engine_compute_median_ms != null ? ` (in-worker compute ${f(e.engine_compute_median_ms, 2)} ms)` : "";
    md.push(`| ${m.model} | ${LABEL[id]}${compute} | ${f(e.ttfr_ms, 0)} | ${f(e.warm_median_ms, 2)} | ${f(e.warm_p95_ms, 2)} | ${kib(e.bytes.total)} | ${e.max_abs_diff_vs_ort_1t.toExponential(1)} |`);
  }
  for (const [a, b] of RATIOS) {
    const r = m.ratios[`${a}/${b}`];
    if (r) md.push(`| ${m.model} | **ratio ${a} / ${b}** | ${x2(r.ttfr)} | ${x2(r.warm_median)} | ${x2(r.warm_p95)} | ${x2(r.bytes)} | |`);
  }
}
md.push("");
md.push("| model | component on wasmtime ms | browser worker compute ms | tract native ms | onnxruntime native ms | component / browser worker | component / native | component / ort | native / ort |");
md.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const m of models) {
  const s = m.server, r = m.server_ratios;
  if (!s) {
    md.push(`| ${m.model} | not in the server run | ${f(m.engines.ours.engine_compute_median_ms, 2)} | | | | | | |`);
    continue;
  }
  md.push(`| ${m.model} | ${f(s.component.median_ms, 2)} | ${f(m.engines.ours.engine_compute_median_ms, 2)} | ${f(s.native.median_ms, 2)} | ${f(s.onnxruntime?.median_ms, 2)} | ` +
    `${x2(r["component/browser_worker"])} | ${x2(r["component/native"])} | ${x2(r["component/onnxruntime"])} | ${x2(r["native/onnxruntime"])} |`);
}
md.push("");
const es = engineSizes;
md.push(`Engine wasm: ours ${(es.ours.engine.raw / 1048576).toFixed(1)} MiB raw / ${(es.ours.engine.gzip / 1048576).toFixed(2)} MiB gzip / ${(es.ours.engine.brotli / 1048576).toFixed(2)} MiB brotli; ` +
  `onnxruntime-web ${(es.ort.engine.raw / 1048576).toFixed(1)} / ${(es.ort.engine.gzip / 1048576).toFixed(2)} / ${(es.ort.engine.brotli / 1048576).toFixed(2)} MiB. ` +
  `Glue JS (brotli): ours ${kib(es.ours.glue.brotli)} (${es.ours.glue.files.length} files), onnxruntime-web ${kib(es.ort.glue.brotli)} (${es.ort.glue.files.length} files).`);
if (es["ours-all"]) {
  md.push(`Threaded build: ${(es["ours-all"].engine.raw / 1048576).toFixed(1)} MiB raw / ${(es["ours-all"].engine.gzip / 1048576).toFixed(2)} MiB gzip core wasm, glue ${kib(es["ours-all"].glue.brotli)} brotli; ` +
    `outputs bit-identical to the single-threaded build on ${models.filter((m) => m.engines["ours-all"]?.bit_identical_to_ours).length} of ${models.length} models.`);
}
md.push("");
md.push("| model | warm <= ort 1 thread | warm <= ort all threads | first result <= ort | bytes <= ort | server component <= browser worker compute |");
md.push("|---|---|---|---|---|---|");
const yn = (b, r) => (b == null ? "-" : `${b ? "yes" : "no"}${r != null ? ` (${x2(r)})` : ""}`);
for (const m of models) {
  const g = m.goal, r1 = m.ratios["ours/ort-1t"], ra = m.ratios["ours-all/ort-all"] ?? m.ratios["ours/ort-all"];
  const ttfr = Math.max(r1.ttfr, ra.ttfr), bytes = Math.max(r1.bytes, ra.bytes);
  const srv = m.server_ratios?.["component/browser_worker"] ?? null;
  md.push(`| ${m.model} | ${yn(g.warm_le_ort_1t, r1.warm_median)} | ${yn(g.warm_le_ort_all, ra.warm_median)} | ${yn(g.ttfr_le_ort, ttfr)} | ${yn(g.bytes_le_ort, bytes)} | ${yn(g.server_component_le_browser, srv)} |`);
}
const core = doc.engine_builds.browser_core_wasm.filter((c) => c.file.startsWith("engine/"));
const coreGzip = core.reduce((a, c) => a + (c.gzip ?? c.size), 0);
md.push("");
md.push(`Engine core wasm (the build the browser ran, engine/): ${(coreGzip / 1e6).toFixed(2)} MB gzip (goal < 3 MB: ${coreGzip < 3e6 ? "yes" : "no"}).`);
fs.writeFileSync(path.join(path.dirname(browserFile), "table.md"), md.join("\n") + "\n");
console.log(md.join("\n"));

// --- chart: three panels (first result, warm median, bytes), grouped bars per model ---
const COLORS = { ours: "#1b9e77", "ours-all": "#66a61e", "ort-1t": "#d95f02", "ort-all": "#7570b3" };
const W = 1250, H = 430, PW = 360, PH = 280, TOP = 70, LEFT = 60;
const panels = [
  { title: "time to first result (ms, log)", get: (e) => e.ttfr_ms, log: true },
  { title: "warm median latency (ms, log)", get: (e) => e.warm_median_ms, log: true },
  { title: "bytes transferred (KiB, log)", get: (e) => e.bytes.total / 1024, log: true },
];
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, sans-serif" font-size="12">`;
svg += `<rect width="${W}" height="${H}" fill="white"/>`;
svg += `<text x="${W / 2}" y="22" text-anchor="middle" font-size="16">secure-context vs onnxruntime-web ${esc(doc.versions["onnxruntime-web"])} (wasm) in Chromium ${esc(browser.chromium)}, lower is better</text>`;
svg += `<text x="${W / 2}" y="42" text-anchor="middle" fill="#555">${esc(cpu)}, ${doc.machine.cores} cores; ${browser.runs} warm runs; 1-min load average ${esc(browser.load_start.loadavg.split(" ")[0])} at start, ${esc(browser.load_end.loadavg.split(" ")[0])} at end (shared machine)</text>`;
panels.forEach((p, pi) => {
  const x0 = LEFT + pi * (PW + 40);
  const ids = ENGINE_IDS.filter((id) => models.every((m) => m.engines[id]));
  const vals = models.flatMap((m) => ids.map((id) => p.get(m.engines[id])));
  // Log axes from the decade below the smallest bar (with room, so it shows) to above the largest.
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...vals) * 0.8))), hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...vals))));
  const y = (v) => TOP + PH - (Math.log10(v / lo) / Math.log10(hi / lo)) * PH;
  svg += `<text x="${x0 + PW / 2}" y="${TOP - 10}" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`;
  for (let t = lo; t <= hi * 1.0001; t *= 10) {
    svg += `<line x1="${x0}" x2="${x0 + PW}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/><text x="${x0 - 4}" y="${y(t) + 4}" text-anchor="end" fill="#555">${t >= 1 ? t : t.toPrecision(1)}</text>`;
  }
  const gw = PW / models.length, bw = (gw - 16) / ids.length;
  models.forEach((m, mi) => {
    ids.forEach((id, ei) => {
      const v = p.get(m.engines[id]);
      const bx = x0 + mi * gw + 8 + ei * bw;
      svg += `<rect x="${bx}" y="${y(v)}" width="${bw - 2}" height="${TOP + PH - y(v)}" fill="${COLORS[id]}"><title>${esc(`${m.model} ${LABEL[id]}: ${v.toFixed(2)}`)}</title></rect>`;
    });
    svg += `<text x="${x0 + mi * gw + gw / 2}" y="${TOP + PH + 16}" text-anchor="middle">${esc(m.model)}</text>`;
  });
  svg += `<line x1="${x0}" x2="${x0 + PW}" y1="${TOP + PH}" y2="${TOP + PH}" stroke="#333"/>`;
});
ENGINE_IDS.filter((id) => models.every((m) => m.engines[id])).forEach((id, i) => {
  const lx = LEFT + i * 260;
  svg += `<rect x="${lx}" y="${H - 28}" width="14" height="14" fill="${COLORS[id]}"/><text x="${lx + 20}" y="${H - 16}">${esc(LABEL[id])}</text>`;
});
svg += `</svg>`;
fs.writeFileSync(path.join(path.dirname(browserFile), "chart.svg"), svg);
const { chromium } = require("playwright-core");
const b = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu"] });
try {
  const page = await b.newPage({ viewport: { width: W, height: H } });
  await page.setContent(`<!doctype html><body style="margin:0">${svg}</body>`);
  await page.screenshot({ path: outPng, clip: { x: 0, y: 0, width: W, height: H } });
} finally {
  await b.close();
}
console.error(`wrote ${outJson}, ${outPng}`);
