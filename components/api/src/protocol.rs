//! The wire forms of `POST /api/models/{name}/infer`: JSON, and safetensors (a standard,
//! multi-tensor, named container that numpy, PyTorch and JAX users already have). The response
//! takes the request's form. Limits are checked before anything is allocated.

use crate::dtype::{self, DType};
use crate::error::ApiError;
use serde_json::{Map, Value};
use std::collections::HashMap;

pub const JSON: &str = "application/json";
/// safetensors has no registered media type; this is the one we document and answer with.
pub const SAFETENSORS: &str = "application/vnd.safetensors";
/// Largest request body, in bytes.
pub const MAX_BODY: usize = 16 << 20;
/// Most elements in one request, over all its inputs.
pub const MAX_ELEMENTS: u64 = 4 << 20;
pub const MAX_RANK: usize = 8;
pub const MAX_INPUTS: usize = 64;
pub const MAX_NAME: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Json,
    Safetensors,
}

impl Form {
    /// The form of a request body, from its `Content-Type`.
    pub fn of(content_type: Option<&str>) -> Result<Form, ApiError> {
        let essence = content_type
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        match essence.as_str() {
            JSON => Ok(Form::Json),
            SAFETENSORS => Ok(Form::Safetensors),
            _ => Err(ApiError::new(
                415,
                "unsupported-media-type",
                format!("send the inputs as {JSON} or {SAFETENSORS}"),
            )),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Form::Json => "application/json; charset=utf-8",
            Form::Safetensors => SAFETENSORS,
        }
    }
}

/// One input as the engine takes it: its wasi-nn carrier bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct InTensor {
    pub name: String,
    pub dtype: DType,
    pub dims: Vec<u32>,
    pub carrier: Vec<u8>,
}

/// One output in the model's own element type.
#[derive(Debug, Clone, PartialEq)]
pub struct OutTensor {
    pub name: String,
    pub dtype: DType,
    pub dims: Vec<u32>,
    pub raw: Vec<u8>,
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad(code, message)
}

/// Checks a shape and returns its element count.
fn elements(name: &str, dims: &[u64], budget: &mut u64) -> Result<u64, ApiError> {
    if dims.len() > MAX_RANK {
        return Err(bad(
            "shape",
            format!("input \"{name}\": rank {} is above {MAX_RANK}", dims.len()),
        ));
    }
    let mut n: u64 = 1;
    for &d in dims {
        if d > u64::from(u32::MAX) {
            return Err(ApiError::new(
                413,
                "too-large",
                format!("input \"{name}\": dimension {d} is too large"),
            ));
        }
        n = n.saturating_mul(d);
    }
    if n > *budget {
        return Err(ApiError::new(
            413,
            "too-large",
            format!("input \"{name}\": {n} elements; a request may carry at most {MAX_ELEMENTS}"),
        ));
    }
    *budget -= n;
    Ok(n)
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(bad(
            "bad-tensor",
            format!("input names must have 1 to {MAX_NAME} bytes"),
        ));
    }
    Ok(())
}

fn dtype_of(name: &str, s: &str) -> Result<DType, ApiError> {
    DType::parse(s).ok_or_else(|| {
        bad(
            "dtype",
            format!("input \"{name}\": unknown dtype {s:?} (float32, int64, uint8, bool, ...)"),
        )
    })
}

/// Most UTF-16 units in a `{"text": ...}` request, as in the browser sandbox.
pub const MAX_TEXT_UNITS: usize = 1 << 20;

/// The text of a text-model request, `{"text": "..."}` (JSON only); None when the body is
/// something else (then it is parsed as tensors, and errors are reported from there).
pub fn parse_text(form: Form, body: &[u8]) -> Result<Option<String>, ApiError> {
    if form != Form::Json {
        return Ok(None);
    }
    let Ok(Value::Object(mut top)) = serde_json::from_slice::<Value>(body) else {
        return Ok(None);
    };
    let Some(text) = top.remove("text") else {
        return Ok(None);
    };
    if let Some(k) = top.keys().next() {
        return Err(bad(
            "bad-json",
            format!("unknown field {k:?} next to \"text\""),
        ));
    }
    let Value::String(text) = text else {
        return Err(bad("bad-json", "\"text\" must be a string"));
    };
    if text.is_empty() {
        return Err(bad("bad-json", "\"text\" is empty"));
    }
    if text.encode_utf16().count() > MAX_TEXT_UNITS {
        return Err(ApiError::new(
            413,
            "too-large",
            format!("\"text\" is over {MAX_TEXT_UNITS} characters (UTF-16 units)"),
        ));
    }
    Ok(Some(text))
}

