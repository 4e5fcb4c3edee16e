//! ONNX operators and types tract-onnx lacks, added from our side through its operator
//! register (as `onnx_if.rs` does for `If`), never by changing tract. One module per family;
//! each says why it exists.
//!
//! `install` is the one entry point: it registers the operators and rewrites the model's
//! narrow element types (`lower.rs`) before tract reads it.
mod affine_grid;
mod attention;
mod batch_norm;
mod binarizer;
mod bitcast;
mod cast;
mod col2im;
mod conv_transpose;
mod crop_pad;
mod cumprod;
mod det;
mod losses;
mod lower;
mod lp_pool;
pub mod narrow;
mod optional;
mod qlinear_matmul;
mod quant;
mod recurrent;
mod scatter;
mod sequences;
mod spatial;

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
    attention::register(reg);
    batch_norm::register(reg);
    qlinear_matmul::register(reg);
    affine_grid::register(reg);
    col2im::register(reg);
    conv_transpose::register(reg);
    binarizer::register(reg);
    bitcast::register(reg);
    cumprod::register(reg);
    det::register(reg);
    crop_pad::register(reg);
    lp_pool::register(reg);
    optional::register(reg);
    scatter::register(reg);
    spatial::register(reg);
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

/// tract-onnx's own operator for `node` as the expansion it is, for the wrappers that check
/// what tract assumes and then hand the node to it (`conv_transpose.rs`, `spatial.rs`).
fn tract_expansion(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn Expansion>, Vec<String>)> {
    let (op, extra) = tract_builder(ctx, node)?;
    let expansion = op
        .as_op()
        .downcast_ref::<Box<dyn Expansion>>()
        .with_context(|| format!("tract-onnx's {} is not an expansion", node.op_type))?
        .clone();
    Ok((expansion, extra))
}

/// The element type (`TensorProto.DataType`) a graph declares for a value, as far as the
/// model says: graph inputs and outputs, value infos, initializers, of this graph and the
/// graphs around it.
fn declared_type(ctx: &ParsingContext, name: &str) -> Option<i32> {
    use tract_onnx::pb::type_proto::Value;
    ctx.parent_graphs.iter().rev().find_map(|g| {
        let infos = g.input.iter().chain(&g.output).chain(&g.value_info);
        infos
            .filter(|v| v.name == name)
            .find_map(|v| match v.r#type.as_ref()?.value.as_ref()? {
                Value::TensorType(t) => Some(t.elem_type),
            })
            .or_else(|| {
                g.initializer
                    .iter()
                    .find(|t| t.name == name)
                    .map(|t| t.data_type)
            })
    })
}
