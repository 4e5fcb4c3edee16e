//! Sequences whose every element is known when the model is read, rewritten into plain
//! tensors: tract has no sequence type. Exporters emit them for Python lists the graph builds
//! and takes apart again: `torch.stack`/`torch.cat` of a list (SequenceConstruct +
//! ConcatFromSequence), `torch.split` into a list that is then indexed (SplitToSequence with
//! sizes + SequenceAt), plus SequenceEmpty/Insert/Erase/Length at constant positions.
//!
//! A sequence becomes the list of its elements' names; each operator on it becomes tensor
//! operators (Identity, Split, Concat, Unsqueeze, a constant length). Only a graph where every
//! use of every sequence is rewritable is changed; otherwise it is left as it is, and tract
//! reports the operator it lacks.
use std::collections::HashMap;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::{AttributeProto, GraphProto, NodeProto, TensorProto};

const SEQUENCE_OPS: &[&str] = &[
    "SequenceEmpty",
    "SequenceConstruct",
    "SequenceInsert",
    "SequenceErase",
    "SequenceAt",
    "SequenceLength",
    "ConcatFromSequence",
    "SplitToSequence",
];

pub fn rewrite(graph: &mut GraphProto, opset: i64) {
    if !graph
        .node
        .iter()
        .any(|n| SEQUENCE_OPS.contains(&n.op_type.as_str()))
    {
        return;
    }
    if let Some((nodes, initializers)) = rewritten(graph, opset) {
        graph.node = nodes;
        graph.initializer.extend(initializers);
    }
}

/// Integer values of the graph's constants (initializers and Constant nodes).
fn constants(graph: &GraphProto) -> HashMap<String, Vec<i64>> {
    let ints = |t: &TensorProto| -> Option<Vec<i64>> {
        match t.data_type {
            7 if !t.raw_data.is_empty() => Some(
                t.raw_data
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                    .collect(),
            ),
            7 => Some(t.int64_data.clone()),
            6 if !t.raw_data.is_empty() => Some(
                t.raw_data
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes(b.try_into().unwrap_or([0; 4])) as i64)
                    .collect(),
            ),
            6 => Some(t.int32_data.iter().map(|&v| v as i64).collect()),
            _ => None,
        }
    };
    let mut out: HashMap<String, Vec<i64>> = graph
        .initializer
        .iter()
        .filter_map(|t| Some((t.name.clone(), ints(t)?)))
        .collect();
    for n in graph.node.iter().filter(|n| n.op_type == "Constant") {
        let value = n.attribute.iter().find_map(|a| match a.name.as_str() {
            "value" => a.t.as_ref().and_then(ints),
            "value_int" => Some(vec![a.i]),
            "value_ints" => Some(a.ints.clone()),
            _ => None,
        });
        if let (Some(v), Some(o)) = (value, n.output.first()) {
            out.insert(o.clone(), v);
        }
    }
    out
}

fn attr_int(node: &NodeProto, name: &str, default: i64) -> i64 {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map_or(default, |a| a.i)
}

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn ints_attr(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints,
        ..Default::default()
    }
}

fn i64_tensor(name: &str, dims: Vec<i64>, values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims,
        data_type: 7,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn node(
    op: &str,
    inputs: Vec<String>,
    output: String,
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        name: format!("{output}.{op}"),
        op_type: op.into(),
        input: inputs,
        output: vec![output],
        attribute,
        ..Default::default()
    }
}

/// A position in a sequence of `len` (negative from the end; `len` itself only to insert).
fn position(p: i64, len: usize, insert: bool) -> Option<usize> {
    let p = if p < 0 { p + len as i64 } else { p };
    let max = len as i64 + insert as i64;
    (0..max).contains(&p).then_some(p as usize)
}

