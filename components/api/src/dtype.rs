//! Element types as clients name them (numpy names, as in models/manifest.json) and how each
//! travels through wasi-nn: the engine's carrier rules (bool in U8; i8, i16, u16 in I32; u32,
//! u64 in I64), range-checked here as the engine checks them, never wrapped.

use crate::error::ApiError;
use half::{bf16, f16};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F16,
    Bf16,
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool,
}

/// wasi-nn's `tensor-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    Fp16,
    Fp32,
    Fp64,
    Bf16,
    U8,
    I32,
    I64,
}

const ALL: [DType; 13] = [
    DType::F16,
    DType::Bf16,
    DType::F32,
    DType::F64,
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::U8,
    DType::U16,
    DType::U32,
    DType::U64,
    DType::Bool,
];

impl DType {
    /// The numpy name (`float32`) or the engine's (`f32`).
    pub fn parse(s: &str) -> Option<DType> {
        ALL.into_iter()
            .find(|d| d.name() == s || d.engine_name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F16 => "float16",
            DType::Bf16 => "bfloat16",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::Bool => "bool",
        }
    }

    /// The name the engine's `describe` gives (`introspection.tensor-info.element-type`).
    pub fn engine_name(self) -> &'static str {
        match self {
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I8 => "i8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
            DType::U16 => "u16",
            DType::U32 => "u32",
            DType::U64 => "u64",
            DType::Bool => "bool",
        }
    }

    /// Bytes per element in the client's form (little-endian, as numpy and safetensors).
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::F16 | DType::Bf16 | DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }

    pub fn carrier(self) -> Carrier {
        match self {
            DType::F16 => Carrier::Fp16,
            DType::Bf16 => Carrier::Bf16,
            DType::F32 => Carrier::Fp32,
            DType::F64 => Carrier::Fp64,
            DType::U8 | DType::Bool => Carrier::U8,
            DType::I8 | DType::I16 | DType::I32 | DType::U16 => Carrier::I32,
            DType::I64 | DType::U32 | DType::U64 => Carrier::I64,
        }
    }

    fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::Bf16 | DType::F32 | DType::F64)
    }

    fn int_range(self) -> (i128, i128) {
        match self {
            DType::I8 => (i8::MIN.into(), i8::MAX.into()),
            DType::I16 => (i16::MIN.into(), i16::MAX.into()),
            DType::I32 => (i32::MIN.into(), i32::MAX.into()),
            DType::I64 => (i64::MIN.into(), i64::MAX.into()),
            DType::U8 => (0, u8::MAX.into()),
            DType::U16 => (0, u16::MAX.into()),
            DType::U32 => (0, u32::MAX.into()),
            // Carried in I64: values above i64::MAX cannot travel.
            DType::U64 => (0, i64::MAX.into()),
            DType::Bool => (0, 1),
            _ => (0, 0),
        }
    }
}

/// A client-facing name for an engine element type: the numpy name when there is one
/// (`f32` -> `float32`), else the engine's own (`qu8`, `string`).
pub fn label(engine_name: &str) -> &str {
    match DType::parse(engine_name) {
        Some(d) => d.name(),
        None => engine_name,
    }
}

impl Carrier {
    pub fn size(self) -> usize {
        match self {
            Carrier::U8 => 1,
            Carrier::Fp16 | Carrier::Bf16 => 2,
            Carrier::Fp32 | Carrier::I32 => 4,
            Carrier::Fp64 | Carrier::I64 => 8,
        }
    }
}

fn non_finite(input: &str) -> ApiError {
    ApiError::bad(
        "non-finite",
        format!("input \"{input}\": NaN and infinite values are refused by this API"),
    )
}

fn out_of_range(input: &str, d: DType) -> ApiError {
    ApiError::bad(
        "out-of-range",
        format!("input \"{input}\": a value is not a valid {}", d.name()),
    )
}

/// One element of the carrier, little-endian.
fn put_int(out: &mut Vec<u8>, c: Carrier, v: i128) {
    match c {
        Carrier::U8 => out.push(v as u8),
        Carrier::I32 => out.extend_from_slice(&(v as i32).to_le_bytes()),
        _ => out.extend_from_slice(&(v as i64).to_le_bytes()),
    }
}

/// One JSON element of `data` as the parser saw it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum JsonNumber {
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    /// A string or null: never a valid element.
    Other,
}

impl JsonNumber {
    fn of(v: &Value) -> JsonNumber {
        match v {
            Value::Bool(b) => JsonNumber::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => JsonNumber::I64(i),
                (None, Some(u), _) => JsonNumber::U64(u),
                (_, _, Some(f)) => JsonNumber::F64(f),
                _ => JsonNumber::Other,
            },
            _ => JsonNumber::Other,
        }
    }
}

