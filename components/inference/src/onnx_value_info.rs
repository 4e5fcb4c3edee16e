//! ONNX `value_info` (shape hints on intermediate tensors) without their named dimensions.
//!
//! PyTorch and optimum exports annotate intermediates with the inputs' dimension names
//! (`batch_size`, `sequence_length`) or with names of their own. tract reads each name as a
//! symbol, and once a plan gives the inputs concrete shapes those symbols stay free inside the
//! graph and clash with the concrete dims ("Impossible to unify Sym(batch_size) with Val(1)").
//! The hints keep their element types and fixed dims, which help analysis; a named dim becomes
//! unknown, and analysis of the concrete inputs fills it in, as onnxruntime does with hints it
//! cannot use. This edits the engine's decoded copy of the model, never the caller's bytes.
use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
use tract_onnx::pb::type_proto::Value;
use tract_onnx::pb::{GraphProto, ModelProto};

pub fn forget_named_dims(model: &mut ModelProto) {
    if let Some(graph) = model.graph.as_mut() {
        forget_in_graph(graph);
    }
}

fn forget_in_graph(graph: &mut GraphProto) {
    for info in &mut graph.value_info {
        let Some(Value::TensorType(tensor)) = info.r#type.as_mut().and_then(|t| t.value.as_mut())
        else {
            continue;
        };
        for dim in tensor.shape.iter_mut().flat_map(|s| s.dim.iter_mut()) {
            if matches!(dim.value, Some(Dim::DimParam(_))) {
                dim.value = None;
            }
        }
    }
    for node in &mut graph.node {
        for attr in &mut node.attribute {
            for sub in attr.g.iter_mut().chain(attr.graphs.iter_mut()) {
                forget_in_graph(sub);
            }
        }
    }
}
