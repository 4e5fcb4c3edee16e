//! The engine, imported through wasi:nn (`world client`): models loaded once per instance and
//! checked against the manifest's sha256 before they run.

use crate::dtype::{self, Carrier, DType};
use crate::error::ApiError;
use crate::protocol::{InTensor, OutTensor, Window};
use crate::routes::{Entry, TokenizerEntry, MODELS_ROOT};
use nn_tables::ErrorCode;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

wit_bindgen::generate!({ world: "client", path: "../../wit", generate_all });

use secure_context::inference::introspection::{self, Dimension, GraphInfo};
use secure_context::inference::tokenizer as tok;
use wasi::nn::{errors, graph, tensor};

pub struct Model {
    pub entry: Entry,
    graph: graph::Graph,
    pub info: GraphInfo,
}

thread_local! {
    /// Loaded models by name and sha256: an instance the host reuses loads each model once.
    static MODELS: RefCell<HashMap<(String, String), Rc<Model>>> = RefCell::new(HashMap::new());
    /// Tokenizers by the sha256 of their tokenizer.json, loaded once per instance.
    static TOKENIZERS: RefCell<HashMap<String, Rc<tok::Tokenizer>>> = RefCell::new(HashMap::new());
}

// The one conversion between the tables and this binding's WIT types.
nn_tables::wit_conversions!(
    tensor_type = tensor::TensorType,
    error_code = errors::ErrorCode,
);

fn nn_error(e: errors::Error) -> ApiError {
    ApiError::from_nn(e.code().into(), e.data())
}

/// The model of a manifest entry, loaded and verified on first use.
pub fn model(entry: Entry) -> Result<Rc<Model>, ApiError> {
    let key = (entry.name.clone(), entry.sha256.clone());
    if let Some(m) = MODELS.with(|m| m.borrow().get(&key).cloned()) {
        return Ok(m);
    }
    let bytes = std::fs::read(format!("{MODELS_ROOT}/{}", entry.file)).map_err(|e| {
        eprintln!("api: model {}: {e}", entry.name);
        ApiError::new(
            503,
            "model-unavailable",
            format!("model \"{}\" cannot be read", entry.name),
        )
    })?;
    let encoding = match entry.format.as_str() {
        "tflite" => graph::GraphEncoding::Tensorflowlite,
        _ => graph::GraphEncoding::Onnx,
    };
    let g = graph::load(&[bytes], encoding, graph::ExecutionTarget::Cpu).map_err(nn_error)?;
    let info = introspection::describe(&g);
    if !info.sha256.eq_ignore_ascii_case(&entry.sha256) {
        eprintln!(
            "api: model {}: sha256 does not match the manifest",
            entry.name
        );
        return Err(ApiError::new(
            500,
            "integrity",
            format!(
                "model \"{}\" does not match the sha256 in its manifest; it will not run",
                entry.name
            ),
        ));
    }
    let m = Rc::new(Model {
        entry,
        graph: g,
        info,
    });
    MODELS.with(|c| c.borrow_mut().insert(key, m.clone()));
    Ok(m)
}

/// The description `GET /api/models/{name}` answers with.
pub fn describe_json(m: &Model) -> serde_json::Value {
    let io = |t: &introspection::TensorInfo| {
        let shape = t.shape.as_ref().map(|s| {
            s.iter()
                .map(|d| match d {
                    Dimension::Fixed(n) => serde_json::json!(n),
                    Dimension::Symbolic(s) => serde_json::json!(s),
                    Dimension::Unknown => serde_json::Value::Null,
                })
                .collect::<Vec<_>>()
        });
        let dtype = dtype::label(&t.element_type);
        serde_json::json!({ "name": t.name, "dtype": dtype, "shape": shape })
    };
    serde_json::json!({
        "name": m.entry.name,
        "format": m.entry.format,
        "sha256": m.info.sha256,
        "engine": introspection::engine_version(),
        "inputs": m.info.inputs.iter().map(io).collect::<Vec<_>>(),
        "outputs": m.info.outputs.iter().map(io).collect::<Vec<_>>(),
    })
}

/// Runs the model on the inputs; outputs in the model's own element types.
pub fn infer(m: &Model, inputs: Vec<InTensor>) -> Result<Vec<OutTensor>, ApiError> {
    for t in &inputs {
        if let Some(i) = m.info.inputs.iter().find(|i| i.name == t.name) {
            if DType::parse(&i.element_type) != Some(t.dtype) {
                let want = dtype::label(&i.element_type);
                return Err(ApiError::bad(
                    "dtype",
                    format!(
                        "input \"{}\": the model takes {want}, got {}",
                        t.name,
                        t.dtype.name()
                    ),
                ));
            }
        }
    }
    let ctx = m.graph.init_execution_context().map_err(nn_error)?;
    let named: Vec<(String, tensor::Tensor)> = inputs
        .into_iter()
        .map(|t| {
            let tensor = tensor::Tensor::new(&t.dims, t.dtype.carrier().into(), &t.carrier);
            (t.name, tensor)
        })
        .collect();
    let outs = ctx.compute(named).map_err(nn_error)?;
    let mut result = Vec::new();
    for (name, t) in outs {
        let declared = m.info.outputs.iter().find(|o| o.name == name);
        let dtype = declared
            .and_then(|o| DType::parse(&o.element_type))
            .ok_or_else(|| {
                ApiError::new(
                    422,
                    "unsupported-operation",
                    format!("output \"{name}\": its element type cannot be sent by this API"),
                )
            })?;
        if Carrier::from(t.ty()) != dtype.carrier() {
            return Err(ApiError::new(
                500,
                "runtime-error",
                format!("output \"{name}\": the engine returned an unexpected type"),
            ));
        }
        let raw = dtype::carrier_to_raw(&name, dtype, &t.data())?;
        result.push(OutTensor {
            name,
            dtype,
            dims: t.dimensions(),
            raw,
        });
    }
    Ok(result)
}

