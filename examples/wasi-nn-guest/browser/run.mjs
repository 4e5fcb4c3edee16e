// Runs the composed wasi-nn guest (build/bindings/guest/classify.wasm, transpiled by jco for
// the browser) in the page: files are fetched into preview2-shim's in-memory filesystem,
// arguments set, stdout and stderr captured. Laid out by scripts/test-bindings in
// build/bindings/guest/web/ (engine/, shim/, models/).
//
// window.runGuest(args, files) runs the command once: args are its arguments, files maps a
// guest path ("/models/digits.onnx") to a same-origin URL. Resolves to {code, stdout, stderr}.
// The engine/ module imports ../shim/*.js: these are the same module instances.
import { _setArgs, _setStderr, _setStdout } from "./shim/cli.js";
import { _setFileData } from "./shim/filesystem.js";

function capture() {
  const chunks = [];
  return {
    chunks,
    write(bytes) {
      chunks.push(bytes.slice());
    },
    text: () => new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c]))),
  };
}

let ran = false;

async function runGuest(args, files) {
  // A command runs once per instance (its globals, its exit): one run per page load.
  if (ran) throw new Error("runGuest: reload the page to run again");
  ran = true;
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

window.runGuest = runGuest;

// The demo: without ?manual, classify the held-out digits shipped next to the page.
if (!new URLSearchParams(location.search).has("manual")) {
  const r = await runGuest(["/models/digits.onnx", "input=/models/x.npy"], {
    "/models/digits.onnx": "models/digits.onnx",
    "/models/x.npy": "models/x.npy",
  });
  document.getElementById("out").textContent =
    (r.stdout.split("\n").find((l) => l.includes("classes")) ?? "") + r.stderr + `\nexit ${r.code}`;
}
