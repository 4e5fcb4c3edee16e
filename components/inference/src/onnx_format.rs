//! ONNX as a model format: tract-onnx with the engine's operators registered (`onnx_*.rs`,
//! `onnx_ops/`), the checks tract-onnx needs before it reads a model, and the description.
use crate::describe::{GraphInfo, IoInfo};
use crate::error::{describe_tract_error, ErrorCode, NnError, NnResult};
use crate::format::{Format, ModelFormat};
use crate::graph::{classify, internal, outlet_name, Graph};
use crate::limits::Limits;
use tract_onnx::prelude::*;

pub(crate) struct Onnx;

impl ModelFormat for Onnx {
    fn format(&self) -> Format {
        Format::Onnx
    }

    /// A protobuf `ModelProto`, whose first field is almost always `ir_version` (field 1,
    /// varint: tag byte 0x08), or a producer/graph field first (0x12, 0x1a, 0x3a) from other
    /// writers.
    fn sniff(&self, bytes: &[u8]) -> bool {
        matches!(bytes.first(), Some(0x08 | 0x12 | 0x1a | 0x3a))
    }

    fn load(&self, bytes: &[u8], sha256: String, limits: Limits) -> NnResult<Graph> {
        let mut onnx = tract_onnx::onnx();
        crate::onnx_if::register(&mut onnx.op_register);
        crate::onnx_stft::register(&mut onnx.op_register);
        crate::onnx_matmul_nbits::register(&mut onnx.op_register);
        crate::onnx_pad::register(&mut onnx.op_register);
        let mut proto = onnx.proto_model_for_read(&mut &*bytes).map_err(|e| {
            NnError::invalid(format!(
                "not a valid ONNX model: {}",
                describe_tract_error(&e)
            ))
        })?;
        crate::onnx_check::check(&proto)?;
        crate::onnx_matmul_nbits::check(&proto, &limits)?;
        let narrow = crate::onnx_ops::install(&mut onnx.op_register, &mut proto)
            .map_err(|e| classify("cannot read the ONNX model", &e, ErrorCode::InvalidArgument))?;
        crate::onnx_value_info::forget_named_dims(&mut proto);
        let model = onnx.model_for_proto_model(&proto).map_err(|e| {
            classify(
                "cannot import the ONNX graph",
                &e,
                ErrorCode::InvalidArgument,
            )
        })?;
        let missing: Vec<String> = model
            .nodes()
            .iter()
            .filter(|n| n.op().name().starts_with("Unimplemented("))
            .map(|n| {
                let op = n.op().name();
                format!(
                    "{} (node \"{}\")",
                    &op["Unimplemented(".len()..op.len() - 1],
                    n.name
                )
            })
            .collect();
        if !missing.is_empty() {
            return Err(NnError::unsupported(format!(
                "the model uses operators this engine does not support: {}",
                missing.join(", ")
            )));
        }
        // Propagate what can be known before inputs arrive, for a better description, on a
        // copy: facts inferred with symbolic dims would clash with the concrete ones of each
        // plan. A failure here is not final: concrete input shapes may still resolve the graph.
        let mut analysed = model.clone();
        let _ = analysed.analyse(false);
        let mut info = GraphInfo {
            format: Format::Onnx,
            sha256,
            inputs: io_infos(&analysed, analysed.input_outlets().map_err(internal)?)?,
            outputs: io_infos(&analysed, analysed.output_outlets().map_err(internal)?)?,
        };
        for i in &mut info.inputs {
            i.narrow = narrow.inputs.get(&i.name).copied();
        }
        for o in &mut info.outputs {
            o.narrow = narrow.outputs.get(&o.name).copied();
        }
        Graph::from_inference(info, model, limits)
    }
}

fn io_infos(model: &InferenceModel, outlets: &[OutletId]) -> NnResult<Vec<IoInfo>> {
    outlets
        .iter()
        .map(|o| {
            let fact = model.outlet_fact(*o).map_err(internal)?;
            Ok(IoInfo::from_inference(outlet_name(model, *o), fact))
        })
        .collect()
}