/// Parses the inputs of an infer request.
pub fn parse_inputs(form: Form, body: &[u8]) -> Result<Vec<InTensor>, ApiError> {
    match form {
        Form::Json => parse_json(body),
        Form::Safetensors => parse_safetensors(body),
    }
}

fn parse_json(body: &[u8]) -> Result<Vec<InTensor>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| bad("bad-json", format!("the body is not valid JSON: {e}")))?;
    let Value::Object(mut top) = v else {
        return Err(bad("bad-json", "expected an object {\"inputs\": {...}}"));
    };
    let inputs = top
        .remove("inputs")
        .ok_or_else(|| bad("bad-json", "missing \"inputs\""))?;
    if let Some(k) = top.keys().next() {
        return Err(bad("bad-json", format!("unknown field {k:?}")));
    }
    let Value::Object(inputs) = inputs else {
        return Err(bad(
            "bad-json",
            "\"inputs\" must be an object of name -> {dtype, shape, data}",
        ));
    };
    if inputs.is_empty() || inputs.len() > MAX_INPUTS {
        return Err(bad(
            "bad-json",
            format!("\"inputs\" must have 1 to {MAX_INPUTS} entries"),
        ));
    }
    let mut budget = MAX_ELEMENTS;
    let mut out = Vec::new();
    for (name, t) in inputs {
        check_name(&name)?;
        let Value::Object(mut t) = t else {
            return Err(bad(
                "bad-json",
                format!("input \"{name}\": expected {{dtype, shape, data}}"),
            ));
        };
        let field = |t: &mut Map<String, Value>, k: &str| {
            t.remove(k)
                .ok_or_else(|| bad("bad-json", format!("input \"{name}\": missing \"{k}\"")))
        };
        let dtype = match field(&mut t, "dtype")? {
            Value::String(s) => dtype_of(&name, &s)?,
            _ => {
                return Err(bad(
                    "dtype",
                    format!("input \"{name}\": dtype must be a string"),
                ))
            }
        };
        let shape = field(&mut t, "shape")?;
        let data = field(&mut t, "data")?;
        if let Some(k) = t.keys().next() {
            return Err(bad(
                "bad-json",
                format!("input \"{name}\": unknown field {k:?}"),
            ));
        }
        let dims: Vec<u64> = match &shape {
            Value::Array(a) => a
                .iter()
                .map(|d| d.as_u64())
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    bad(
                        "shape",
                        format!("input \"{name}\": shape must be a list of non-negative integers"),
                    )
                })?,
            _ => {
                return Err(bad(
                    "shape",
                    format!("input \"{name}\": shape must be a list"),
                ))
            }
        };
        out.push(input(name, dtype, dims, &mut budget, |name, n| {
            let Value::Array(data) = data else {
                return Err(bad(
                    "bad-tensor",
                    format!("input \"{name}\": data must be a flat list (row-major)"),
                ));
            };
            if data.len() as u64 != n {
                return Err(bad(
                    "shape",
                    format!(
                        "input \"{name}\": the shape has {n} elements, data has {}",
                        data.len()
                    ),
                ));
            }
            dtype::json_to_carrier(name, dtype, &data)
        })?);
    }
    Ok(out)
}

/// One input: its shape checked against the request's element budget, then its data
/// converted to the wasi-nn carrier by `data(name, elements)`.
fn input(
    name: String,
    dtype: DType,
    dims: Vec<u64>,
    budget: &mut u64,
    data: impl FnOnce(&str, u64) -> Result<Vec<u8>, ApiError>,
) -> Result<InTensor, ApiError> {
    let n = elements(&name, &dims, budget)?;
    let carrier = data(&name, n)?;
    Ok(InTensor {
        name,
        dtype,
        dims: dims.iter().map(|&d| d as u32).collect(),
        carrier,
    })
}

fn st_dtype(d: safetensors::Dtype) -> Option<DType> {
    use safetensors::Dtype as S;
    Some(match d {
        S::F16 => DType::F16,
        S::BF16 => DType::Bf16,
        S::F32 => DType::F32,
        S::F64 => DType::F64,
        S::I8 => DType::I8,
        S::I16 => DType::I16,
        S::I32 => DType::I32,
        S::I64 => DType::I64,
        S::U8 => DType::U8,
        S::U16 => DType::U16,
        S::U32 => DType::U32,
        S::U64 => DType::U64,
        S::BOOL => DType::Bool,
        _ => return None,
    })
}

