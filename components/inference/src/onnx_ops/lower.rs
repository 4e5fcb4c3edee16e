//! Rewrites an ONNX model, before tract reads it, so that every tensor has a type tract has
//! (and, through `sequences.rs`, so that statically known sequences become tensors).
//!
//! tract-onnx refuses a model as soon as a graph input, output, initializer or constant is
//! bfloat16, float8, float4, 4- or 2-bit (its parser has no such types), before any operator
//! builder runs. Here such tensors become their held type (`narrow.rs`): values decoded
//! exactly, value infos re-typed. What the held type forgets, the declared narrow type, is
//! kept where it matters: for the model's inputs and outputs (returned, so that they are
//! carried and rounded as declared), and for the two operators whose result type is the type
//! of another tensor (CastLike becomes a Cast to that type; QuantizeLinear gets its
//! `output_dtype`).
use super::narrow::{decode_proto, held_proto, Narrow};
use std::collections::HashMap;
use tract_hir::internal::*;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::type_proto::Value;
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto,
};

/// The narrow types the model declares for its own inputs and outputs, by name.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    pub inputs: HashMap<String, Narrow>,
    pub outputs: HashMap<String, Narrow>,
}

pub fn lower(model: &mut ModelProto) -> TractResult<Declared> {
    let mut declared = Declared::default();
    let Some(graph) = model.graph.as_mut() else {
        return Ok(declared);
    };
    let narrow_of = |v: &ValueInfoProto| Some((v.name.clone(), Narrow::from_onnx(elem_type(v)?)?));
    declared.inputs = graph.input.iter().filter_map(narrow_of).collect();
    declared.outputs = graph.output.iter().filter_map(narrow_of).collect();
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version);
    lower_graph(graph, &HashMap::new(), opset)?;
    Ok(declared)
}

fn elem_type(v: &ValueInfoProto) -> Option<i32> {
    match v.r#type.as_ref()?.value.as_ref()? {
        Value::TensorType(t) => Some(t.elem_type),
    }
}

/// `outer`: element types known in the enclosing graphs (a subgraph may read their values).
fn lower_graph(
    graph: &mut GraphProto,
    outer: &HashMap<String, i32>,
    opset: i64,
) -> TractResult<()> {
    super::sequences::rewrite(graph, opset);
    let mut types = outer.clone();
    for v in graph
        .input
        .iter()
        .chain(&graph.output)
        .chain(&graph.value_info)
    {
        if let Some(t) = elem_type(v) {
            types.insert(v.name.clone(), t);
        }
    }
    for t in &graph.initializer {
        types.insert(t.name.clone(), t.data_type);
    }
    for node in &mut graph.node {
        rewrite_node(node, &types);
        for (ix, out) in node.output.iter().enumerate() {
            if let Some(t) = output_type(node, ix, &types) {
                types.insert(out.clone(), t);
            }
        }
        for attr in &mut node.attribute {
            lower_attribute(attr, &types, opset)?;
        }
    }
    for t in &mut graph.initializer {
        lower_tensor(t)?;
    }
    for v in graph
        .input
        .iter_mut()
        .chain(&mut graph.output)
        .chain(&mut graph.value_info)
    {
        if let Some(Value::TensorType(t)) = v.r#type.as_mut().and_then(|t| t.value.as_mut()) {
            if let Some(n) = Narrow::from_onnx(t.elem_type) {
                t.elem_type = n.held_onnx();
            }
        }
    }
    Ok(())
}

/// CastLike to a narrow type becomes Cast; QuantizeLinear learns its narrow output type.
fn rewrite_node(node: &mut NodeProto, types: &HashMap<String, i32>) {
    let typed = |ix: usize| node.input.get(ix).and_then(|name| types.get(name)).copied();
    match node.op_type.as_str() {
        "CastLike" => {
            if let Some(to) = typed(1).filter(|&t| Narrow::from_onnx(t).is_some()) {
                node.op_type = "Cast".into();
                node.input.truncate(1);
                node.attribute.push(int_attr("to", to as i64));
            }
        }
        "QuantizeLinear" => {
            let has_dtype = node
                .attribute
                .iter()
                .any(|a| a.name == "output_dtype" && a.i != 0);
            if let Some(zp) = typed(2).filter(|&t| Narrow::from_onnx(t).is_some()) {
                if !has_dtype {
                    node.attribute.retain(|a| a.name != "output_dtype");
                    node.attribute.push(int_attr("output_dtype", zp as i64));
                }
            }
        }
        _ => {}
    }
}

/// The element type a node gives, where the model rewrite needs to know it.
fn output_type(node: &NodeProto, ix: usize, types: &HashMap<String, i32>) -> Option<i32> {
    let attr = |name: &str| node.attribute.iter().find(|a| a.name == name);
    let input = |i: usize| node.input.get(i).and_then(|n| types.get(n)).copied();
    match node.op_type.as_str() {
        "Constant" => attr("value")
            .and_then(|a| a.t.as_ref())
            .map(|t| t.data_type),
        "Cast" => attr("to").map(|a| a.i as i32),
        "QuantizeLinear" => attr("output_dtype")
            .map(|a| a.i as i32)
            .filter(|&t| t != 0)
            .or(input(2)),
        // Operators that move values without changing their type.
        "Identity" | "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Transpose" | "Slice"
        | "Gather" | "GatherElements" | "GatherND" | "Concat" | "Expand" | "Tile" | "Split"
        | "Pad" | "DepthToSpace" | "SpaceToDepth" | "Compress" | "ReverseSequence"
            if ix < node.output.len() =>
        {
            input(0)
        }
        _ => None,
    }
}

fn int_attr(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn lower_attribute(
    attr: &mut AttributeProto,
    types: &HashMap<String, i32>,
    opset: i64,
) -> TractResult<()> {
    if let Some(t) = attr.t.as_mut() {
        lower_tensor(t)?;
    }
    for t in &mut attr.tensors {
        lower_tensor(t)?;
    }
    if let Some(g) = attr.g.as_mut() {
        lower_graph(g, types, opset)?;
    }
    for g in &mut attr.graphs {
        lower_graph(g, types, opset)?;
    }
    Ok(())
}

fn lower_tensor(t: &mut TensorProto) -> TractResult<()> {
    if let Some(decoded) = decode_proto(t) {
        let (narrow, tensor) = decoded?;
        *t = held_proto(&t.name, &tensor, narrow)?;
    }
    Ok(())
}
