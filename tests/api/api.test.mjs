// The server-side inference API (components/api with the engine composed in), served by
// `secure-context serve --manifest spin.toml` as scripts/up serves it: off by default; the
// manifest and model descriptions; a corpus of more than 100 bad requests, each with its status
// and error code, after which a good request still succeeds; body limits; the compute budget;
// a bounded load with zero 5xx and flat memory. Bit-identical parity with the browser and the
// CLI is tests/python/test_api_parity.py.
//
//   node --test tests/api/      (needs scripts/build, build-web, build-edge, build-api)
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { RUNNER, WEB, assertPolicy, first, rawRequest, req, startEdge } from "../edge/lib.mjs";

const INFER = "/api/models/digits/infer";
const MODELS = JSON.parse(fs.readFileSync(path.join(WEB, "models", "manifest.json"), "utf8"));

/** A 1x1x8x8 digit-like input, as the API takes it. */
function digitsJson(batch = 1, data = null) {
  const n = batch * 64;
  return { inputs: { input: { dtype: "float32", shape: [batch, 1, 8, 8], data: data ?? Array.from({ length: n }, (_, i) => (i % 17) / 16) } } };
}

/**
 * A safetensors file (8-byte LE header length, JSON header, data), built by hand on purpose:
 * the corpus needs malformed ones too.
 */
function safetensors(tensors, { header = null } = {}) {
  let off = 0;
  const h = {};
  const parts = [];
  for (const [name, { dtype, shape, data }] of Object.entries(tensors)) {
    h[name] = { dtype, shape, data_offsets: [off, off + data.length] };
    off += data.length;
    parts.push(data);
  }
  let json = Buffer.from(header ?? JSON.stringify(h));
  const pad = (8 - (json.length % 8)) % 8;
  json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, ...parts]);
}

const f32 = (values) => Buffer.from(new Float32Array(values).buffer);

function post(port, target, body, headers = {}) {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
  const h = { Host: `127.0.0.1:${port}`, Connection: "close", "Content-Type": "application/json", "Content-Length": String(buf.length), ...headers };
  const head = [`POST ${target} HTTP/1.1`, ...Object.entries(h).filter(([, v]) => v !== null).map(([k, v]) => `${k}: ${v}`)].join("\r\n");
  return rawRequest(port, Buffer.concat([Buffer.from(head + "\r\n\r\n", "latin1"), buf]), { timeoutMs: 30_000 });
}

function assertJsonError(r, status, code, what) {
  assert.equal(r.status, status, `${what}: status (${r.body.toString().slice(0, 300)})`);
  assert.match(first(r, "content-type") ?? "", /^application\/json/, `${what}: JSON`);
  const e = JSON.parse(r.body.toString()).error;
  assert.equal(e.code, code, `${what}: code (${e.message})`);
  assert.ok(typeof e.message === "string" && e.message.length > 10, `${what}: a message`);
  assertPolicy(r, what);
  return e;
}

describe("off by default", () => {
  let app;
  before(async () => { app = await startEdge(); });
  after(async () => { await app?.stop(); });

  test("every API request gets 403 with how to enable it, and nothing runs", async () => {
    for (const [m, p] of [["GET", "/api/models"], ["GET", "/api/models/digits"], ["GET", "/api"], ["DELETE", INFER]]) {
      const e = assertJsonError(await req(app.port, m, p), 403, "api-disabled", `${m} ${p}`);
      assert.match(e.message, /SC_API=on/);
    }
    assertJsonError(await post(app.port, INFER, digitsJson()), 403, "api-disabled", "POST infer");
    assert.doesNotMatch(app.stderr(), /0\.0625/, "input data never logged");
  });
});