fn to_st_dtype(d: DType) -> safetensors::Dtype {
    use safetensors::Dtype as S;
    match d {
        DType::F16 => S::F16,
        DType::Bf16 => S::BF16,
        DType::F32 => S::F32,
        DType::F64 => S::F64,
        DType::I8 => S::I8,
        DType::I16 => S::I16,
        DType::I32 => S::I32,
        DType::I64 => S::I64,
        DType::U8 => S::U8,
        DType::U16 => S::U16,
        DType::U32 => S::U32,
        DType::U64 => S::U64,
        DType::Bool => S::BOOL,
    }
}

fn parse_safetensors(body: &[u8]) -> Result<Vec<InTensor>, ApiError> {
    let st = safetensors::SafeTensors::deserialize(body).map_err(|e| {
        bad(
            "bad-safetensors",
            format!("the body is not a valid safetensors file: {e}"),
        )
    })?;
    let tensors = st.tensors();
    if tensors.is_empty() || tensors.len() > MAX_INPUTS {
        return Err(bad(
            "bad-safetensors",
            format!("the file must hold 1 to {MAX_INPUTS} tensors"),
        ));
    }
    let mut budget = MAX_ELEMENTS;
    let mut out = Vec::new();
    for (name, view) in tensors {
        check_name(&name)?;
        let dtype = st_dtype(view.dtype()).ok_or_else(|| {
            bad(
                "dtype",
                format!(
                    "input \"{name}\": dtype {:?} is not supported",
                    view.dtype()
                ),
            )
        })?;
        let dims: Vec<u64> = view.shape().iter().map(|&d| d as u64).collect();
        out.push(input(name, dtype, dims, &mut budget, |name, _| {
            dtype::raw_to_carrier(name, dtype, view.data())
        })?);
    }
    Ok(out)
}

/// One tokenized window of a text request: what maps its row of the outputs back to the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub ids: Vec<u32>,
    /// (start, end) in Unicode code points of the request's text (Python `str` indices).
    pub offsets: Vec<(u32, u32)>,
    pub special_tokens_mask: Vec<u32>,
}

/// The response to a text request: the outputs as in the JSON form, and the windows.
pub fn encode_text_outputs(
    model: &str,
    sha256: &str,
    outputs: &[OutTensor],
    windows: &[Window],
) -> Result<Vec<u8>, ApiError> {
    let body = encode_outputs(Form::Json, model, sha256, outputs)?;
    let mut v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(500, "runtime-error", format!("encoding outputs: {e}")))?;
    v["windows"] = windows
        .iter()
        .map(|w| {
            serde_json::json!({
                "ids": w.ids,
                "offsets": w.offsets.iter().map(|&(s, e)| [s, e]).collect::<Vec<_>>(),
                "special_tokens_mask": w.special_tokens_mask,
            })
        })
        .collect();
    Ok(v.to_string().into_bytes())
}

