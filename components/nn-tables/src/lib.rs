//! The wasi-nn tables, written once: the carriers (`wasi:nn/tensor.tensor-type`), the element
//! types models declare and how each travels in a carrier (byte widths, range rules), the error
//! codes (`wasi:nn/errors.error-code`) with the HTTP status the API answers each with, and the
//! `f32[1,3,224,224]` notation every shape message uses.
//!
//! The engine, its component glue, the host, the API and the wasi-nn guest all read these; the
//! generated WIT types of each binding convert through [`wit_conversions!`], and the JavaScript
//! and Python copies are checked against [`json::tables_json`] (`secure-context tables --json`).
//! Nothing here depends on tract, so the API component links it without the engine.
/// A table's first column as an array: `ALL`, in the table's order, so the order is written once.
macro_rules! first_column {
    ($table:expr, $fill:expr) => {{
        let mut all = [$fill; $table.len()];
        let mut i = 0;
        while i < all.len() {
            all[i] = $table[i].0;
            i += 1;
        }
        all
    }};
}

mod element;
mod error;
#[cfg(feature = "json")]
pub mod json;
mod signature;
mod wit;

pub use element::{label, DType, ElementType};
pub use error::ErrorCode;
pub use signature::{signature, signature_unranked, type_label};