describe("on (SC_API=on)", () => {
  let app;
  before(async () => { app = await startEdge({ SC_API: "on" }); });
  after(async () => { await app?.stop(); });

  test("GET /api/models is the manifest; GET /api/models/{name} is what the engine reads", async () => {
    const r = await req(app.port, "GET", "/api/models");
    assert.equal(r.status, 200);
    assertPolicy(r, "models");
    assert.deepEqual(JSON.parse(r.body.toString()), MODELS);
    const head = await req(app.port, "HEAD", "/api/models");
    assert.equal(head.status, 200);
    assert.equal(Number(first(head, "content-length")), r.body.length);
    for (const m of MODELS.models) {
      const d = await req(app.port, "GET", `/api/models/${m.name}`);
      assert.equal(d.status, 200, m.name);
      const info = JSON.parse(d.body.toString());
      assert.equal(info.sha256, m.sha256, `${m.name}: the engine's digest is the manifest's`);
      assert.deepEqual(info.inputs.map((i) => [i.name, i.dtype]), m.inputs.map((i) => [i.name, i.dtype]));
      assert.match(info.engine, /^tract /);
    }
    const digits = JSON.parse((await req(app.port, "GET", "/api/models/digits")).body.toString());
    assert.deepEqual(digits.inputs[0].shape, ["batch", 1, 8, 8]);
  });

  test("JSON and safetensors forms give the same outputs", async () => {
    const j = await post(app.port, INFER, digitsJson(2));
    assert.equal(j.status, 200, j.body.toString());
    assertPolicy(j, "infer json");
    const out = JSON.parse(j.body.toString());
    assert.equal(out.model, "digits");
    assert.equal(out.sha256, MODELS.models.find((m) => m.name === "digits").sha256);
    const p = out.outputs.probabilities;
    assert.deepEqual([p.dtype, p.shape], ["float32", [2, 10]]);
    assert.ok(Math.abs(p.data.slice(0, 10).reduce((a, b) => a + b) - 1) < 1e-5, "softmax row sums to 1");
    const x = digitsJson(2).inputs.input;
    const s = await post(app.port, INFER, safetensors({ input: { dtype: "F32", shape: x.shape, data: f32(x.data) } }), { "Content-Type": "application/vnd.safetensors" });
    assert.equal(s.status, 200);
    assert.equal(first(s, "content-type"), "application/vnd.safetensors");
    const hlen = Number(s.body.readBigUInt64LE(0));
    const header = JSON.parse(s.body.subarray(8, 8 + hlen).toString());
    assert.equal(header.__metadata__.model, "digits");
    const t = header.probabilities;
    assert.deepEqual([t.dtype, t.shape], ["F32", [2, 10]]);
    const data = s.body.subarray(8 + hlen + t.data_offsets[0], 8 + hlen + t.data_offsets[1]);
    assert.ok(data.equals(f32(p.data)), "bit-identical across the two forms");
  });

  test(`a corpus of bad requests: each gets its status and code, and the server keeps serving`, async () => {
    const corpus = badRequests();
    assert.ok(corpus.length >= 100, `corpus has ${corpus.length} requests`);
    console.log(`${corpus.length} bad requests`);
    for (const c of corpus) {
      const r = c.method === "POST"
        ? await post(app.port, c.path ?? INFER, c.body, c.headers)
        : await req(app.port, c.method, c.path, c.headers);
      const e = assertJsonError(r, c.status, c.code, c.what);
      if (c.message) assert.match(e.message, c.message, c.what);
      if (c.allow) assert.equal(first(r, "allow"), c.allow, `${c.what}: Allow`);
    }
    const ok = await post(app.port, INFER, digitsJson());
    assert.equal(ok.status, 200, "a good request after the corpus");
    assert.match(app.stderr(), /api: POST \/api\/models\/digits\/infer -> 400/, "errors are logged");
    assert.doesNotMatch(app.stderr(), /0\.0625|0\.125/, "input data is never logged");
  });

  test("bodies over the limit get 413 whether announced or streamed", async () => {
    const big = 17 * 1024 * 1024;
    const r = await rawRequest(app.port, Buffer.from(`POST ${INFER} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${big}\r\n\r\n{`, "latin1"));
    assertJsonError(r, 413, "payload-too-large", "announced");
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const parts = [Buffer.from(`POST ${INFER} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`, "latin1")];
    for (let i = 0; i < 17; i++) parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n"));
    parts.push(Buffer.from("0\r\n\r\n"));
    assertJsonError(await rawRequest(app.port, Buffer.concat(parts), { timeoutMs: 30_000 }), 413, "payload-too-large", "streamed");
    assert.equal((await post(app.port, INFER, digitsJson())).status, 200);
  });

  test("5,000 requests at 16 concurrent: zero 5xx, memory flat", async () => {
    const body = JSON.stringify(digitsJson());
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const statuses = new Map();
    const one = () => new Promise((resolve, reject) => {
      const r = http.request({ host: "127.0.0.1", port: app.port, method: "POST", path: INFER, agent, headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on("end", () => { statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1); resolve(); });
      });
      r.on("error", reject);
      r.end(body);
    });
    const run = async (n) => {
      let next = 0;
      await Promise.all(Array.from({ length: 16 }, async () => { while (next++ < n) await one(); }));
    };
    await run(1000);
    const warm = rss(app.pid);
    await run(4000);
    const end = rss(app.pid);
    agent.destroy();
    assert.deepEqual([...statuses.entries()], [[200, 5000]], "all 5,000 answered 200");
    console.log(`RSS after 1,000: ${(warm / 1024).toFixed(1)} MiB, after 5,000: ${(end / 1024).toFixed(1)} MiB`);
    assert.ok(end - warm < 64 * 1024, `memory grew ${((end - warm) / 1024).toFixed(1)} MiB over 4,000 requests`);
  });
});

