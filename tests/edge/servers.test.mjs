// One policy, every server: the edge app (spin.toml under `secure-context serve`, as scripts/up
// runs it), the Streamlit package's local server (python/streamlit_secure_context/server.py) and
// the browser tests' server (tests/browser/serve.mjs) answer the same requests with the same
// status and the same headers, route by route, status by status. The two others apply the
// edge's policy as data (build/policy.json, `secure-context policy --json`); this test is what
// keeps them from drifting.
//
// Not compared, on purpose: Date, connection and framing headers (Content-Length: the bodies are
// compared instead); Vary and Content-Encoding (only the edge
// has precompressed variants; no request here accepts an encoding); the `report-uri` the local
// and test servers add to their CSPs (they collect reports, the edge does not).
//
//   node --test tests/edge/servers.test.mjs   (needs scripts/build, scripts/build-web, scripts/build-edge)
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { startServer as startTestServer } from "../browser/serve.mjs";
import { ROOT, WEB, manifest, req, startEdge } from "./lib.mjs";

const PARENT = "http://127.0.0.1:8501";
const MANIFEST = manifest();
const WASM = Object.keys(MANIFEST).find((k) => MANIFEST[k].immutable);
const MODEL = "models/digits.onnx";
// Framing, not policy: the edge may send a body chunked where the others give its length (the
// bodies themselves are compared).
const IGNORED = new Set(["date", "connection", "keep-alive", "transfer-encoding", "content-length", "vary", "content-encoding"]);

/** [what, method, target, extra headers] */
const REQUESTS = [
  ["root", "GET", "/"],
  ["a document", "GET", "/index.html"],
  ["a document, query ignored", "GET", "/index.html?x=1"],
  ["the sandbox document (frame ancestors configured)", "GET", "/sandbox.html"],
  ["the sandbox document, HEAD", "HEAD", "/sandbox.html"],
  ["the worker", "GET", "/worker.js"],
  ["a script", "GET", "/secure-context.js"],
  ["a style sheet", "GET", "/sandbox.css"],
  ["JSON", "GET", "/models/manifest.json"],
  ["a model", "GET", `/${MODEL}`],
  ["content-hashed wasm", "GET", `/${WASM}`],
  ["304", "GET", "/worker.js", { "If-None-Match": `"${MANIFEST["worker.js"].sha256}"` }],
  ["304, weak and listed", "GET", `/${WASM}`, { "If-None-Match": `"x", W/"${MANIFEST[WASM].sha256}"` }],
  ["206", "GET", `/${MODEL}`, { Range: "bytes=0-99" }],
  ["206, suffix", "GET", `/${MODEL}`, { Range: "bytes=-10" }],
  ["416", "GET", `/${MODEL}`, { Range: "bytes=99999999-" }],
  ["416 of an immutable file", "GET", `/${WASM}`, { Range: `bytes=${MANIFEST[WASM].size}-` }],
  ["If-Range stale: 200", "GET", `/${MODEL}`, { Range: "bytes=0-9", "If-Range": '"stale"' }],
  ["multi-range ignored: 200", "GET", `/${MODEL}`, { Range: "bytes=0-1,4-5" }],
  ["404", "GET", "/nope.js"],
  ["404, HEAD", "HEAD", "/nope.js"],
  ["404, not in the allowlist", "GET", "/asset-manifest.json"],
  ["404, a directory", "GET", "/models/"],
  ["404, dot-dot", "GET", "/%2e%2e/Cargo.toml"],
  ["404, dot-file", "GET", "/.env"],
  ["404, backslash", "GET", "/models%5cdigits.onnx"],
  ["404, bad escape", "GET", "/%zz"],
  ["404, NUL", "GET", "/index.html%00.js"],
  ["405 POST", "POST", "/"],
  ["405 PUT", "PUT", "/sandbox.html"],
  ["405 DELETE", "DELETE", "/nope"],
  ["405 OPTIONS", "OPTIONS", "/index.html"],
  ["405 PATCH", "PATCH", "/worker.js"],
];

/** The local server of the Streamlit package, from the source tree, on a free port. */
async function startPythonServer() {
  const code = `
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("server", "python/streamlit_secure_context/server.py")
server = importlib.util.module_from_spec(spec); spec.loader.exec_module(server)
s = server.AssetServer(sys.argv[1], parents=[sys.argv[2]]).start()
print(s.origin, flush=True)
while True: time.sleep(3600)
`;
  const child = spawn("python3", ["-c", code, WEB, PARENT], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  const origin = await new Promise((resolve, reject) => {
    child.stdout.once("data", (d) => resolve(String(d).trim()));
    child.once("exit", (c) => reject(new Error(`python server exited ${c}`)));
  });
  return { port: Number(new URL(origin).port), stop: () => child.kill() };
}

function normalized(r) {
  const out = {};
  for (const [k, vs] of Object.entries(r.headers)) {
    if (IGNORED.has(k)) continue;
    let v = vs.join(", ");
    if (k === "content-security-policy") v = v.replace(/; report-uri \/__csp-report$/, "");
    out[k] = v;
  }
  return out;
}

let servers;
before(async () => {
  assert.ok(fs.existsSync(path.join(ROOT, "build", "policy.json")), "build/policy.json missing: run scripts/build-web");
  const [edge, python, node] = await Promise.all([
    startEdge({ SC_FRAME_ANCESTORS: PARENT }),
    startPythonServer(),
    startTestServer({ root: WEB, frameAncestors: [PARENT] }),
  ]);
  servers = { edge, python, "test server": { port: node.port, stop: () => node.close() } };
});
after(async () => {
  await Promise.all(Object.values(servers ?? {}).map((s) => s.stop()));
});

test("every server answers every request with the edge's status and headers", async () => {
  const problems = [];
  for (const [what, method, target, headers = {}] of REQUESTS) {
    const got = {};
    for (const [name, s] of Object.entries(servers)) got[name] = await req(s.port, method, target, headers);
    const edge = got.edge;
    const want = normalized(edge);
    assert.ok(want["content-security-policy"], `${what}: the edge sent its policy`);
    for (const name of ["python", "test server"]) {
      const r = got[name];
      if (r.status !== edge.status) {
        problems.push(`${what} (${method} ${target}): ${name} answered ${r.status}, the edge ${edge.status}`);
        continue;
      }
      const have = normalized(r);
      for (const k of new Set([...Object.keys(want), ...Object.keys(have)])) {
        if (want[k] !== have[k]) problems.push(`${what} (${method} ${target}) ${edge.status}: ${name} ${k}: ${JSON.stringify(have[k])}, the edge ${JSON.stringify(want[k])}`);
      }
      if (method !== "HEAD" && edge.status !== 304 && !r.body.equals(edge.body)) problems.push(`${what}: ${name} sent another body`);
    }
  }
  assert.deepEqual(problems, []);
});
