#!/usr/bin/env node
// Run a wasi:cli command component in Node, transpiled by jco, like `wasmtime run`.
//
//   jco transpile build/bindings/guest/classify.wasm -o build/bindings/guest/js
//   node examples/wasi-nn-guest/run_node.mjs [--dir DIR]... build/bindings/guest/js/classify.js [ARGS...]
//
// WASI comes from @bytecodealliance/preview2-shim's Node build, which preopens nothing by
// default: each --dir is preopened under its own name (default: the current directory as `.`).
// The exit status is the command's. (`jco run` preopens no directory, so the guest could read no file.)
import { realpathSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
// The transpiled module imports the shim by bare specifier, resolved (symlinks followed) to
// this package: configure that same module instance.
const SHIM = realpathSync(join(REPO, "web/node_modules/@bytecodealliance/preview2-shim/dist/nodejs"));

const argv = process.argv.slice(2);
const dirs = [];
while (argv[0] === "--dir" && argv.length > 1) dirs.push(argv.splice(0, 2)[1]);
const [module, ...args] = argv;
if (!module || module.startsWith("-")) {
  console.error("usage: run_node.mjs [--dir DIR]... COMMAND.js [ARGS...]");
  process.exit(2);
}

const { _setArgs } = await import(pathToFileURL(join(SHIM, "cli.js")).href);
const { _setPreopens } = await import(pathToFileURL(join(SHIM, "filesystem.js")).href);
_setArgs([module, ...args]);
_setPreopens(Object.fromEntries((dirs.length ? dirs : ["."]).map((d) => [d, resolve(d)])));

const { run } = await import(pathToFileURL(resolve(module)).href);
if (typeof run?.run !== "function") {
  console.error(`error: ${module} exports no wasi:cli/run: not a command`);
  process.exit(2);
}
try {
  run.run();
  process.exitCode = 0;
} catch (e) {
  // `run: func() -> result`: jco throws a ComponentError for `err`; the command already
  // printed why on stderr. Anything else is a trap: show it.
  if (e?.constructor?.name !== "ComponentError") console.error(e);
  process.exitCode = 1;
}
