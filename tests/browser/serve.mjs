#!/usr/bin/env node
// TEST-ONLY static server for build/web/. Not for production: the production server is a
// separate Spin app. This one exists so the browser tests can check the runtime under the
// exact headers it is designed for, and records every request and every CSP report.
//
//   node tests/browser/serve.mjs [--port 8080] [--root build/web]
//
// Headers on every response: COOP same-origin + COEP require-corp (unless isolate:false),
// CORP same-origin, the runtime's CSP (+ frame-ancestors, + report-uri to /__csp-report),
// X-Content-Type-Options nosniff; Document-Isolation-Policy on sandbox.html.
// No dependencies: node's http, fs, path, crypto only.

import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

// The runtime's CSP: static/csp-directives.txt, the one list every server reads.
export const CSP_DIRECTIVES = fs
  .readFileSync(new URL("../../static/csp-directives.txt", import.meta.url), "utf8")
  .split("\n")
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith("#"));

export const CSP_REPORT_PATH = "/__csp-report";

const CONTENT_TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".onnx": "application/octet-stream",
  ".tflite": "application/octet-stream",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
};

/** Minimal documents for tests, served under /__test/<name>.html. `plain` has no COOP/COEP. */
const TEST_DOCS = {
  blank: { isolate: true },
  plain: { isolate: false },
};

const MAX_REPORT_BYTES = 64 * 1024;

/**
 * @param {object} opts
 * @param {string} opts.root                 directory served
 * @param {number} [opts.port]               0 = any free port
 * @param {string} [opts.host]
 * @param {boolean} [opts.isolate]           send COOP/COEP (default true)
 * @param {boolean} [opts.csp]               send the CSP (default true)
 * @param {boolean} [opts.dip]               send Document-Isolation-Policy on sandbox.html (default true)
 * @param {string[]} [opts.frameAncestors]   extra origins allowed to frame sandbox.html
 * @param {Record<string, Buffer>} [opts.overrides]  url path -> body served instead of the file
 */
export async function startServer(opts) {
  const root = path.resolve(opts.root);
  const isolate = opts.isolate !== false;
  const sendCsp = opts.csp !== false;
  const sendDip = opts.dip !== false;
  const frameAncestors = opts.frameAncestors ?? [];
  const overrides = opts.overrides ?? {};
  /** @type {Array<{method:string,url:string,headers:Record<string,string|undefined>,bodyBytes:number,body?:Buffer,status?:number}>} */
  const requests = [];
  /** @type {any[]} */
  const cspReports = [];

  function csp(pathname) {
    const ancestors = pathname === "/sandbox.html" ? ["'self'", ...frameAncestors] : ["'self'"];
    return [...CSP_DIRECTIVES, `frame-ancestors ${ancestors.join(" ")}`, `report-uri ${CSP_REPORT_PATH}`].join("; ");
  }

  function baseHeaders(pathname, docIsolate) {
    const h = {
      "X-Content-Type-Options": "nosniff",
      "Cross-Origin-Resource-Policy": "same-origin",
      "Referrer-Policy": "no-referrer",
    };
    if (sendCsp) h["Content-Security-Policy"] = csp(pathname);
    if (docIsolate) {
      h["Cross-Origin-Opener-Policy"] = "same-origin";
      h["Cross-Origin-Embedder-Policy"] = "require-corp";
    }
    if (pathname === "/sandbox.html" && sendDip) h["Document-Isolation-Policy"] = "isolate-and-require-corp";
    return h;
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
          if (!res.headersSent) res.writeHead(500, { "Content-Type": "text/plain" });
          res.end(String(err));
        },
      );
    });
  });

  async function handle(req, res, body, size) {
    const url = new URL(req.url, "http://localhost");
    const pathname = url.pathname;

    if (pathname === CSP_REPORT_PATH) {
      if (req.method !== "POST") return send(res, 405, {}, "");
      if (size > MAX_REPORT_BYTES) return send(res, 413, {}, "");
      try {
        const parsed = JSON.parse(body.toString("utf8"));
        const list = Array.isArray(parsed) ? parsed : [parsed];
        for (const r of list) cspReports.push(r["csp-report"] ?? r.body ?? r);
      } catch {
        cspReports.push({ unparsable: body.toString("utf8").slice(0, 512) });
      }
      return send(res, 204, {}, "");
    }

    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, { Allow: "GET, HEAD" }, "");

    const testDoc = /^\/__test\/([a-z]+)\.html$/.exec(pathname);
    if (testDoc && TEST_DOCS[testDoc[1]]) {
      const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${testDoc[1]}</title><link rel="icon" href="/favicon.svg"></head><body></body></html>\n`;
      const h = baseHeaders(pathname, isolate && TEST_DOCS[testDoc[1]].isolate);
      return send(res, 200, { ...h, "Content-Type": CONTENT_TYPES[".html"], "Cache-Control": "no-store" }, html, req.method);
    }

    let rel;
    try {
      rel = decodeURIComponent(pathname);
    } catch {
      return send(res, 400, {}, "bad path");
    }
    if (rel.endsWith("/")) rel += "index.html";
    if (rel.split("/").some((seg) => seg.startsWith("."))) return send(res, 404, baseHeaders(pathname, isolate), "not found");
    const file = path.resolve(root, "." + rel);
    if (file !== root && !file.startsWith(root + path.sep)) return send(res, 404, baseHeaders(pathname, isolate), "not found");

    let data = overrides[pathname];
    if (!data) {
      try {
        const st = await fs.promises.stat(file);
        if (!st.isFile()) return send(res, 404, baseHeaders(pathname, isolate), "not found");
        data = await fs.promises.readFile(file);
      } catch {
        return send(res, 404, baseHeaders(pathname, isolate), "not found");
      }
    }
    const ext = path.extname(file);
    const hashed = /\.[0-9a-f]{8}\.[a-z]+$/.test(file);
    return send(res, 200, {
      ...baseHeaders(pathname, isolate),
      "Content-Type": CONTENT_TYPES[ext] ?? "application/octet-stream",
      "Cache-Control": hashed ? "public, max-age=31536000, immutable" : "no-cache",
    }, data, req.method);
  }

  function send(res, status, headers, body, method = "GET") {
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
    res.writeHead(status, { ...headers, "Content-Length": buf.length });
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
  const here = path.dirname(fileURLToPath(import.meta.url));
  const s = await startServer({
    root: get("--root", path.join(here, "..", "..", "build", "web")),
    port: Number(get("--port", "8080")),
  });
  console.log(`TEST-ONLY server: ${s.origin}/  (Ctrl-C to stop)`);
  const timer = setInterval(() => {
    for (const r of s.cspReports.splice(0)) console.log("CSP report:", JSON.stringify(r));
  }, 1000);
  process.on("SIGINT", () => { clearInterval(timer); s.close().then(() => process.exit(0)); });
}
