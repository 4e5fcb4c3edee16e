//! The wire forms of `POST /api/models/{name}/infer`: JSON, and safetensors (a standard,
//! multi-tensor, named container that numpy, PyTorch and JAX users already have). The response
//! takes the request's form. Both are read from the body as it arrives, with the limits enforced
//! as they go (`json_inputs`; a safetensors header is checked before its data is read), so what a
//! request costs in memory is bounded by what it legitimately carries.

use crate::dtype::{self, DType};
use crate::error::ApiError;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::Read;

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

/// Checks a shape against the request's element `budget`, takes its count from it, returns it.
pub(crate) fn elements(name: &str, dims: &[u64], budget: &mut u64) -> Result<u64, ApiError> {
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

/// Most UTF-16 units in a `{"text": ...}` request, as in the browser sandbox.
pub const MAX_TEXT_UNITS: usize = 1 << 20;

/// A text-model request: exactly `{"text": "..."}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TextRequest {
    text: String,
}

/// The text of a text-model request, `{"text": "..."}` (JSON only); None when the body is
/// something else (then it is parsed as tensors, and errors are reported from there). Read into
/// a typed field, never a JSON tree, so a junk body costs no more than its bytes.
pub fn parse_text(form: Form, body: &[u8]) -> Result<Option<String>, ApiError> {
    if form != Form::Json {
        return Ok(None);
    }
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow, default)]
        text: Option<&'a serde_json::value::RawValue>,
        #[serde(flatten)]
        rest: std::collections::BTreeMap<&'a str, serde::de::IgnoredAny>,
    }
    let Ok(probe) = serde_json::from_slice::<Probe>(body) else {
        return Ok(None);
    };
    if probe.text.is_none() {
        return Ok(None);
    }
    if let Some(k) = probe.rest.keys().next() {
        return Err(bad(
            "bad-json",
            format!("unknown field {k:?} next to \"text\""),
        ));
    }
    let text = serde_json::from_slice::<TextRequest>(body)
        .map_err(|_| bad("bad-json", "\"text\" must be a string"))?
        .text;
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

/// Parses the inputs of an infer request held in memory.
pub fn parse_inputs(form: Form, body: &[u8]) -> Result<Vec<InTensor>, ApiError> {
    match form {
        Form::Json => crate::json_inputs::parse(&mut serde_json::Deserializer::from_slice(body)),
        Form::Safetensors => parse_safetensors(&mut &body[..]),
    }
}

/// Parses the inputs of an infer request from its body as it is read (buffer `body`). A read
/// error of kind `FileTooLarge` means the body is over [`MAX_BODY`] (413). What is left of the
/// body after an error is the caller's to drain.
pub fn parse_inputs_from(form: Form, body: &mut impl Read) -> Result<Vec<InTensor>, ApiError> {
    match form {
        Form::Json => crate::json_inputs::parse(&mut serde_json::Deserializer::from_reader(body)),
        Form::Safetensors => parse_safetensors(body),
    }
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

/// safetensors' name for each element type, in `DType::ALL`'s order.
const ST_DTYPES: [safetensors::Dtype; 13] = {
    use safetensors::Dtype as S;
    [
        S::F16,
        S::BF16,
        S::F32,
        S::F64,
        S::I8,
        S::I16,
        S::I32,
        S::I64,
        S::U8,
        S::U16,
        S::U32,
        S::U64,
        S::BOOL,
    ]
};

fn st_dtype(s: safetensors::Dtype) -> Option<DType> {
    DType::ALL.into_iter().find(|&d| to_st_dtype(d) == s)
}

fn to_st_dtype(d: DType) -> safetensors::Dtype {
    ST_DTYPES[d as usize]
}

fn too_large_body() -> ApiError {
    ApiError::new(
        413,
        "payload-too-large",
        format!("request bodies are limited to {MAX_BODY} bytes"),
    )
}

fn read_exact_or(body: &mut impl Read, buf: &mut [u8]) -> Result<(), ApiError> {
    body.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::FileTooLarge => too_large_body(),
        std::io::ErrorKind::UnexpectedEof => bad(
            "bad-safetensors",
            "the body is not a valid safetensors file: it ends early",
        ),
        _ => bad("body", "the request body could not be read"),
    })
}

/// The header of a safetensors file, only as far as sizing it needs.
#[derive(serde::Deserialize)]
struct StEntry {
    data_offsets: (u64, u64),
}

