#!/usr/bin/env node
// TEST-ONLY static server for build/web/. Not for production: the production server is the
// edge app (components/edge). This one exists so the browser tests can serve the runtime under
// the edge's header policy, switch parts of it off, swap files, and see every request and every
// CSP report.
//
//   node tests/browser/serve.mjs [--port 8080] [--root build/web]
//
// The policy is not written here: the headers per kind of response, the content types and the
// cache rules are the edge app's, as data (build/policy.json, `secure-context policy --json`,
// written by scripts/build-web from components/edge-core). Files are served from the root's
// asset-manifest.json, exactly as the edge does (an allowlist of exact paths; ETag, 304, Range,
// HEAD, 405). tests/policy/ compares this server's headers with the edge's, route by route.
//
// Test hooks, off by default: isolate:false (no COOP/COEP), csp:false (no CSP), dip:false (no
// Document-Isolation-Policy), overrides (a body served instead of a file: a tampered file, which
// the sandbox must refuse; or with repin:true another build's, the files that pin it re-pinned
// by web/pins.mjs up to sandbox.html, as a build would), the documents
// /__test/blank.html (isolated) and /__test/plain.html (no COOP/COEP), the request log, and a
// `report-uri` to /__csp-report on every CSP, whose reports are kept.
// No dependencies: node's http, fs, path, crypto, and web/pins.mjs.

import { createHash } from "node:crypto";
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { repin } from "../../web/pins.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const POLICY_PATH = path.join(ROOT, "build", "policy.json");
export const CSP_REPORT_PATH = "/__csp-report";