/// A text model's tokenizer (the tokenizer component, composed in), verified against the
/// manifest's sha256 and loaded on first use.
fn tokenizer(m: &Model) -> Result<(Rc<tok::Tokenizer>, &TokenizerEntry), ApiError> {
    let t = m.entry.tokenizer.as_ref().ok_or_else(|| {
        ApiError::bad(
            "bad-json",
            format!(
                "model \"{}\" takes tensors, not text (its manifest entry names no tokenizer)",
                m.entry.name
            ),
        )
    })?;
    if let Some(k) = TOKENIZERS.with(|c| c.borrow().get(&t.sha256).cloned()) {
        return Ok((k, t));
    }
    let bytes = std::fs::read(format!("{MODELS_ROOT}/{}", t.file)).map_err(|e| {
        eprintln!("api: tokenizer of {}: {e}", m.entry.name);
        ApiError::new(
            503,
            "model-unavailable",
            format!("the tokenizer of model \"{}\" cannot be read", m.entry.name),
        )
    })?;
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if !digest.eq_ignore_ascii_case(&t.sha256) {
        return Err(ApiError::new(
            500,
            "integrity",
            format!(
                "the tokenizer of model \"{}\" does not match the sha256 in its manifest",
                m.entry.name
            ),
        ));
    }
    let k =
        Rc::new(tok::Tokenizer::load(&bytes).map_err(|e| {
            ApiError::new(500, "runtime-error", format!("tokenizer: {}", e.message))
        })?);
    TOKENIZERS.with(|c| c.borrow_mut().insert(t.sha256.clone(), k.clone()));
    Ok((k, t))
}

/// Tokenizes `text` in the manifest's windows and runs them as one batch (padded, attention
/// mask 0 on the padding), as the browser sandbox does.
pub fn infer_text(m: &Model, text: &str) -> Result<(Vec<OutTensor>, Vec<Window>), ApiError> {
    let (k, t) = tokenizer(m)?;
    let options = tok::EncodeOptions {
        add_special_tokens: true,
        offsets: tok::OffsetUnit::CodePoints,
        truncation: Some(tok::Truncation {
            max_length: t.max_length,
            stride: t.stride,
        }),
    };
    let encoded = k.encode(text, None, options).map_err(|e| match e.code {
        tok::ErrorCode::TooLarge => ApiError::from_nn(ErrorCode::TooLarge, e.message),
        _ => ApiError::from_nn(ErrorCode::InvalidArgument, e.message),
    })?;
    let encs: Vec<tok::Encoding> = std::iter::once(encoded.encoding)
        .chain(encoded.overflowing)
        .collect();
    let n = encs.iter().map(|e| e.ids.len()).max().unwrap_or(0);
    let column = |f: fn(&tok::Encoding) -> &Vec<u32>| {
        let mut raw = Vec::with_capacity(encs.len() * n * 8);
        for e in &encs {
            let v = f(e);
            for i in 0..n {
                raw.extend_from_slice(&i64::from(v.get(i).copied().unwrap_or(0)).to_le_bytes());
            }
        }
        raw
    };
    let mut inputs = Vec::new();
    for i in &m.info.inputs {
        let carrier = match i.name.as_str() {
            "input_ids" => column(|e| &e.ids),
            "attention_mask" => column(|e| &e.attention_mask),
            "token_type_ids" => column(|e| &e.type_ids),
            other => {
                return Err(ApiError::bad(
                    "invalid-argument",
                    format!(
                        "a text model takes input_ids, attention_mask and token_type_ids, not \"{other}\""
                    ),
                ))
            }
        };
        inputs.push(InTensor {
            name: i.name.clone(),
            dtype: DType::I64,
            dims: vec![encs.len() as u32, n as u32],
            carrier,
        });
    }
    let outputs = infer(m, inputs)?;
    let windows = encs
        .into_iter()
        .map(|e| Window {
            offsets: e.offsets.iter().map(|s| (s.start, s.end)).collect(),
            ids: e.ids,
            special_tokens_mask: e.special_tokens_mask,
        })
        .collect();
    Ok((outputs, windows))
}
