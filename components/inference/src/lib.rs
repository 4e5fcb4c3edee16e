//! The secure-context inference engine: tract (ONNX, TFLite) behind the wasi-nn model of
//! graphs, execution contexts and tensors.
//!
//! The same code is the `inference` WebAssembly component (see `component`, built for
//! `wasm32-wasip2`) and a native library the host links to compare against.
pub mod describe;
pub mod error;
mod f16_compute;
pub mod format;
pub mod graph;
pub mod limits;
mod onnx_check;
mod onnx_format;
mod onnx_if;
mod onnx_matmul_nbits;
mod onnx_ops;
mod onnx_pad;
mod onnx_stft;
mod onnx_value_info;
pub mod tensor;
mod tflite;

// The component (wasm32-wasip2); the threaded core build (wasm32-wasip1-threads) exports a C ABI
// instead (components/inference-threads).
#[cfg(all(target_arch = "wasm32", target_env = "p2"))]
mod component;

pub use describe::{Dim, GraphInfo, IoInfo};
pub use error::{ErrorCode, NnError, NnResult};
pub use format::{Encoding, Format};
pub use graph::{sha256_hex, Graph};
pub use limits::Limits;
pub use onnx_ops::narrow::{carried as onnx_narrow_tensor, Narrow};
pub use tensor::{ElementType, TensorData};

/// The tract version compiled in, for status displays.
pub const TRACT_VERSION: &str = "0.23.9";
