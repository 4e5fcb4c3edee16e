// Runs the composed wasi-nn guest (classify.wasm transpiled by jco for the browser) in a module
// worker: the one context of the page whose CSP allows compiling wasm ('wasm-unsafe-eval'), as in
// the runtime itself. One run per worker (a command runs once per instance): the page starts a
// worker per run. Files are fetched into preview2-shim's in-memory filesystem, arguments set,
// stdout and stderr captured.
//
// Request {args: string[], files: {guestPath: url}} -> {code, stdout, stderr} | {error}.
import { _setArgs, _setStderr, _setStdout } from "./shim/cli.js";
import { _setFileData } from "./shim/filesystem.js";

function capture() {
  const chunks = [];
  return {
    write(bytes) {
      chunks.push(bytes.slice());
    },
    text: () => new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c]))),
  };
}

async function runGuest(args, files) {
  const root = { dir: {} };
  for (const [guestPath, url] of Object.entries(files)) {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    const parts = guestPath.split("/").filter(Boolean);
    let dir = root;
    for (const p of parts.slice(0, -1)) dir = dir.dir[p] ??= { dir: {} };
    dir.dir[parts.at(-1)] = { source: new Uint8Array(await res.arrayBuffer()) };
  }
  _setFileData(root);
  _setArgs(["classify", ...args]);
  const out = capture();
  const err = capture();
  _setStdout(out);
  _setStderr(err);
  const { run } = await import("./engine/classify.js");
  let code = 0;
  try {
    run.run();
  } catch (e) {
    // `result::err` from wasi:cli/run (a ComponentError), or an exit: the command said why on
    // stderr. Anything else is a trap and is reported.
    if (e?.constructor?.name === "ComponentError") code = 1;
    else if (e?.exitError) code = e.code;
    else throw e;
  }
  return { code, stdout: out.text(), stderr: err.text() };
}

self.addEventListener("message", async (ev) => {
  try {
    self.postMessage(await runGuest(ev.data.args, ev.data.files));
  } catch (e) {
    self.postMessage({ error: String(e?.stack ?? e) });
  }
}, { once: true });
