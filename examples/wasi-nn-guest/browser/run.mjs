// The page of the composed wasi-nn guest (build/bindings/guest/classify.wasm, transpiled by jco
// for the browser): the guest runs in a module worker (worker.js), where the policy lets wasm
// compile; this page compiles nothing. Laid out by scripts/test-bindings in
// build/bindings/guest/web/ (engine/, shim/, models/).
//
// window.runGuest(args, files) runs the command once: args are its arguments, files maps a
// guest path ("/models/digits.onnx") to a same-origin URL. Resolves to {code, stdout, stderr}.

// Trusted Types: `new Worker(url)` is a sink; the one policy name the CSP allows lets our worker through.
const WORKER_URL = new URL("./worker.js", import.meta.url).href;
const policy = globalThis.trustedTypes?.createPolicy("secure-context", {
  createScriptURL(url) {
    if (url === WORKER_URL) return url;
    throw new TypeError(`refusing script URL ${url}`);
  },
});

let ran = false;

function runGuest(args, files) {
  // One run per page load, as before (the command's instance is the worker's).
  if (ran) return Promise.reject(new Error("runGuest: reload the page to run again"));
  ran = true;
  const worker = new Worker(/** @type {any} */ (policy ? policy.createScriptURL(WORKER_URL) : WORKER_URL), { type: "module" });
  return new Promise((resolve, reject) => {
    worker.addEventListener("message", (ev) => {
      worker.terminate();
      if (ev.data?.error) reject(new Error(ev.data.error));
      else resolve(ev.data);
    });
    worker.addEventListener("error", (ev) => {
      worker.terminate();
      reject(new Error(`the guest's worker failed: ${ev.message || "error"}`));
    });
    worker.postMessage({ args, files });
  });
}

window.runGuest = runGuest;

// The demo: without ?manual, classify the held-out digits shipped next to the page.
if (!new URLSearchParams(location.search).has("manual")) {
  const r = await runGuest(["/models/digits.onnx", "input=/models/x.npy"], {
    "/models/digits.onnx": new URL("models/digits.onnx", location.href).href,
    "/models/x.npy": new URL("models/x.npy", location.href).href,
  });
  document.getElementById("out").textContent =
    (r.stdout.split("\n").find((l) => l.includes("classes")) ?? "") + r.stderr + `\nexit ${r.code}`;
}
