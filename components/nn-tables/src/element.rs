//! Element types: wasi-nn's seven carriers, the thirteen types models declare that have a
//! numpy name, and how each travels: the smallest carrier that holds every value (bool in U8;
//! i8, i16, u16 in I32; u32, u64 in I64), range-checked on the way in, never wrapped.

/// `wasi:nn/tensor.tensor-type`: the types a tensor travels in, in the WIT's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementType {
    F16,
    F32,
    F64,
    Bf16,
    U8,
    I32,
    I64,
}

/// A carrier: the engine's name, the WIT's, bytes per element, the `.npy` descr its bytes are
/// (bf16 has no numpy type: its raw 16-bit words).
struct Carrier(ElementType, &'static str, &'static str, usize, &'static str);

#[rustfmt::skip]
const CARRIERS: [Carrier; 7] = [
    Carrier(ElementType::F16, "f16", "FP16", 2, "<f2"),
    Carrier(ElementType::F32, "f32", "FP32", 4, "<f4"),
    Carrier(ElementType::F64, "f64", "FP64", 8, "<f8"),
    Carrier(ElementType::Bf16, "bf16", "BF16", 2, "<u2"),
    Carrier(ElementType::U8, "u8", "U8", 1, "|u1"),
    Carrier(ElementType::I32, "i32", "I32", 4, "<i4"),
    Carrier(ElementType::I64, "i64", "I64", 8, "<i8"),
];

impl ElementType {
    /// Every carrier, in the WIT's order.
    pub const ALL: [ElementType; 7] = first_column!(CARRIERS, ElementType::F16);

    fn row(self) -> &'static Carrier {
        let row = &CARRIERS[self as usize];
        debug_assert_eq!(row.0, self, "CARRIERS is in enum order");
        row
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        self.row().3
    }

    /// The engine's name (`f32`), as in signatures and `describe`.
    pub fn as_str(self) -> &'static str {
        self.row().1
    }

    /// The WIT's name (`FP32`), as jco and the Python `wasmtime` package spell it.
    pub fn wit_name(self) -> &'static str {
        self.row().2
    }

    /// The little-endian `.npy` descr of the carrier's bytes.
    pub fn npy_descr(self) -> &'static str {
        self.row().4
    }

    /// By the engine's name or the WIT's.
    pub fn parse(name: &str) -> Option<ElementType> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == name || t.wit_name() == name)
    }
}

/// A model's element type as clients name it (numpy names, as in models/manifest.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// Which values of a type may travel.
#[derive(Clone, Copy)]
enum Range {
    /// Finite values below this magnitude: the first that rounds to infinity in the type is
    /// refused, never sent as one.
    Float(f64),
    /// Integers in `lo..=hi`.
    Int(i128, i128),
}

/// The numpy name, the engine's name, bytes per element, the carrier, the values that travel.
struct Row(DType, &'static str, &'static str, usize, ElementType, Range);

use ElementType as C;
use Range::{Float, Int};

// Overflow thresholds: the largest finite value plus half its ulp, where round-to-nearest-even
// goes to infinity (the largest finite value's last mantissa bit is odd). Checked against the
// `half` crate and Rust's own f64 -> f32 cast in the tests.
const F16_OVERFLOW: f64 = 65520.0;
const BF16_OVERFLOW: f64 = 511.0 * (1u128 << 119) as f64;
const F32_OVERFLOW: f64 = 33_554_431.0 * (1u128 << 103) as f64;

#[rustfmt::skip]
const DTYPES: [Row; 13] = [
    Row(DType::F16, "float16", "f16", 2, C::F16, Float(F16_OVERFLOW)),
    Row(DType::Bf16, "bfloat16", "bf16", 2, C::Bf16, Float(BF16_OVERFLOW)),
    Row(DType::F32, "float32", "f32", 4, C::F32, Float(F32_OVERFLOW)),
    Row(DType::F64, "float64", "f64", 8, C::F64, Float(f64::INFINITY)),
    Row(DType::I8, "int8", "i8", 1, C::I32, Int(i8::MIN as i128, i8::MAX as i128)),
    Row(DType::I16, "int16", "i16", 2, C::I32, Int(i16::MIN as i128, i16::MAX as i128)),
    Row(DType::I32, "int32", "i32", 4, C::I32, Int(i32::MIN as i128, i32::MAX as i128)),
    Row(DType::I64, "int64", "i64", 8, C::I64, Int(i64::MIN as i128, i64::MAX as i128)),
    Row(DType::U8, "uint8", "u8", 1, C::U8, Int(0, u8::MAX as i128)),
    Row(DType::U16, "uint16", "u16", 2, C::I32, Int(0, u16::MAX as i128)),
    Row(DType::U32, "uint32", "u32", 4, C::I64, Int(0, u32::MAX as i128)),
    // Carried in I64: values above i64::MAX cannot travel.
    Row(DType::U64, "uint64", "u64", 8, C::I64, Int(0, i64::MAX as i128)),
    Row(DType::Bool, "bool", "bool", 1, C::U8, Int(0, 1)),
];

