// Benchmark of the server-side API (not a test): cold and warm latency of one digits request,
// served as scripts/up serves it (`secure-context serve --manifest spin.toml`, SC_API=on).
//   cold: a fresh server process (compiled component from the on-disk cache), first request:
//         instantiate the API + engine, read and load the model, run;
//   warm: sequential requests on one keep-alive connection (instances are reused, the model
//         stays loaded), JSON and safetensors; and throughput at 16 concurrent.
// Writes bench/api.json. Usage: scripts/bench-api  (or node bench/api.mjs [RUNS])
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { ROOT, startEdge } from "../tests/edge/lib.mjs";

const RUNS = Number(process.argv[2] ?? 500);
const COLD = 5;
const json = JSON.stringify({ inputs: { input: { dtype: "float32", shape: [1, 1, 8, 8], data: Array.from({ length: 64 }, (_, i) => (i % 17) / 16) } } });
const header = Buffer.from(JSON.stringify({ input: { dtype: "F32", shape: [1, 1, 8, 8], data_offsets: [0, 256] } }).padEnd(88, " "));
const len = Buffer.alloc(8);
len.writeBigUInt64LE(BigInt(header.length));
const st = Buffer.concat([len, header, Buffer.from(new Float32Array(64).fill(0.25).buffer)]);

function post(port, agent, body, type) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const r = http.request({ host: "127.0.0.1", port, method: "POST", path: "/api/models/digits/infer", agent, headers: { "Content-Type": type, "Content-Length": body.length } }, (res) => {
      res.resume();
      res.on("end", () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - t0) / 1e6) : reject(new Error(`status ${res.statusCode}`))));
    });
    r.on("error", reject);
    r.end(body);
  });
}

const q = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const stats = (xs) => ({ runs: xs.length, median_ms: +q(xs, 0.5).toFixed(3), p95_ms: +q(xs, 0.95).toFixed(3), p99_ms: +q(xs, 0.99).toFixed(3) });

const cold = [];
for (let i = 0; i < COLD; i++) {
  const app = await startEdge({ SC_API: "on" });
  try { cold.push(await post(app.port, undefined, Buffer.from(json), "application/json")); } finally { await app.stop(); }
}
const app = await startEdge({ SC_API: "on" });
const result = { date: new Date().toISOString(), machine: { cpu: os.cpus()[0].model, cores: os.cpus().length, mem_gib: Math.round(os.totalmem() / 2 ** 30), load: os.loadavg() }, model: "digits", cold: stats(cold) };
try {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (const [name, body, type] of [["warm_json", Buffer.from(json), "application/json"], ["warm_safetensors", st, "application/vnd.safetensors"]]) {
    for (let i = 0; i < 20; i++) await post(app.port, agent, body, type);
    const xs = [];
    for (let i = 0; i < RUNS; i++) xs.push(await post(app.port, agent, body, type));
    result[name] = stats(xs);
  }
  agent.destroy();
  const many = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const n = 2000;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 16 }, async () => { while (next++ < n) await post(app.port, many, Buffer.from(json), "application/json"); }));
  result.throughput_16_concurrent_rps = Math.round(n / ((performance.now() - t0) / 1000));
  many.destroy();
} finally { await app.stop(); }
fs.writeFileSync(path.join(ROOT, "bench", "api.json"), JSON.stringify(result, null, 2) + "\n");
console.log(JSON.stringify(result, null, 2));
