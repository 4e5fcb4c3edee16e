//! secure-context edge app: serves build/web (the browser runtime, the transpiled engine, the
//! models) from an allowlist built at build time, under one strict header policy. The logic is
//! in `edge-core`; this crate is the component (`wasi:http/incoming-handler@0.2`).
#[cfg(target_arch = "wasm32")]
mod handler;
