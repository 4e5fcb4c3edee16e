//! ONNX operators and types tract-onnx lacks, added from our side through its operator
//! register (as `onnx_if.rs` does for `If`), never by changing tract. One module per family;
//! each says why it exists.
//!
//! `install` is the one entry point: it registers the operators and rewrites the model's
//! narrow element types (`lower.rs`) before tract reads it.
mod cast;
mod losses;
mod lower;
pub mod narrow;
mod quant;
mod recurrent;

pub use lower::Declared;

use std::sync::OnceLock;
use tract_hir::internal::*;
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::{ModelProto, NodeProto};

pub fn install(reg: &mut OnnxOpRegister, model: &mut ModelProto) -> TractResult<Declared> {
    cast::register(reg);
    quant::register(reg);
    losses::register(reg);
    recurrent::register(reg);
    lower::lower(model)
}

type Built = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

/// tract-onnx's own builder for `node`, for the cases where ours defers to it.
fn tract_builder(ctx: &ParsingContext, node: &NodeProto) -> Built {
    static TRACT: OnceLock<OnnxOpRegister> = OnceLock::new();
    let reg = TRACT.get_or_init(|| tract_onnx::onnx().op_register);
    let builder = reg
        .0
        .get(&node.op_type)
        .with_context(|| format!("tract-onnx has no {} operator", node.op_type))?;
    builder(ctx, node)
}