/// Appends one JSON element to `out` as carrier bytes: floats must be finite and representable
/// in the dtype (a value that rounds to infinity is refused, never sent as one), integers in
/// range, never wrapped.
pub fn push_json(input: &str, d: DType, v: JsonNumber, out: &mut Vec<u8>) -> Result<(), ApiError> {
    let c = d.carrier();
    if d.is_float() {
        let x = match v {
            JsonNumber::I64(i) => i as f64,
            JsonNumber::U64(u) => u as f64,
            JsonNumber::F64(f) => f,
            JsonNumber::Bool(_) | JsonNumber::Other => {
                return Err(ApiError::bad(
                    "bad-tensor",
                    format!("input \"{input}\": data must be numbers"),
                ))
            }
        };
        if !x.is_finite() {
            return Err(non_finite(input));
        }
        let finite = match d {
            DType::F16 => {
                let y = f16::from_f64(x);
                out.extend_from_slice(&y.to_le_bytes());
                y.is_finite()
            }
            DType::Bf16 => {
                let y = bf16::from_f64(x);
                out.extend_from_slice(&y.to_le_bytes());
                y.is_finite()
            }
            DType::F32 => {
                let y = x as f32;
                out.extend_from_slice(&y.to_le_bytes());
                y.is_finite()
            }
            _ => {
                out.extend_from_slice(&x.to_le_bytes());
                true
            }
        };
        if !finite {
            return Err(out_of_range(input, d));
        }
        return Ok(());
    }
    let n: i128 = match v {
        JsonNumber::Bool(b) if d == DType::Bool => i128::from(b),
        JsonNumber::I64(i) => i.into(),
        JsonNumber::U64(u) => u.into(),
        JsonNumber::F64(_) => {
            return Err(ApiError::bad(
                "bad-tensor",
                format!("input \"{input}\": {} data must be integers", d.name()),
            ))
        }
        JsonNumber::Bool(_) | JsonNumber::Other => {
            return Err(ApiError::bad(
                "bad-tensor",
                format!(
                    "input \"{input}\": {} data must be {}",
                    d.name(),
                    if d == DType::Bool {
                        "true/false or 0/1"
                    } else {
                        "integers"
                    }
                ),
            ))
        }
    };
    let (lo, hi) = d.int_range();
    if n < lo || n > hi {
        return Err(out_of_range(input, d));
    }
    put_int(out, c, n);
    Ok(())
}

/// JSON numbers (booleans for `bool`) to carrier bytes.
pub fn json_to_carrier(input: &str, d: DType, values: &[Value]) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(values.len() * d.carrier().size());
    for v in values {
        push_json(input, d, JsonNumber::of(v), &mut out)?;
    }
    Ok(out)
}

/// The client's raw little-endian bytes (safetensors) to carrier bytes.
pub fn raw_to_carrier(input: &str, d: DType, raw: &[u8]) -> Result<Vec<u8>, ApiError> {
    let c = d.carrier();
    let mut out = Vec::with_capacity(raw.len() / d.size() * c.size());
    for e in raw.chunks_exact(d.size()) {
        let finite = match d {
            DType::F16 => f16::from_le_bytes([e[0], e[1]]).is_finite(),
            DType::Bf16 => bf16::from_le_bytes([e[0], e[1]]).is_finite(),
            DType::F32 => f32::from_le_bytes(e.try_into().unwrap()).is_finite(),
            DType::F64 => f64::from_le_bytes(e.try_into().unwrap()).is_finite(),
            _ => true,
        };
        if !finite {
            return Err(non_finite(input));
        }
        if d.is_float() {
            out.extend_from_slice(e);
            continue;
        }
        let n = int_at(d, e);
        let (lo, hi) = d.int_range();
        if n < lo || n > hi {
            return Err(out_of_range(input, d));
        }
        put_int(&mut out, c, n);
    }
    Ok(out)
}

fn int_at(d: DType, e: &[u8]) -> i128 {
    match d {
        DType::I8 => (e[0] as i8).into(),
        DType::U8 | DType::Bool => e[0].into(),
        DType::I16 => i16::from_le_bytes([e[0], e[1]]).into(),
        DType::U16 => u16::from_le_bytes([e[0], e[1]]).into(),
        DType::I32 => i32::from_le_bytes(e.try_into().unwrap()).into(),
        DType::U32 => u32::from_le_bytes(e.try_into().unwrap()).into(),
        DType::I64 => i64::from_le_bytes(e.try_into().unwrap()).into(),
        DType::U64 => u64::from_le_bytes(e.try_into().unwrap()).into(),
        _ => 0,
    }
}

fn carrier_int(c: Carrier, e: &[u8]) -> i128 {
    match c {
        Carrier::U8 => e[0].into(),
        Carrier::I32 => i32::from_le_bytes(e.try_into().unwrap()).into(),
        _ => i64::from_le_bytes(e.try_into().unwrap()).into(),
    }
}

