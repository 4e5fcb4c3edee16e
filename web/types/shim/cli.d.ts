// preview2-shim's browser cli shim as scripts/build-web copies it to build/web/shim/ (tsc only).
export * from "../../node_modules/@bytecodealliance/preview2-shim/types/cli.js";
