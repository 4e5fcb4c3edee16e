#!/usr/bin/env node
// A deliberately weakened runtime server for the Streamlit end-to-end test's failure cases
// (--no-dip: no Document-Isolation-Policy, which the real edge app cannot be configured to
// drop): the reference server tests/browser/serve.mjs with the Streamlit origin in
// sandbox.html's frame-ancestors. The edge URL path itself is tested against the real edge app.
//   node tests/streamlit/edge_server.mjs --port P --parent http://127.0.0.1:8501 [--no-dip]
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startServer } from "../browser/serve.mjs";

const args = process.argv.slice(2);
const get = (n, d) => (args.includes(n) ? args[args.indexOf(n) + 1] : d);
const here = path.dirname(fileURLToPath(import.meta.url));
const s = await startServer({
  root: get("--root", path.join(here, "..", "..", "build", "web")),
  port: Number(get("--port", "0")),
  frameAncestors: args.flatMap((a, i) => (a === "--parent" ? [args[i + 1]] : [])),
  dip: !args.includes("--no-dip"),
});
console.log(s.origin);
process.on("SIGTERM", () => s.close().then(() => process.exit(0)));
