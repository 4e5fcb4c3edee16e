//! secure-context edge app: serves build/web (the browser runtime, the transpiled engine, the
//! models) from an allowlist built at build time, under one strict header policy.
//!
//! The logic (`app`, `policy`, `config`) is plain Rust, tested natively; `spin` binds it to
//! `wasi:http/handler@0.3.0` with spin-sdk 7 when built for wasm32-wasip2.
pub mod app;
pub mod config;
pub mod policy;

#[cfg(target_arch = "wasm32")]
mod spin;