/// The response body for the outputs of `model` (its manifest name and sha256).
pub fn encode_outputs(
    form: Form,
    model: &str,
    sha256: &str,
    outputs: &[OutTensor],
) -> Result<Vec<u8>, ApiError> {
    match form {
        Form::Json => {
            let mut o = Map::new();
            for t in outputs {
                o.insert(
                    t.name.clone(),
                    serde_json::json!({
                        "dtype": t.dtype.name(),
                        "shape": t.dims,
                        "data": dtype::raw_to_json(t.dtype, &t.raw),
                    }),
                );
            }
            Ok(
                serde_json::json!({ "model": model, "sha256": sha256, "outputs": o })
                    .to_string()
                    .into_bytes(),
            )
        }
        Form::Safetensors => {
            let views = outputs
                .iter()
                .map(|t| {
                    let shape = t.dims.iter().map(|&d| d as usize).collect();
                    safetensors::tensor::TensorView::new(to_st_dtype(t.dtype), shape, &t.raw)
                        .map(|v| (t.name.clone(), v))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    ApiError::new(500, "runtime-error", format!("encoding outputs: {e}"))
                })?;
            let meta = HashMap::from([
                ("model".to_string(), model.to_string()),
                ("sha256".to_string(), sha256.to_string()),
            ]);
            safetensors::tensor::serialize(views, Some(meta))
                .map_err(|e| ApiError::new(500, "runtime-error", format!("encoding outputs: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_requests() {
        let t = |v: Value| parse_text(Form::Json, v.to_string().as_bytes());
        assert_eq!(t(json!({"text": "a b"})).unwrap().as_deref(), Some("a b"));
        assert_eq!(t(json!({"inputs": {}})).unwrap(), None);
        assert_eq!(parse_text(Form::Safetensors, b"{}").unwrap(), None);
        assert_eq!(parse_text(Form::Json, b"not json").unwrap(), None);
        for bad in [
            json!({"text": 3}),
            json!({"text": ""}),
            json!({"text": "a", "inputs": {}}),
        ] {
            assert_eq!(t(bad.clone()).unwrap_err().code, "bad-json", "{bad}");
        }
        let long = "x".repeat(MAX_TEXT_UNITS + 1);
        assert_eq!(t(json!({ "text": long })).unwrap_err().status, 413);
    }

    fn err(body: Value) -> ApiError {
        parse_inputs(Form::Json, body.to_string().as_bytes()).unwrap_err()
    }

    #[test]
    fn json_inputs() {
        let t = parse_inputs(
            Form::Json,
            json!({"inputs": {"x": {"dtype": "float32", "shape": [1, 2], "data": [0.5, 1]}}})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(t[0].dims, vec![1, 2]);
        assert_eq!(
            t[0].carrier,
            [0.5f32.to_le_bytes(), 1f32.to_le_bytes()].concat()
        );
    }

    #[test]
    fn json_errors_name_the_problem() {
        let x = |t: Value| json!({"inputs": {"x": t}});
        for (body, code, says) in [
            (json!([]), "bad-json", "expected an object"),
            (json!({"inputs": {}}), "bad-json", "1 to"),
            (
                json!({"inputs": {}, "extra": 1}),
                "bad-json",
                "unknown field",
            ),
            (
                x(json!({"dtype": "f33", "shape": [1], "data": [1]})),
                "dtype",
                "unknown dtype",
            ),
            (
                x(json!({"dtype": "float32", "shape": [-1], "data": [1]})),
                "shape",
                "non-negative",
            ),
            (
                x(json!({"dtype": "float32", "shape": [2], "data": [1]})),
                "shape",
                "data has 1",
            ),
            (
                x(json!({"dtype": "float32", "shape": [1], "data": ["a"]})),
                "bad-tensor",
                "numbers",
            ),
            (
                x(json!({"dtype": "float32", "shape": [1], "data": 1})),
                "bad-tensor",
                "flat list",
            ),
            (
                x(json!({"dtype": "float32", "shape": [4294967296u64], "data": []})),
                "too-large",
                "too large",
            ),
            (
                x(json!({"dtype": "float32", "shape": [65536, 65536], "data": []})),
                "too-large",
                "at most",
            ),
            (
                x(json!({"dtype": "float32", "shape": [1,1,1,1,1,1,1,1,1], "data": [1]})),
                "shape",
                "rank",
            ),
            (
                x(json!({"dtype": "float32", "shape": [1]})),
                "bad-json",
                "missing \"data\"",
            ),
        ] {
            let e = err(body.clone());
            assert_eq!(e.code, code, "{body}: {e:?}");
            assert!(e.message.contains(says), "{body}: {e:?}");
        }
        let e = parse_inputs(Form::Json, b"{\"inputs\": {\"x\": NaN}}").unwrap_err();
        assert_eq!(e.code, "bad-json");
    }

    #[test]
    fn safetensors_round_trip() {
        let out = vec![OutTensor {
            name: "y".into(),
            dtype: DType::I16,
            dims: vec![2],
            raw: [3i16.to_le_bytes(), (-4i16).to_le_bytes()].concat(),
        }];
        let bytes = encode_outputs(Form::Safetensors, "m", "ab", &out).unwrap();
        let back = parse_inputs(Form::Safetensors, &bytes).unwrap();
        assert_eq!(back[0].dtype, DType::I16);
        assert_eq!(
            back[0].carrier,
            [3i32.to_le_bytes(), (-4i32).to_le_bytes()].concat()
        );
        assert_eq!(
            parse_inputs(Form::Safetensors, b"\x08\0\0\0\0\0\0\0{}")
                .unwrap_err()
                .code,
            "bad-safetensors"
        );
        assert_eq!(
            parse_inputs(Form::Safetensors, b"garbage")
                .unwrap_err()
                .code,
            "bad-safetensors"
        );
    }

    #[test]
    fn media_types() {
        assert_eq!(
            Form::of(Some("application/json; charset=utf-8")),
            Ok(Form::Json)
        );
        assert_eq!(Form::of(Some(SAFETENSORS)), Ok(Form::Safetensors));
        assert_eq!(Form::of(Some("text/plain")).unwrap_err().status, 415);
        assert_eq!(Form::of(None).unwrap_err().status, 415);
    }
}
