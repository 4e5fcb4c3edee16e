// preview2-shim's browser io shim as scripts/build-web copies it to build/web/shim/ (tsc only).
export * from "../../node_modules/@bytecodealliance/preview2-shim/types/io.js";
