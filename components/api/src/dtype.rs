//! Client data to and from the carriers: JSON numbers and raw little-endian bytes, converted
//! by the tables' rules (`nn-tables`: names, widths, carriers, ranges), range-checked here as
//! the engine checks them, never wrapped.

use crate::error::ApiError;
use half::{bf16, f16};
use serde_json::Value;

pub use nn_tables::{label, DType, ElementType as Carrier};

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
    let Some((lo, hi)) = d.int_range() else {
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
        if !d.float_fits(x) {
            return Err(out_of_range(input, d));
        }
        match d {
            // The portable conversion (what wasm32 runs), natively too: F16C's rounds through f32.
            DType::F16 => out.extend_from_slice(&f16::from_f64_const(x).to_le_bytes()),
            DType::Bf16 => out.extend_from_slice(&bf16::from_f64(x).to_le_bytes()),
            DType::F32 => out.extend_from_slice(&(x as f32).to_le_bytes()),
            _ => out.extend_from_slice(&x.to_le_bytes()),
        }
        return Ok(());
    };
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
        let Some((lo, hi)) = d.int_range() else {
            out.extend_from_slice(e);
            continue;
        };
        let n = int_at(d, e);
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
    let Some((lo, hi)) = d.int_range() else {
        return Ok(data.to_vec());
    };
    let mut out = Vec::with_capacity(data.len() / c.size() * d.size());
    for e in data.chunks_exact(c.size()) {
        let n = carrier_int(c, e);
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
        for d in DType::ALL {
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
