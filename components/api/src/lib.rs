//! secure-context server-side inference API: `components/inference` (the engine the browser
//! runs) behind HTTP. This component imports wasi:nn and our introspection (world `client` in
//! wit/); `wac plug` composes the engine in at build time, so the server runs exactly the same
//! `inference.wasm`, never a second implementation. Off unless `SC_API=on`.
//!
//! The request/response logic (`protocol`, `dtype`, `routes`, `error`) is plain Rust, tested
//! natively; `engine` and `handler` exist only in the wasm build.
pub mod dtype;
pub mod error;
mod json_inputs;
pub mod protocol;
pub mod routes;

#[cfg(target_arch = "wasm32")]
mod engine;
#[cfg(target_arch = "wasm32")]
mod handler;
