//! Checks on a decoded ONNX model that tract assumes instead of checking (it would panic, and
//! in wasm a panic is a trap, and an allocation without bound ends the instance). Each rule here comes from a fuzzer finding; see
//! tests/fuzz-regressions/.
use crate::error::{NnError, NnResult};
use std::collections::HashSet;
use tract_onnx::pb::{GraphProto, ModelProto, NodeProto};

pub fn check(model: &ModelProto) -> NnResult<()> {
    match &model.graph {
        Some(g) => check_graph(g, "the graph"),
        None => Ok(()),
    }
}

fn check_graph(graph: &GraphProto, what: &str) -> NnResult<()> {
    // Everything tract gives an outlet to while parsing this graph.
    let defined: HashSet<&str> = graph
        .input
        .iter()
        .map(|i| i.name.as_str())
        .chain(graph.initializer.iter().map(|t| t.name.as_str()))
        .chain(
            graph
                .node
                .iter()
                .flat_map(|n| n.input.iter().chain(&n.output))
                .map(String::as_str),
        )
        .collect();
    for output in &graph.output {
        if !defined.contains(output.name.as_str()) {
            return Err(NnError::invalid(format!(
                "not a valid ONNX model: {what} declares output \"{}\", which no node, input or initializer produces",
                output.name
            )));
        }
    }
    for node in &graph.node {
        check_node(node)?;
        for attr in &node.attribute {
            let subgraphs = attr.g.iter().chain(&attr.graphs);
            for sub in subgraphs {
                check_graph(
                    sub,
                    &format!("subgraph \"{}\" of node \"{}\"", attr.name, node.name),
                )?;
            }
        }
    }
    Ok(())
}

/// Axis attributes index dimensions. tract trusts them and, given an absurd one, iterates or
/// allocates by it (a LayerNormalization `axis` of -2e14 made it allocate until memory ran out).
/// No tensor has anywhere near this many dimensions.
const MAX_AXIS: u64 = 1024;

/// Window attributes, as the spec defines them for every operator that has them (convolutions
/// and pools): tract divides by strides and block sizes, subtracts one from sizes, and indexes
/// `pads` as a begin and an end per axis of `kernel_shape`, trusting all of it.
fn check_window(node: &NodeProto) -> NnResult<()> {
    let ints = |name: &str| {
        node.attribute
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.ints.as_slice())
    };
    let int = |name: &str| node.attribute.iter().find(|a| a.name == name).map(|a| a.i);
    let refuse = |why: String| {
        Err(NnError::invalid(format!(
            "not a valid ONNX model: {} node \"{}\" has {why}",
            node.op_type, node.name
        )))
    };
    for name in ["strides", "dilations", "kernel_shape"] {
        if let Some(v) = ints(name).and_then(|v| v.iter().find(|&&v| v < 1)) {
            return refuse(format!("{name} with {v}; each must be at least 1"));
        }
    }
    for name in ["blocksize", "size"] {
        if let Some(v) = int(name).filter(|&v| v < 1) {
            if matches!(
                node.op_type.as_str(),
                "DepthToSpace" | "SpaceToDepth" | "LRN"
            ) {
                return refuse(format!("{name} = {v}; it must be at least 1"));
            }
        }
    }
    if let Some(pads) = ints("pads") {
        if !pads.len().is_multiple_of(2) {
            return refuse(format!(
                "{} pads, not a begin and an end per axis",
                pads.len()
            ));
        }
        if let Some(kernel) = ints("kernel_shape") {
            if pads.len() != 2 * kernel.len() {
                return refuse(format!(
                    "{} pads for a kernel_shape of {} axes",
                    pads.len(),
                    kernel.len()
                ));
            }
        }
    }
    if let Some(kernel) = ints("kernel_shape") {
        for name in ["strides", "dilations"] {
            if let Some(v) = ints(name).filter(|v| v.len() != kernel.len()) {
                return refuse(format!(
                    "{name} of {} axes for a kernel_shape of {}",
                    v.len(),
                    kernel.len()
                ));
            }
        }
    }
    Ok(())
}

fn check_node(node: &NodeProto) -> NnResult<()> {
    check_window(node)?;
    for a in &node.attribute {
        if !matches!(a.name.as_str(), "axis" | "axes") {
            continue;
        }
        if let Some(v) = std::iter::once(a.i)
            .chain(a.ints.iter().copied())
            .find(|v| v.unsigned_abs() > MAX_AXIS)
        {
            return Err(NnError::invalid(format!(
                "not a valid ONNX model: {} node \"{}\" has {} = {v}, far outside any tensor's rank",
                node.op_type, node.name, a.name
            )));
        }
    }
    if node.op_type == "Transpose" {
        if let Some(perm) = node.attribute.iter().find(|a| a.name == "perm") {
            let n = perm.ints.len() as i64;
            let mut seen: Vec<i64> = perm.ints.clone();
            seen.sort_unstable();
            if seen.iter().copied().ne(0..n) {
                return Err(NnError::invalid(format!(
                    "not a valid ONNX model: Transpose node \"{}\" has perm {:?}, which is not a permutation of 0..{n}",
                    node.name, perm.ints
                )));
            }
        }
    }
    Ok(())
}