impl DType {
    /// Every element type, in the table's order.
    pub const ALL: [DType; 13] = first_column!(DTYPES, DType::F16);

    fn row(self) -> &'static Row {
        let row = &DTYPES[self as usize];
        debug_assert_eq!(row.0, self, "DTYPES is in enum order");
        row
    }

    /// The numpy name (`float32`) or the engine's (`f32`).
    pub fn parse(s: &str) -> Option<DType> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == s || d.engine_name() == s)
    }

    /// The numpy name.
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// The name the engine's `describe` gives (`introspection.tensor-info.element-type`).
    pub fn engine_name(self) -> &'static str {
        self.row().2
    }

    /// Bytes per element in the type's own form (little-endian, as numpy and safetensors).
    pub fn size(self) -> usize {
        self.row().3
    }

    /// The wasi-nn type it travels in.
    pub fn carrier(self) -> ElementType {
        self.row().4
    }

    pub fn is_float(self) -> bool {
        matches!(self.row().5, Float(_))
    }

    /// For an integer type (bool as 0 and 1), the values that may travel; None for floats.
    pub fn int_range(self) -> Option<(i128, i128)> {
        match self.row().5 {
            Int(lo, hi) => Some((lo, hi)),
            Float(_) => None,
        }
    }

    /// For a float type, the magnitude from which a value rounds to infinity in it (values
    /// there and above are refused, never sent as infinity); None for integers.
    pub fn overflow_at(self) -> Option<f64> {
        match self.row().5 {
            Float(limit) => Some(limit),
            Int(..) => None,
        }
    }

    /// Whether a finite `x` stays finite in this float type (always false for integer types).
    pub fn float_fits(self, x: f64) -> bool {
        self.overflow_at().is_some_and(|limit| x.abs() < limit)
    }
}

/// A client-facing name for an engine element type: the numpy name when there is one
/// (`f32` -> `float32`), else the engine's own (`qu8`, `f8e4m3fn`, `string`).
pub fn label(engine_name: &str) -> &str {
    match DType::parse(engine_name) {
        Some(d) => d.name(),
        None => engine_name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    #[test]
    fn rows_are_in_enum_order_and_names_round_trip() {
        for (i, t) in ElementType::ALL.into_iter().enumerate() {
            assert_eq!((t as usize, CARRIERS[i].0), (i, t));
            assert_eq!(ElementType::parse(t.as_str()), Some(t));
            assert_eq!(ElementType::parse(t.wit_name()), Some(t));
        }
        for (i, d) in DType::ALL.into_iter().enumerate() {
            assert_eq!((d as usize, DTYPES[i].0), (i, d));
            assert_eq!(DType::parse(d.name()), Some(d));
            assert_eq!(DType::parse(d.engine_name()), Some(d));
            assert_eq!(label(d.engine_name()), d.name());
        }
        assert_eq!(DType::parse("float"), None);
        assert_eq!(label("qu8"), "qu8");
    }

    #[test]
    fn every_carrier_holds_its_types() {
        for d in DType::ALL {
            let c = d.carrier();
            assert!(c.size() >= d.size(), "{d:?}");
            if let Some((lo, hi)) = d.int_range() {
                let bits = 8 * c.size() as u32;
                let (clo, chi) = match c {
                    ElementType::U8 => (0, 255),
                    _ => (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1),
                };
                assert!(clo <= lo && hi <= chi, "{d:?} in {c:?}");
            } else {
                assert_eq!(c.as_str(), d.engine_name(), "a float travels as itself");
            }
        }
    }

    #[test]
    fn overflow_thresholds_match_the_conversions() {
        let below = |x: f64| f64::from_bits(x.to_bits() - 1);
        // half's portable f64 -> f16 (what wasm32 runs); its x86 F16C path goes through f32
        // first, and that double rounding moves the edge (why the rule is this table's).
        type Finite = fn(f64) -> bool;
        let cases: [(DType, Finite); 3] = [
            (DType::F16, |x| f16::from_f64_const(x).is_finite()),
            (DType::Bf16, |x| bf16::from_f64(x).is_finite()),
            (DType::F32, |x| (x as f32).is_finite()),
        ];
        for (d, finite) in cases {
            let limit = d.overflow_at().unwrap();
            assert!(
                !finite(limit) && !finite(-limit),
                "{d:?}: {limit} overflows"
            );
            assert!(finite(below(limit)) && finite(-below(limit)), "{d:?}");
            assert!(!d.float_fits(limit) && d.float_fits(below(limit)), "{d:?}");
        }
        assert_eq!(f16::from_f64_const(below(F16_OVERFLOW)), f16::MAX);
        assert!(DType::F64.float_fits(f64::MAX));
        assert!(!DType::I32.float_fits(0.0));
    }
}
