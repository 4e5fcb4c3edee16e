//! The TFLite path: from the caller's flatbuffer to bytes tract-tflite can import safely.
//!
//! 1. `validate`: the indices the rewrite and tract follow (tensors, buffers, operator codes)
//!    and the window options tract divides by.
//! 2. `rules`: operators tract-tflite lacks, each replaced by constants or builtins it has (one
//!    rule per file, registered in one table), applied by `rewriter`, which writes the result
//!    with `writer` in front of the original bytes (the weights are never copied).
//! 3. `check`: the operators as tract will wire them (arity, ranks, axes, constants).
//! 4. `TfLite`, the format's `ModelFormat` (format.rs): the steps above, then tract-tflite.
//!
//! tract's own sources stay untouched.
mod check;
mod rewriter;
mod rules;
mod validate;
mod writer;

#[cfg(test)]
mod testing;

pub use check::{check, check_wired};
pub use rewriter::rewrite;

use crate::describe::{GraphInfo, IoInfo};
use crate::error::{describe_tract_error, ErrorCode, NnError, NnResult};
use crate::format::{Format, ModelFormat};
use crate::graph::{check_sizes, classify, internal, outlet_name, Graph};
use crate::limits::Limits;
use tract_onnx::prelude::*;
use tract_tflite::tflite::{self, BuiltinOperator, TensorType};

/// Bound on the dims the rewrite computes with, so that products of a few stay in i32.
const MAX_DIM: i32 = 1 << 14;

fn invalid(msg: impl std::fmt::Display) -> NnError {
    NnError::invalid(format!("not a valid TFLite model: {msg}"))
}

/// The builtin code of an operator code (codes above 127 live in `builtin_code`).
fn builtin_of(code: &tflite::OperatorCode) -> i32 {
    let deprecated = code.deprecated_builtin_code() as i32;
    if deprecated == BuiltinOperator::PLACEHOLDER_FOR_GREATER_OP_CODES.0 {
        code.builtin_code().0
    } else {
        deprecated
    }
}

/// Bytes per element of the types whose constants the engine reads.
fn elem_size(ty: TensorType) -> Option<usize> {
    Some(match ty {
        TensorType::FLOAT32 | TensorType::INT32 | TensorType::UINT32 => 4,
        TensorType::FLOAT16 | TensorType::INT16 | TensorType::UINT16 => 2,
        TensorType::INT8 | TensorType::UINT8 | TensorType::BOOL => 1,
        TensorType::INT64 | TensorType::UINT64 | TensorType::FLOAT64 => 8,
        _ => return None,
    })
}

fn op_name(code: i32) -> String {
    BuiltinOperator(code)
        .variant_name()
        .map_or_else(|| format!("operator code {code}"), str::to_string)
}

/// The names of the first subgraph's outputs, in order (a model `rewrite` has accepted).
pub fn output_names(bytes: &[u8]) -> NnResult<Vec<String>> {
    let model = tflite::root_as_model(bytes).map_err(invalid)?;
    let sg = validate::validate(&model)?;
    let tensors = sg.tensors();
    Ok(sg
        .outputs()
        .iter()
        .flatten()
        .map(|ix| {
            let name = tensors.as_ref().and_then(|t| t.get(ix as usize).name());
            name.unwrap_or_default().to_string()
        })
        .collect())
}

/// TFLite as a model format.
pub(crate) struct TfLite;

impl ModelFormat for TfLite {
    fn format(&self) -> Format {
        Format::TfLite
    }

    /// A flatbuffer whose file identifier "TFL3" sits at offset 4.
    fn sniff(&self, bytes: &[u8]) -> bool {
        bytes.get(4..8) == Some(b"TFL3")
    }

    fn load(&self, bytes: &[u8], sha256: String, limits: Limits) -> NnResult<Graph> {
        // Operators tract-tflite lacks become constants or builtins it has (tflite/rules/).
        let rewritten = rewrite(bytes)?;
        let bytes = rewritten.as_deref().unwrap_or(bytes);
        // What tract-tflite would index, unwrap or compute with unchecked (tflite/check.rs).
        check(bytes)?;
        let tflite = tract_tflite::tflite();
        let proto = tflite.proto_model_for_read(&mut &*bytes).map_err(|e| {
            NnError::invalid(format!(
                "not a valid TFLite model: {}",
                describe_tract_error(&e)
            ))
        })?;
        let mut model = tflite.model_for_proto_model(&proto).map_err(|e| {
            classify(
                "cannot import the TFLite graph",
                &e,
                ErrorCode::InvalidArgument,
            )
        })?;
        check_wired(&model)?;
        // Outputs keep the model's tensor names (tract names some after its last node, "x.bias").
        let names = output_names(bytes)?;
        let outlets = model.output_outlets().map_err(internal)?.to_vec();
        for (outlet, name) in outlets.into_iter().zip(names) {
            model.set_outlet_label(outlet, name).map_err(internal)?;
        }
        let typed_infos = |outlets: &[OutletId]| -> NnResult<Vec<IoInfo>> {
            outlets
                .iter()
                .map(|o| {
                    let fact = model.outlet_fact(*o).map_err(internal)?;
                    Ok(IoInfo::from_typed(outlet_name(&model, *o), fact))
                })
                .collect()
        };
        let info = GraphInfo {
            format: Format::TfLite,
            sha256,
            inputs: typed_infos(model.input_outlets().map_err(internal)?)?,
            outputs: typed_infos(model.output_outlets().map_err(internal)?)?,
        };
        let optimized = model.into_optimized().map_err(|e| {
            classify(
                "cannot optimize the TFLite graph",
                &e,
                ErrorCode::InvalidArgument,
            )
        })?;
        check_sizes(&optimized, &limits)?;
        let plan = optimized
            .into_runnable()
            .map_err(|e| classify("cannot plan the graph", &e, ErrorCode::RuntimeError))?;
        Ok(Graph::from_plan(info, plan, limits))
    }
}
