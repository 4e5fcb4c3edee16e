// @bjorn3/browser_wasi_shim as scripts/build-web copies it to build/web/wasi-shim/ (tsc only).
export * from "../../node_modules/@bjorn3/browser_wasi_shim/typings/index.js";
