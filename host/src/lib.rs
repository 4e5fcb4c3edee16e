//! The secure-context host: runs the `inference` component on wasmtime and, for comparison,
//! the same engine natively. The `secure-context` binary is a thin CLI over this library.
pub mod backend;
pub mod bench;
pub mod compare;
pub mod conformance;
pub mod models;
pub mod npy;
pub mod processing;
pub mod runtime;
pub mod serve;
pub mod spin_manifest;