/// Carrier bytes from the engine to the model's own element type, little-endian.
pub fn carrier_to_raw(output: &str, d: DType, data: &[u8]) -> Result<Vec<u8>, ApiError> {
    let c = d.carrier();
    if !data.len().is_multiple_of(c.size()) {
        return Err(ApiError::new(
            500,
            "runtime-error",
            format!("output \"{output}\": the engine returned a partial element"),
        ));
    }
    if d.is_float() {
        return Ok(data.to_vec());
    }
    let mut out = Vec::with_capacity(data.len() / c.size() * d.size());
    for e in data.chunks_exact(c.size()) {
        let n = carrier_int(c, e);
        let (lo, hi) = d.int_range();
        if n < lo || n > hi {
            return Err(ApiError::new(
                500,
                "runtime-error",
                format!("output \"{output}\": a value does not fit {}", d.name()),
            ));
        }
        let b = n.to_le_bytes();
        out.extend_from_slice(&b[..d.size()]);
    }
    Ok(out)
}

/// Raw little-endian elements to JSON: floats exactly (as f64, which every f16/bf16/f32 is),
/// NaN and infinities as `null`; integers as integers; bool as true/false.
pub fn raw_to_json(d: DType, raw: &[u8]) -> Vec<Value> {
    raw.chunks_exact(d.size())
        .map(|e| {
            let x = match d {
                DType::F16 => f16::from_le_bytes([e[0], e[1]]).to_f64(),
                DType::Bf16 => bf16::from_le_bytes([e[0], e[1]]).to_f64(),
                DType::F32 => f32::from_le_bytes(e.try_into().unwrap()).into(),
                DType::F64 => f64::from_le_bytes(e.try_into().unwrap()),
                DType::Bool => return Value::Bool(e[0] != 0),
                _ => {
                    let n = int_at(d, e);
                    return match i64::try_from(n) {
                        Ok(i) => Value::from(i),
                        Err(_) => Value::from(n as u64),
                    };
                }
            };
            serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_round_trip() {
        for d in ALL {
            assert_eq!(DType::parse(d.name()), Some(d));
            assert_eq!(DType::parse(d.engine_name()), Some(d));
        }
        assert_eq!(DType::parse("float"), None);
    }

    #[test]
    fn carriers_widen_and_check_range() {
        let b = json_to_carrier("x", DType::I8, &[json!(-128), json!(127)]).unwrap();
        assert_eq!(b, [(-128i32).to_le_bytes(), 127i32.to_le_bytes()].concat());
        assert_eq!(
            json_to_carrier("x", DType::I8, &[json!(128)])
                .unwrap_err()
                .code,
            "out-of-range"
        );
        assert_eq!(
            json_to_carrier("x", DType::Bool, &[json!(true), json!(0)]).unwrap(),
            vec![1, 0]
        );
        assert_eq!(
            json_to_carrier("x", DType::U64, &[json!(u64::MAX)])
                .unwrap_err()
                .code,
            "out-of-range"
        );
        assert_eq!(
            json_to_carrier("x", DType::I32, &[json!(1.5)])
                .unwrap_err()
                .code,
            "bad-tensor"
        );
        assert_eq!(
            json_to_carrier("x", DType::F32, &[json!(1e300)])
                .unwrap_err()
                .code,
            "out-of-range"
        );
        // float16 tops out at 65504, bfloat16 near 3.4e38: larger values are refused, not sent as inf.
        for (d, big) in [(DType::F16, 70000.0), (DType::Bf16, 1e39)] {
            assert_eq!(
                json_to_carrier("x", d, &[json!(big)]).unwrap_err().code,
                "out-of-range",
                "{d:?}"
            );
        }
        let ok = json_to_carrier("x", DType::F16, &[json!(65504.0)]).unwrap();
        assert_eq!(f16::from_le_bytes([ok[0], ok[1]]).to_f64(), 65504.0);
        let raw = [(-5i16).to_le_bytes(), 7i16.to_le_bytes()].concat();
        let c = raw_to_carrier("x", DType::I16, &raw).unwrap();
        assert_eq!(carrier_to_raw("y", DType::I16, &c).unwrap(), raw);
    }

    #[test]
    fn non_finite_is_refused_and_encoded_as_null() {
        let raw = f32::NAN.to_le_bytes();
        assert_eq!(
            raw_to_carrier("x", DType::F32, &raw).unwrap_err().code,
            "non-finite"
        );
        assert_eq!(raw_to_json(DType::F32, &raw), vec![Value::Null]);
        let v = raw_to_json(DType::F32, &0.1f32.to_le_bytes());
        assert_eq!(v[0].as_f64().unwrap() as f32, 0.1f32);
    }
}
