//! The tables as data, for the code that cannot link this crate (the JavaScript and Python
//! examples, the browser's .npy reader): `secure-context tables --json` prints it, and
//! tests/bindings checks every copy against it.
use crate::{DType, ElementType, ErrorCode};
use serde_json::{json, Value};

pub const FORMAT: &str = "secure-context-nn-tables/1";

pub fn tables_json() -> Value {
    let carriers: Vec<Value> = ElementType::ALL
        .iter()
        .map(|t| {
            json!({
                "wit": t.wit_name(),
                "name": t.as_str(),
                "bytes": t.size(),
                "npy": t.npy_descr(),
            })
        })
        .collect();
    let element_types: Vec<Value> = DType::ALL
        .iter()
        .map(|d| {
            // Integer bounds as numbers (every one fits in i64); floats by their overflow
            // magnitude, null for f64 (no finite value overflows it).
            let range = d.int_range().map(|(lo, hi)| json!([lo as i64, hi as i64]));
            let overflow = d.overflow_at().filter(|x| x.is_finite());
            json!({
                "name": d.name(),
                "engine_name": d.engine_name(),
                "bytes": d.size(),
                "carrier": d.carrier().wit_name(),
                "int_range": range,
                "overflow_at": overflow,
            })
        })
        .collect();
    let error_codes: Vec<Value> = ErrorCode::ALL
        .iter()
        .map(|c| {
            json!({
                "code": c.as_str(),
                "http_status": c.http_status(),
                "meaning": c.meaning(),
            })
        })
        .collect();
    json!({
        "format": FORMAT,
        "carriers": carriers,
        "element_types": element_types,
        "error_codes": error_codes,
        "signature": "TYPE[D0,D1,...], e.g. f32[1,3,224,224]; symbolic dims by name, unknown rank TYPE[..]",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_exported() {
        let t = tables_json();
        assert_eq!(t["carriers"].as_array().unwrap().len(), 7);
        assert_eq!(t["element_types"].as_array().unwrap().len(), 13);
        assert_eq!(t["error_codes"][5]["code"], "too-large");
        assert_eq!(t["error_codes"][5]["http_status"], 413);
        assert_eq!(t["element_types"][11]["int_range"], json!([0, i64::MAX]));
        assert_eq!(t["element_types"][0]["overflow_at"], json!(65520.0));
    }
}