fn rewritten(graph: &GraphProto, opset: i64) -> Option<(Vec<NodeProto>, Vec<TensorProto>)> {
    let consts = constants(graph);
    let scalar = |name: Option<&String>| -> Option<Option<i64>> {
        match name.filter(|s| !s.is_empty()) {
            None => Some(None),
            Some(n) => consts.get(n).filter(|v| v.len() == 1).map(|v| Some(v[0])),
        }
    };
    let mut seqs: HashMap<String, Vec<String>> = HashMap::new();
    let (mut nodes, mut inits) = (vec![], vec![]);
    for n in &graph.node {
        let out = n.output.first().cloned().unwrap_or_default();
        let seq = |ix: usize| n.input.get(ix).and_then(|s| seqs.get(s)).cloned();
        match n.op_type.as_str() {
            "SequenceEmpty" => {
                seqs.insert(out, vec![]);
            }
            "SequenceConstruct" => {
                seqs.insert(out, n.input.clone());
            }
            "SequenceInsert" => {
                let mut s = seq(0)?;
                let at = match scalar(n.input.get(2))? {
                    Some(p) => position(p, s.len(), true)?,
                    None => s.len(),
                };
                s.insert(at, n.input.get(1)?.clone());
                seqs.insert(out, s);
            }
            "SequenceErase" => {
                let mut s = seq(0)?;
                let at = match scalar(n.input.get(1))? {
                    Some(p) => position(p, s.len(), false)?,
                    None => s.len().checked_sub(1)?,
                };
                s.remove(at);
                seqs.insert(out, s);
            }
            "SequenceAt" => {
                let s = seq(0)?;
                let at = position(scalar(n.input.get(1))??, s.len(), false)?;
                nodes.push(node("Identity", vec![s[at].clone()], out, vec![]));
            }
            "SequenceLength" => {
                let len = seq(0)?.len() as i64;
                let value = i64_tensor("", vec![], &[len]);
                nodes.push(node(
                    "Constant",
                    vec![],
                    out,
                    vec![AttributeProto {
                        name: "value".into(),
                        r#type: AttributeType::Tensor as i32,
                        t: Some(value),
                        ..Default::default()
                    }],
                ));
            }
            "ConcatFromSequence" => {
                let s = seq(0)?;
                if s.is_empty() {
                    return None;
                }
                let axis = attr_int(n, "axis", i64::MAX);
                if axis == i64::MAX {
                    return None;
                }
                let mut parts = s.clone();
                if attr_int(n, "new_axis", 0) == 1 {
                    // Stacking: each element gets the new axis, then they are concatenated.
                    parts = vec![];
                    for (i, e) in s.iter().enumerate() {
                        let name = format!("{out}.stacked{i}");
                        let unsqueeze = if opset >= 13 {
                            let axes = format!("{out}.axes");
                            if i == 0 {
                                inits.push(i64_tensor(&axes, vec![1], &[axis]));
                            }
                            node("Unsqueeze", vec![e.clone(), axes], name.clone(), vec![])
                        } else {
                            node(
                                "Unsqueeze",
                                vec![e.clone()],
                                name.clone(),
                                vec![ints_attr("axes", vec![axis])],
                            )
                        };
                        nodes.push(unsqueeze);
                        parts.push(name);
                    }
                }
                nodes.push(node("Concat", parts, out, vec![int_attr("axis", axis)]));
            }
            "SplitToSequence" => {
                // Only with the sizes given (known when the model is read): without them the
                // number of elements depends on the input's shape.
                let sizes = consts
                    .get(n.input.get(1).filter(|s| !s.is_empty())?)?
                    .clone();
                if sizes.is_empty()
                    || attr_int(n, "keepdims", 1) == 0 && sizes.iter().any(|&s| s != 1)
                {
                    return None;
                }
                let axis = attr_int(n, "axis", 0);
                let names: Vec<String> =
                    (0..sizes.len()).map(|i| format!("{out}.part{i}")).collect();
                let split = if opset >= 13 {
                    let name = format!("{out}.sizes");
                    inits.push(i64_tensor(&name, vec![sizes.len() as i64], &sizes));
                    NodeProto {
                        input: vec![n.input[0].clone(), name],
                        ..node("Split", vec![], String::new(), vec![int_attr("axis", axis)])
                    }
                } else {
                    NodeProto {
                        input: vec![n.input[0].clone()],
                        ..node(
                            "Split",
                            vec![],
                            String::new(),
                            vec![int_attr("axis", axis), ints_attr("split", sizes.clone())],
                        )
                    }
                };
                nodes.push(NodeProto {
                    name: format!("{out}.Split"),
                    output: names.clone(),
                    ..split
                });
                if attr_int(n, "keepdims", 1) == 0 {
                    let mut squeezed = vec![];
                    for (i, part) in names.iter().enumerate() {
                        let name = format!("{out}.squeezed{i}");
                        let squeeze = if opset >= 13 {
                            let axes = format!("{out}.squeeze_axes");
                            if i == 0 {
                                inits.push(i64_tensor(&axes, vec![1], &[axis]));
                            }
                            node("Squeeze", vec![part.clone(), axes], name.clone(), vec![])
                        } else {
                            node(
                                "Squeeze",
                                vec![part.clone()],
                                name.clone(),
                                vec![ints_attr("axes", vec![axis])],
                            )
                        };
                        nodes.push(squeeze);
                        squeezed.push(name);
                    }
                    seqs.insert(out, squeezed);
                } else {
                    seqs.insert(out, names);
                }
            }
            _ => {
                // Any other use of a sequence (a graph output, Loop, SequenceMap...): give up.
                let has_subgraph = n
                    .attribute
                    .iter()
                    .any(|a| a.g.is_some() || !a.graphs.is_empty());
                if n.input.iter().any(|i| seqs.contains_key(i)) || has_subgraph && !seqs.is_empty()
                {
                    return None;
                }
                nodes.push(n.clone());
            }
        }
    }
    if graph.output.iter().any(|o| seqs.contains_key(&o.name)) {
        return None;
    }
    Some((nodes, inits))
}