// The per-request time budget is the runner's (`secure-context --timeout-ms`); `spin up` has no
// such setting (platforms set their own), so under real Spin this one is not run.
const NO_BUDGET = RUNNER === "spin" && "spin up has no per-request time budget to set";

describe("compute budget", { skip: NO_BUDGET }, () => {
  let app;
  before(async () => { app = await startEdge({ SC_API: "on" }, ["--timeout-ms", "150"]); });
  after(async () => { await app?.stop(); });

  test("a request over its budget gets 504 with a JSON error; the next one is served", async () => {
    const batch = 40_000;
    const body = safetensors({ input: { dtype: "F32", shape: [batch, 1, 8, 8], data: Buffer.alloc(batch * 64 * 4) } });
    const r = await post(app.port, INFER, body, { "Content-Type": "application/vnd.safetensors" });
    assertJsonError(r, 504, "timeout", "over budget");
    assert.equal((await post(app.port, INFER, digitsJson())).status, 200, "served after a timeout");
  });
});

/** Resident memory of a process, KiB. */
function rss(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
}

function badRequests() {
  const out = [];
  const add = (what, status, code, r) => out.push({ what, status, code, method: "POST", ...r });
  const input = (t) => ({ inputs: { input: t } });
  const ok = digitsJson().inputs.input;
  const SAFE = { "Content-Type": "application/vnd.safetensors" };

  // Media types.
  for (const ct of [null, "text/plain", "application/xml", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded",
    "application/jsonx", "application/octet-stream", "application/json-patch+json", "text/json", "application/safetensors"]) {
    add(`content-type ${ct}`, 415, "unsupported-media-type", { body: digitsJson(), headers: { "Content-Type": ct } });
  }
  // Not JSON, or not the shape of a request.
  for (const b of ["", "{", "[", "{\"inputs\":", "{'inputs':{}}", "{\"inputs\": NaN}", "{\"inputs\": {\"input\": Infinity}}", "{}x",
    "\u00ff\u00fe", "[".repeat(5000) + "]".repeat(5000), "{\"inputs\": {\"input\": {\"dtype\": \"float32\", \"shape\": [1,1,8,8], \"data\": [NaN]}}}"]) {
    add(`not JSON: ${b.slice(0, 30)}`, 400, "bad-json", { body: b });
  }
  for (const b of [null, 1, "x", [], {}, { inputs: [] }, { inputs: {} }, { inputs: null }, { inputs: { input: [] } }, { inputs: { input: 1 } },
    { inputs: { input: ok }, extra: 1 }, input({ shape: ok.shape, data: ok.data }), input({ dtype: "float32", data: ok.data }),
    input({ dtype: "float32", shape: ok.shape }), input({ ...ok, extra: true }), { Inputs: { input: ok } }]) {
    add(`bad request object ${JSON.stringify(b)?.slice(0, 40)}`, 400, "bad-json", { body: JSON.stringify(b) });
  }
  // Element types.
  for (const d of ["f33", "", "float", "FLOAT32", "string", "complex64", "float8", "int4", "qint8"]) {
    add(`dtype ${d}`, 400, "dtype", { body: input({ ...ok, dtype: d }), message: /unknown dtype/ });
  }
  for (const d of [1, null, true, ["float32"]]) add(`dtype ${JSON.stringify(d)}`, 400, "dtype", { body: input({ ...ok, dtype: d }) });
  for (const d of ["int32", "int64", "float64", "float16", "uint8", "bool"]) {
    const data = ok.data.map(() => (d === "bool" ? true : 0));
    add(`dtype ${d} for a float32 input`, 400, "dtype", { body: input({ ...ok, dtype: d, data }), message: /the model takes float32/ });
  }
  // Shapes.
  for (const [shape, status, code] of [
    [[-1, 1, 8, 8], 400, "shape"], [[1.5, 1, 8, 8], 400, "shape"], ["1,1,8,8", 400, "shape"], [null, 400, "shape"], [[1, 1, "8", 8], 400, "shape"],
    [[2, 1, 8, 8], 400, "shape"], [[1, 1, 8], 400, "shape"], [[1, 1, 1, 1, 1, 1, 1, 1, 1, 64], 400, "shape"],
    [[4294967296, 1, 8, 8], 413, "too-large"], [[65536, 65536], 413, "too-large"], [[1e30], 400, "shape"],
  ]) add(`shape ${JSON.stringify(shape)}`, status, code, { body: input({ ...ok, shape }) });
  for (const shape of [[64], [1, 64], [1, 1, 64, 1], [1, 8, 8, 1], [1, 2, 4, 8], [64, 1, 1, 1]]) {
    add(`shape ${JSON.stringify(shape)} the model refuses`, 400, "invalid-argument", { body: input({ ...ok, shape }), message: /expected f32\[batch,1,8,8\]/ });
  }
  // Data.
  for (const [data, code] of [
    [ok.data.map(() => "1"), "bad-tensor"], [ok.data.map(() => null), "bad-tensor"], [ok.data.map(() => true), "bad-tensor"],
    [ok.data.map(() => ({})), "bad-tensor"], [ok.data.map(() => [1]), "bad-tensor"], [ok.data.map(() => 1e39), "out-of-range"],
    [ok.data.map(() => -1e39), "out-of-range"], [{ 0: 1 }, "bad-tensor"], ["0.5", "bad-tensor"], [ok.data.slice(1), "shape"],
    [[...ok.data, 1], "shape"], [[], "shape"],
  ]) add(`data ${JSON.stringify(data).slice(0, 30)}`, 400, code, { body: input({ ...ok, data }) });
  // Names.
  add("unknown input name", 400, "unknown-input", { body: { inputs: { x: ok } }, message: /the model's inputs are "input"/ });
  add("an extra input", 400, "unknown-input", { body: { inputs: { input: ok, extra: ok } } });
  add("empty input name", 400, "bad-tensor", { body: { inputs: { "": ok } } });
  add("very long input name", 400, "bad-tensor", { body: { inputs: { ["n".repeat(300)]: ok } } });
  add("too many inputs", 400, "bad-json", { body: { inputs: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`i${i}`, ok])) } });
  // safetensors.
  const good = () => ({ input: { dtype: "F32", shape: [1, 1, 8, 8], data: f32(ok.data) } });
  for (const [what, body, code] of [
    ["empty", Buffer.alloc(0), "bad-safetensors"], ["garbage", Buffer.from("not safetensors"), "bad-safetensors"],
    ["truncated header", safetensors(good()).subarray(0, 20), "bad-safetensors"], ["truncated data", safetensors(good()).subarray(0, 100), "bad-safetensors"],
    ["header length past the end", Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]), Buffer.from("{}")]), "bad-safetensors"],
    ["header not JSON", safetensors({}, { header: "{not json" }), "bad-safetensors"],
    ["no tensors", safetensors({}), "bad-safetensors"],
    ["offsets out of range", safetensors(good(), { header: JSON.stringify({ input: { dtype: "F32", shape: [1, 1, 8, 8], data_offsets: [0, 99999] } }) }), "bad-safetensors"],
    ["shape and bytes disagree", safetensors({ input: { dtype: "F32", shape: [1, 1, 8, 9], data: f32(ok.data) } }), "bad-safetensors"],
    ["unknown dtype", safetensors(good(), { header: JSON.stringify({ input: { dtype: "F99", shape: [1, 1, 8, 8], data_offsets: [0, 256] } }) }), "bad-safetensors"],
    ["NaN", safetensors({ input: { dtype: "F32", shape: [1, 1, 8, 8], data: f32(ok.data.map((v, i) => (i === 5 ? NaN : v))) } }), "non-finite"],
    ["Infinity", safetensors({ input: { dtype: "F32", shape: [1, 1, 8, 8], data: f32(ok.data.map((v, i) => (i === 5 ? Infinity : v))) } }), "non-finite"],
    ["I64 for a float input", safetensors({ input: { dtype: "I64", shape: [1, 1, 8, 8], data: Buffer.alloc(512) } }), "dtype"],
    ["F64 for a float input", safetensors({ input: { dtype: "F64", shape: [1, 1, 8, 8], data: Buffer.alloc(512) } }), "dtype"],
    ["wrong shape", safetensors({ input: { dtype: "F32", shape: [1, 64], data: f32(ok.data) } }), "invalid-argument"],
    ["wrong name", safetensors({ image: { dtype: "F32", shape: [1, 1, 8, 8], data: f32(ok.data) } }), "unknown-input"],
    ["bool out of range", safetensors({ input: { dtype: "BOOL", shape: [1, 1, 8, 8], data: Buffer.alloc(64, 7) } }), "out-of-range"],
  ]) add(`safetensors: ${what}`, 400, code, { body, headers: SAFE });
  // Paths and models.
  for (const p of ["/api/models/nope/infer", "/api/models/DIGITS/infer", "/api/models/digits.onnx/infer", "/api/models/manifest/infer", "/api/models/tiny-conv.tflite/infer"]) {
    add(`model ${p}`, 404, "unknown-model", { path: p, body: digitsJson() });
  }
  for (const p of ["/api/models/../digits/infer", "/api/models/%2e%2e/infer", "/api/models/digits/infer/x", "/api/models/digits%2finfer", "/api/x", "/api", "/api/",
    "/api/models/", "/api/models//infer", `/api/models/${"a".repeat(65)}/infer`, "/api/models/.env/infer", "/api/models/digits/infer%00", "/api/models/a%5c..%5cb/infer"]) {
    add(`path ${p}`, 404, "not-found", { path: p, body: digitsJson() });
  }
  for (const m of ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
    out.push({ what: `${m} infer`, status: 405, code: "method-not-allowed", method: m, path: INFER, allow: "POST" });
  }
  for (const m of ["PUT", "DELETE", "PATCH"]) {
    out.push({ what: `${m} models`, status: 405, code: "method-not-allowed", method: m, path: "/api/models", allow: "GET, HEAD" });
    out.push({ what: `${m} a model`, status: 405, code: "method-not-allowed", method: m, path: "/api/models/digits", allow: "GET, HEAD" });
  }
  out.push({ what: "POST models", status: 405, code: "method-not-allowed", method: "POST", path: "/api/models", body: "{}", allow: "GET, HEAD" });
  out.push({ what: "GET an unknown model", status: 404, code: "unknown-model", method: "GET", path: "/api/models/nope" });
  // Plain HTTP for a public host: refused, not redirected (the body would already have crossed in clear).
  add("plain HTTP for a public host", 403, "https-required", { body: digitsJson(), headers: { Host: "api.example.com" } });
  return out;
}