/// Reads a safetensors body: the 8-byte header length, the header (checked), then exactly the
/// data it describes, never more than [`MAX_BODY`] in all.
fn parse_safetensors(body: &mut impl Read) -> Result<Vec<InTensor>, ApiError> {
    let invalid = |why: String| {
        bad(
            "bad-safetensors",
            format!("the body is not a valid safetensors file: {why}"),
        )
    };
    let mut len = [0u8; 8];
    read_exact_or(body, &mut len)?;
    let n = u64::from_le_bytes(len);
    if n > (MAX_BODY - 8) as u64 {
        return Err(invalid(format!("a header of {n} bytes")));
    }
    let mut buf = vec![0u8; 8 + n as usize];
    buf[..8].copy_from_slice(&len);
    read_exact_or(body, &mut buf[8..])?;
    let header: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&buf[8..]).map_err(|e| invalid(e.to_string()))?;
    let mut data_len = 0u64;
    for (k, v) in header {
        if k == "__metadata__" {
            continue;
        }
        let e: StEntry =
            serde_json::from_value(v).map_err(|e| invalid(format!("tensor {k:?}: {e}")))?;
        data_len = data_len.max(e.data_offsets.1);
    }
    if data_len > (MAX_BODY as u64).saturating_sub(buf.len() as u64) {
        return Err(too_large_body());
    }
    let start = buf.len();
    buf.resize(start + data_len as usize, 0);
    read_exact_or(body, &mut buf[start..])?;
    let mut extra = [0u8; 1];
    if body
        .read(&mut extra)
        .map_err(|_| bad("body", "the request body could not be read"))?
        != 0
    {
        return Err(invalid("bytes after the data its header describes".into()));
    }
    parse_safetensors_bytes(&buf)
}

fn parse_safetensors_bytes(body: &[u8]) -> Result<Vec<InTensor>, ApiError> {
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
    #[test]
    fn safetensors_dtypes_pair_with_the_tables() {
        for d in super::DType::ALL {
            let s = super::to_st_dtype(d);
            assert_eq!(s.bitsize(), 8 * d.size(), "{d:?}");
            assert_eq!(format!("{s:?}"), d.engine_name().to_uppercase(), "{d:?}");
            assert_eq!(super::st_dtype(s), Some(d));
        }
    }

    use super::*;
    use serde_json::{json, Value};

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

    /// A body reader that counts what the parser took.
    struct Counting<'a> {
        rest: &'a [u8],
        taken: usize,
    }
    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.rest.read(buf)?;
            self.taken += n;
            Ok(n)
        }
    }

    fn junk_json(elements: usize, data_first: bool) -> Vec<u8> {
        let data = format!("[{}0]", "0,".repeat(elements - 1));
        let (a, b) = (
            format!("\"data\": {data}"),
            "\"dtype\": \"float32\", \"shape\": [1, 1, 8, 8]".to_string(),
        );
        let t = if data_first {
            format!("{a}, {b}")
        } else {
            format!("{b}, {a}")
        };
        format!("{{\"inputs\": {{\"input\": {{{t}}}}}}}").into_bytes()
    }

    #[test]
    fn json_is_refused_at_the_first_element_past_the_shape() {
        let body = junk_json(8 << 20, false);
        assert!(body.len() > MAX_BODY);
        let mut r = std::io::BufReader::with_capacity(
            64 << 10,
            Counting {
                rest: &body,
                taken: 0,
            },
        );
        let e = parse_inputs_from(Form::Json, &mut r).unwrap_err();
        assert_eq!((e.status, e.code), (400, "shape"), "{e:?}");
        assert!(
            e.message
                .contains("the shape has 64 elements, data has more"),
            "{e:?}"
        );
        // It stopped reading within the first buffer, not at the end of the 16 MiB.
        assert!(
            r.get_ref().taken <= 64 << 10,
            "read {} bytes",
            r.get_ref().taken
        );
    }

    #[test]
    fn json_fields_in_any_order() {
        for data_first in [false, true] {
            let t = parse_inputs(Form::Json, &junk_json(64, data_first)).unwrap();
            assert_eq!(t[0].carrier.len(), 64 * 4);
            let e = parse_inputs(Form::Json, &junk_json(65, data_first)).unwrap_err();
            assert_eq!(e.code, "shape", "{e:?}");
        }
        // Before its shape is known, data may take the request's whole budget, not more.
        let huge = format!(
            "{{\"inputs\": {{\"x\": {{\"dtype\": \"uint8\", \"data\": [{}0]}}}}}}",
            "0,".repeat(MAX_ELEMENTS as usize)
        );
        let e = parse_inputs(Form::Json, huge.as_bytes()).unwrap_err();
        assert_eq!((e.status, e.code), (413, "too-large"), "{e:?}");
    }

    #[test]
    fn body_over_the_limit_is_413() {
        struct TooLarge;
        impl Read for TooLarge {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::FileTooLarge.into())
            }
        }
        for form in [Form::Json, Form::Safetensors] {
            let e = parse_inputs_from(form, &mut TooLarge).unwrap_err();
            assert_eq!((e.status, e.code), (413, "payload-too-large"), "{form:?}");
        }
    }

    #[test]
    fn safetensors_header_is_checked_before_its_data_is_read() {
        let mut body = (u64::MAX / 2).to_le_bytes().to_vec();
        body.extend(vec![0u8; 1 << 20]);
        let mut r = Counting {
            rest: &body,
            taken: 0,
        };
        let e = parse_inputs_from(Form::Safetensors, &mut r).unwrap_err();
        assert_eq!(e.code, "bad-safetensors");
        assert_eq!(r.taken, 8);
        let header = br#"{"x":{"dtype":"F32","shape":[8388608],"data_offsets":[0,33554432]}}"#;
        let mut body = (header.len() as u64).to_le_bytes().to_vec();
        body.extend_from_slice(header);
        let e = parse_inputs(Form::Safetensors, &body).unwrap_err();
        assert_eq!((e.status, e.code), (413, "payload-too-large"), "{e:?}");
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
