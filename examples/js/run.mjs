#!/usr/bin/env node
// Run a model through the engine component from JavaScript (Node), transpiled by jco.
//
//   scripts/test-bindings --build-only     # or: jco transpile inference.wasm -o build/bindings/js/engine
//   node examples/js/run.mjs --model models/digits.onnx \
//       --input input=models/digits-test/x.npy --out /tmp/out-js
//
// The engine is target/wasm32-wasip2/wasm/inference.wasm, transpiled with jco's default Node
// output (WASI from @bytecodealliance/preview2-shim) and driven only through its standard
// wasi:nn exports, as `secure-context run` does. Each output goes to DIR/NAME.npy; errors print
// as `error: <wasi-nn code>: <message>` and exit with status 1.
// inference.wasm uses relaxed SIMD: Node 20 needs `node --experimental-wasm-relaxed-simd`
// (Node 21+ has it on by default), or transpile inference-baseline.wasm (simd128 only) instead.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, extname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const DEFAULT_ENGINE = join(REPO, "build/bindings/js/engine/inference.js");

// wasi-nn tensor-type <-> .npy descr (wasi-nn tensor data is little-endian). BF16 has no
// .npy type: it is written as its raw 16-bit words. A copy of the tables in components/nn-tables
// (`secure-context tables --json`), kept here so this file stands alone; tests/bindings checks it.
export const DESCR = { FP16: "<f2", FP32: "<f4", FP64: "<f8", BF16: "<u2", U8: "|u1", I32: "<i4", I64: "<i8" };
export const TYPE_OF = { "<f2": "FP16", "<f4": "FP32", "<f8": "FP64", "|u1": "U8", "<u1": "U8", "u1": "U8", "<i4": "I32", "<i8": "I64" };

/** Reads a C-order .npy file (versions 1-3): { type, shape, data: Uint8Array }. */
export function readNpy(file) {
  const buf = readFileSync(file);
  if (buf.length < 10 || buf.toString("latin1", 0, 6) !== "\x93NUMPY") throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString("latin1", start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new Error(`${file}: unreadable .npy header`);
  if (fortran === "True") throw new Error(`${file}: Fortran-order arrays are not supported`);
  const type = TYPE_OF[descr];
  if (!type) throw new Error(`${file}: wasi-nn has no tensor type for dtype ${descr}`);
  const shape = shapeText.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  // A copy: small files are read into Node's shared buffer pool.
  return { type, shape, data: new Uint8Array(buf.subarray(start + headerLen)) };
}

/** Writes a .npy (version 1.0) file, header padded to 64 bytes as numpy does. */
export function writeNpy(file, type, shape, data) {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(", ");
  let header = `{'descr': '${DESCR[type]}', 'fortran_order': False, 'shape': (${dims}), }`;
  header += " ".repeat(63 - ((10 + header.length) % 64)) + "\n";
  const pre = Buffer.alloc(10);
  pre.write("\x93NUMPY", 0, "latin1");
  pre[6] = 1;
  pre.writeUInt16LE(header.length, 8);
  writeFileSync(file, Buffer.concat([pre, Buffer.from(header, "latin1"), data]));
}

/** Loads the transpiled engine and returns a `run(model, encoding, inputs)` over wasi:nn. */
export async function openEngine(enginePath = DEFAULT_ENGINE) {
  const { graph, tensor } = await import(pathToFileURL(resolve(enginePath)).href);
  return function run(modelBytes, encoding, inputs) {
    const g = graph.load([modelBytes], encoding, "cpu");
    const ctx = g.initExecutionContext();
    const named = Object.entries(inputs).map(([name, t]) => [
      name,
      new tensor.Tensor(Uint32Array.from(t.shape), t.type, t.data),
    ]);
    const outputs = {};
    for (const [name, t] of ctx.compute(named)) {
      outputs[name] = { type: t.ty(), shape: Array.from(t.dimensions()), data: t.data() };
      t[Symbol.dispose]();
    }
    ctx[Symbol.dispose]();
    g[Symbol.dispose]();
    return outputs;
  };
}

/** A wasi-nn `error` resource, as jco throws it (ComponentError.payload), as "code: message". */
export function nnErrorText(e) {
  const err = e?.payload;
  if (!err || typeof err.code !== "function") return null;
  const text = `${err.code()}: ${err.data()}`;
  err[Symbol.dispose]();
  return text;
}

function encodingFor(model) {
  return { ".onnx": "onnx", ".tflite": "tensorflowlite" }[extname(model).toLowerCase()] ?? "autodetect";
}

async function main() {
  const { values } = parseArgs({
    options: {
      model: { type: "string" },
      input: { type: "string", multiple: true },
      out: { type: "string" },
      engine: { type: "string", default: DEFAULT_ENGINE },
    },
  });
  if (!values.model || !values.input?.length || !values.out) {
    console.error("usage: run.mjs --model FILE --input NAME=FILE.npy [--input ...] --out DIR [--engine inference.js]");
    return 2;
  }
  const inputs = {};
  for (const spec of values.input) {
    const eq = spec.indexOf("=");
    if (eq <= 0) {
      console.error(`error: --input ${JSON.stringify(spec)}: expected NAME=FILE.npy`);
      return 2;
    }
    inputs[spec.slice(0, eq)] = readNpy(spec.slice(eq + 1));
  }
  if (!existsSync(values.engine)) {
    console.error(`error: ${values.engine} not found: transpile the engine first (scripts/test-bindings --build-only)`);
    return 2;
  }
  const run = await openEngine(values.engine);
  let outputs;
  try {
    outputs = run(readFileSync(values.model), encodingFor(values.model), inputs);
  } catch (e) {
    const text = nnErrorText(e);
    if (text === null) throw e;
    console.error(`error: ${text}`);
    return 1;
  }
  mkdirSync(values.out, { recursive: true });
  for (const [name, t] of Object.entries(outputs)) {
    // Same file naming as `secure-context run`.
    writeNpy(join(values.out, `${name.replace(/[^A-Za-z0-9._-]/g, "_")}.npy`), t.type, t.shape, t.data);
    console.log(`${name}: ${t.type}[${t.shape.join(", ")}]`);
  }
  return 0;
}

// Run as a command, not when imported (process.argv[1] is unset under `node -e`).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main().catch((e) => {
    // Unreadable files and bad .npy headers: one line, not a stack trace.
    console.error(`error: ${e.message}`);
    return 1;
  });
}
