//! The edge app's logic, shared: settings (`config`), the one header policy (`policy`), the
//! allowlisted file server (`app`), plain Rust and tested natively; and `http_glue`, which binds
//! them to a Spin HTTP request and response in the wasm components (components/edge,
//! components/api). The host's runner applies `policy` to the responses it makes itself.
pub mod app;
pub mod config;
pub mod policy;
pub mod policy_data;

#[cfg(target_arch = "wasm32")]
pub mod http_glue;