/** Debian's Chromium, and the flags every browser test launches it with: headless, and no
 * background connections (this machine's closed network refuses them, many at a time). */
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/** The edge's policy as data (build/policy.json). */
export function loadPolicy(file = POLICY_PATH) {
  let policy;
  try {
    policy = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file}: ${e.message}; run scripts/build-web (it writes the policy data)`);
  }
  if (policy.format !== "secure-context-policy/1") throw new Error(`${file}: unknown policy format ${policy.format}`);
  return policy;
}

/** Minimal documents for tests, served under /__test/<name>.html. `plain` has no COOP/COEP. */
const TEST_DOCS = {
  blank: { isolate: true },
  plain: { isolate: false },
};

const MAX_REPORT_BYTES = 64 * 1024;
const MAX_PATH = 1024;

/** The request path as an allowlist key, or null (404): the edge's rules (edge-core app.rs). */
export function pathToKey(raw) {
  if (raw.length > MAX_PATH || !raw.startsWith("/")) return null;
  const bytes = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x25) {
      const hex = raw.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return null;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (c > 0x7f) {
      return null;
    } else {
      bytes.push(c);
    }
  }
  let s;
  try {
    s = new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes));
  } catch {
    return null;
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\\:%]/.test(s)) return null;
  const rel = s.slice(1);
  if (rel === "") return "index.html";
  const ok = rel.split("/").every((seg) => seg !== "" && !seg.startsWith(".") && /^[A-Za-z0-9._-]+$/.test(seg));
  return ok ? rel : null;
}

function kindOf(policy, key) {
  if (policy.kinds.paths[key]) return policy.kinds.paths[key];
  for (const [suffix, kind] of Object.entries(policy.kinds.suffixes)) if (key.endsWith(suffix)) return kind;
  const name = key.slice(key.lastIndexOf("/") + 1);
  if (policy.kinds.names[name]) return policy.kinds.names[name];
  return policy.kinds.default;
}

function contentType(policy, key) {
  const ext = path.extname(key);
  return policy.content_types[ext] ?? policy.default_content_type;
}

/** The allowlist: root/asset-manifest.json, or (a test site without one) every file under root. */
function readAllowlist(root, policy) {
  const file = path.join(root, "asset-manifest.json");
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, "utf8"));
  const immutable = new RegExp(policy.cache.immutable_pattern);
  const walk = (dir) => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : [p];
  });
  const out = {};
  for (const f of walk(root)) {
    const rel = path.relative(root, f).split(path.sep).join("/");
    const bytes = fs.readFileSync(f);
    out[rel] = {
      sha256: createHash("sha256").update(bytes).digest("hex"),
      size: bytes.length,
      "content-type": contentType(policy, rel),
      immutable: immutable.test(rel),
    };
  }
  return out;
}

/** One `bytes=` range of a file of `size` bytes: null (ignore), "unsatisfiable", or [start, end]. */
function parseRange(v, size) {
  const m = /^bytes=(\d*)-(\d*)$/.exec(v.trim());
  if (!m || (m[1] === "" && m[2] === "") || m[1].length > 19 || m[2].length > 19) return null;
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return "unsatisfiable";
    return [size - Math.min(n, size), size - 1];
  }
  const start = Number(m[1]);
  let end = m[2] === "" ? size - 1 : Number(m[2]);
  if (m[2] !== "" && end < start) return null;
  end = Math.min(end, size - 1);
  if (start >= size) return "unsatisfiable";
  return [start, end];
}

/**
 * @param {object} opts
 * @param {string} opts.root                 directory served (its asset-manifest.json is the allowlist)
 * @param {number} [opts.port]               0 = any free port
 * @param {string} [opts.host]
 * @param {boolean} [opts.isolate]           send COOP/COEP (default true)
 * @param {boolean} [opts.csp]               send the CSP (default true)
 * @param {boolean} [opts.dip]               send Document-Isolation-Policy on sandbox.html (default true)
 * @param {boolean} [opts.permissions]       send the Permissions-Policy (default true; false for a
 *                                           server standing in for an embedder of another origin,
 *                                           which delegates features to its frames, e.g. the camera)
 * @param {string[]} [opts.frameAncestors]   origins allowed to frame sandbox.html
 * @param {Record<string, Buffer>} [opts.overrides]  url path -> body served instead of the file
 * @param {boolean} [opts.repin]             re-pin the site for the overrides (web/pins.mjs)
 * @param {string} [opts.policy]             the policy data (default build/policy.json)
 */
export async function startServer(opts) {
  const root = path.resolve(opts.root);
  const policy = loadPolicy(opts.policy);
  const isolate = opts.isolate !== false;
  const sendCsp = opts.csp !== false;
  const sendDip = opts.dip !== false;
  const sendPermissions = opts.permissions !== false;
  const frameAncestors = opts.frameAncestors ?? [];
  if (frameAncestors.length > policy.frame_ancestors.max) throw new Error("too many frame ancestors");
  const allowlist = readAllowlist(root, policy);
  let overrides = opts.overrides ?? {};
  if (opts.repin) {
    const changed = Object.fromEntries(Object.entries(overrides).map(([p, b]) => [p.replace(/^\//, ""), b]));
    const pinned = repin(allowlist, (rel) => fs.readFileSync(path.join(root, ...rel.split("/"))), changed);
    overrides = Object.fromEntries(Object.entries(pinned).map(([rel, b]) => [`/${rel}`, b]));
  }
  /** @type {Array<{method:string,url:string,headers:Record<string,string|undefined>,bodyBytes:number,body?:Buffer,status?:number}>} */
  const requests = [];
  /** @type {any[]} */
  const cspReports = [];

  /** The policy's headers for one kind, with the test switches applied. */
  function policyHeaders(kind, docIsolate = isolate) {
    const framed = kind === "sandbox-document" && frameAncestors.length > 0;
    const list = policy.headers[framed ? "sandbox-document-framed" : kind];
    const h = {};
    for (const [n, v] of list) {
      if (n === "content-security-policy") {
        if (!sendCsp) continue;
        h[n] = `${v.replace(policy.frame_ancestors.placeholder, frameAncestors.join(" "))}; report-uri ${CSP_REPORT_PATH}`;
      } else if ((n === "cross-origin-opener-policy" || n === "cross-origin-embedder-policy") && !docIsolate) {
        continue;
      } else if (n === "document-isolation-policy" && !sendDip) {
        continue;
      } else if (n === "permissions-policy" && !sendPermissions) {
        continue;
      } else {
        h[n] = v;
      }
    }
    return h;
  }

  function error(res, status, text, method, extra = {}) {
    const h = { ...policyHeaders("resource"), ...extra, "content-type": "text/plain; charset=utf-8", "cache-control": policy.cache.none };
    return send(res, status, h, text, method);
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size <= MAX_REPORT_BYTES) chunks.push(c);
    });
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const record = {
        method: req.method,
        url: req.url,
        headers: {
          origin: req.headers.origin,
          referer: req.headers.referer,
          "content-type": req.headers["content-type"],
          "sec-fetch-dest": req.headers["sec-fetch-dest"],
          "sec-fetch-mode": req.headers["sec-fetch-mode"],
          "sec-fetch-site": req.headers["sec-fetch-site"],
        },
        bodyBytes: size,
        body,
      };
      requests.push(record);
      handle(req, res, body, size).then(
        (status) => { record.status = status; },
        (err) => {
          record.status = 500;
          if (!res.headersSent) error(res, 500, `internal error: ${err}\n`, req.method);
          else res.end();
        },
      );
    });
  });

  async function handle(req, res, body, size) {
    const q = req.url.indexOf("?");
    const pathname = q >= 0 ? req.url.slice(0, q) : req.url;
    const method = req.method;

    if (pathname === CSP_REPORT_PATH && method === "POST") {
      if (size > MAX_REPORT_BYTES) return error(res, 413, "too large\n", method);
      try {
        const parsed = JSON.parse(body.toString("utf8"));
        const list = Array.isArray(parsed) ? parsed : [parsed];
        for (const r of list) cspReports.push(r["csp-report"] ?? r.body ?? r);
      } catch {
        cspReports.push({ unparsable: body.toString("utf8").slice(0, 512) });
      }
      return send(res, 204, { ...policyHeaders("resource"), "cache-control": policy.cache.none }, "", method);
    }
    if (method !== "GET" && method !== "HEAD") return error(res, 405, "method not allowed\n", method, { allow: policy.allow });

    const testDoc = /^\/__test\/([a-z]+)\.html$/.exec(pathname);
    if (testDoc && TEST_DOCS[testDoc[1]]) {
      const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${testDoc[1]}</title><link rel="icon" href="/favicon.svg"></head><body></body></html>\n`;
      const h = policyHeaders("document", isolate && TEST_DOCS[testDoc[1]].isolate);
      return send(res, 200, { ...h, "content-type": policy.content_types[".html"], "cache-control": policy.cache.none }, html, method);
    }

    const key = pathToKey(pathname);
    let data = overrides[pathname] ?? (key === null ? undefined : overrides[`/${key}`]);
    // An override is served even where the allowlist has no file (a test hook).
    const asset = (key === null ? undefined : allowlist[key])
      ?? (data ? { "content-type": contentType(policy, pathname), immutable: false } : undefined);
    if (!asset) return error(res, 404, "not found\n", method);
    let etagHash = asset.sha256;
    if (data) {
      etagHash = createHash("sha256").update(data).digest("hex");
    } else {
      try {
        data = await fs.promises.readFile(path.join(root, ...key.split("/")));
        if (data.length !== asset.size) return error(res, 503, "site unavailable: a file changed since the build\n", method);
      } catch {
        return error(res, 404, "not found\n", method);
      }
    }
    const kind = key === null ? "resource" : kindOf(policy, key);
    const etag = `"${etagHash}"`;
    const headers = {
      ...policyHeaders(kind),
      etag,
      "cache-control": asset.immutable ? policy.cache.immutable : policy.cache.revalidate,
    };
    const inm = req.headers["if-none-match"];
    if (inm && inm.split(",").map((t) => t.trim().replace(/^W\//, "")).some((t) => t === "*" || t === etag)) {
      return send(res, 304, headers, "", "HEAD");
    }
    headers["content-type"] = asset["content-type"];
    headers["accept-ranges"] = "bytes";
    const range = req.headers.range;
    const ifRange = req.headers["if-range"];
    if (range && (ifRange === undefined || ifRange.trim() === etag)) {
      const r = parseRange(range, data.length);
      if (r === "unsatisfiable") {
        return error(res, 416, "range not satisfiable\n", method, { "content-range": `bytes */${data.length}`, "accept-ranges": "bytes" });
      }
      if (r) {
        headers["content-range"] = `bytes ${r[0]}-${r[1]}/${data.length}`;
        return send(res, 206, headers, data.subarray(r[0], r[1] + 1), method);
      }
    }
    return send(res, 200, headers, data, method);
  }

  function send(res, status, headers, body, method = "GET") {
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
    const h = { ...headers };
    if (status !== 304 && status !== 204) h["content-length"] = buf.length;
    res.writeHead(status, h);
    res.end(method === "HEAD" ? undefined : buf);
    return status;
  }

  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", resolve);
  });
  const { address, port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  const origin = `http://${address}:${port}`;
  return {
    origin,
    port,
    requests,
    cspReports,
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const get = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : dflt;
  };
  const s = await startServer({
    root: get("--root", path.join(ROOT, "build", "web")),
    port: Number(get("--port", "8080")),
  });
  console.log(`TEST-ONLY server: ${s.origin}/  (Ctrl-C to stop)`);
  const timer = setInterval(() => {
    for (const r of s.cspReports.splice(0)) console.log("CSP report:", JSON.stringify(r));
  }, 1000);
  process.on("SIGINT", () => { clearInterval(timer); s.close().then(() => process.exit(0)); });
}
