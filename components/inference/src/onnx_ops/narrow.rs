//! Element types ONNX has and tract does not: bfloat16, the float8 family, float4, and 4- and
//! 2-bit integers (what quantized and mixed-precision exports carry weights in).
//!
//! Inside tract such a tensor is *held* in a type that represents every one of its values
//! exactly: floats in f32, signed integers in i8, unsigned ones in u8. Values are put on the
//! narrow type's grid where ONNX creates them (Cast, QuantizeLinear, a model's inputs and
//! outputs), so arithmetic in between sees exactly the numbers the narrow type holds.
//! Outside, they travel in a wasi-nn carrier: bf16 in `BF16`, 8- and 4-bit floats in `F32`,
//! 4- and 2-bit integers in `I32`, checked on the way in like the other narrow carriers.
use crate::error::{NnError, NnResult};
use crate::tensor::{ElementType, TensorData};
use tract_hir::internal::*;
use tract_onnx::pb::TensorProto;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Narrow {
    Bf16,
    F8E4M3Fn,
    F8E4M3Fnuz,
    F8E5M2,
    F8E5M2Fnuz,
    F8E8M0,
    F4E2M1,
    U4,
    I4,
    U2,
    I2,
}

/// A small IEEE-like float: `man` mantissa bits, exponent `bias`, largest finite value.
struct MiniFloat {
    bits: u32,
    man: u32,
    bias: i32,
    max: f64,
    /// Has infinities (else overflow without saturation gives NaN).
    inf: bool,
    /// Has a negative zero (the `fnuz` formats do not).
    neg_zero: bool,
    /// Has a NaN. float4 has none: NaN becomes -0 and overflow saturates, as in onnx's
    /// reference (ml_dtypes); the ONNX spec leaves both open.
    nan: bool,
}

impl Narrow {
    /// From `TensorProto.DataType`.
    pub fn from_onnx(code: i32) -> Option<Narrow> {
        Some(match code {
            16 => Narrow::Bf16,
            17 => Narrow::F8E4M3Fn,
            18 => Narrow::F8E4M3Fnuz,
            19 => Narrow::F8E5M2,
            20 => Narrow::F8E5M2Fnuz,
            21 => Narrow::U4,
            22 => Narrow::I4,
            23 => Narrow::F4E2M1,
            24 => Narrow::F8E8M0,
            25 => Narrow::U2,
            26 => Narrow::I2,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Narrow::Bf16 => "bf16",
            Narrow::F8E4M3Fn => "f8e4m3fn",
            Narrow::F8E4M3Fnuz => "f8e4m3fnuz",
            Narrow::F8E5M2 => "f8e5m2",
            Narrow::F8E5M2Fnuz => "f8e5m2fnuz",
            Narrow::F8E8M0 => "f8e8m0",
            Narrow::F4E2M1 => "f4e2m1",
            Narrow::U4 => "u4",
            Narrow::I4 => "i4",
            Narrow::U2 => "u2",
            Narrow::I2 => "i2",
        }
    }

    pub fn is_float(self) -> bool {
        !matches!(self, Narrow::U4 | Narrow::I4 | Narrow::U2 | Narrow::I2)
    }

    /// The tract type that holds the values.
    pub fn held(self) -> DatumType {
        match self {
            Narrow::I4 | Narrow::I2 => DatumType::I8,
            Narrow::U4 | Narrow::U2 => DatumType::U8,
            _ => DatumType::F32,
        }
    }

    /// The ONNX data type code of the held type (FLOAT, INT8, UINT8).
    pub fn held_onnx(self) -> i32 {
        match self.held() {
            DatumType::I8 => 3,
            DatumType::U8 => 2,
            _ => 1,
        }
    }

    /// The wasi-nn type that carries the values in and out.
    pub fn carrier(self) -> ElementType {
        match self {
            Narrow::Bf16 => ElementType::Bf16,
            _ if self.is_float() => ElementType::F32,
            _ => ElementType::I32,
        }
    }

    fn storage_bits(self) -> usize {
        match self {
            Narrow::Bf16 => 16,
            Narrow::U4 | Narrow::I4 | Narrow::F4E2M1 => 4,
            Narrow::U2 | Narrow::I2 => 2,
            _ => 8,
        }
    }

    fn mini(self) -> Option<MiniFloat> {
        let f = |bits, man, bias, max, inf, neg_zero| MiniFloat {
            bits,
            man,
            bias,
            max,
            inf,
            neg_zero,
            nan: bits == 8,
        };
        Some(match self {
            Narrow::F8E4M3Fn => f(8, 3, 7, 448.0, false, true),
            Narrow::F8E4M3Fnuz => f(8, 3, 8, 240.0, false, false),
            Narrow::F8E5M2 => f(8, 2, 15, 57344.0, true, true),
            Narrow::F8E5M2Fnuz => f(8, 2, 16, 57344.0, false, false),
            Narrow::F4E2M1 => f(4, 1, 1, 6.0, false, true),
            _ => return None,
        })
    }

    /// Smallest and largest value of an integer type.
    pub fn int_range(self) -> (i64, i64) {
        match self {
            Narrow::U4 => (0, 15),
            Narrow::I4 => (-8, 7),
            Narrow::U2 => (0, 3),
            Narrow::I2 => (-2, 1),
            _ => (i64::MIN, i64::MAX),
        }
    }

    /// Largest finite value of a float type.
    pub fn float_max(self) -> f32 {
        match self {
            Narrow::Bf16 => f32::from_bits(0x7f7f_0000),
            Narrow::F8E8M0 => f32::from_bits(0x7f00_0000),
            _ => self.mini().map(|m| m.max as f32).unwrap_or(f32::MAX),
        }
    }

    /// Keeps the low bits of an integer, as ONNX Cast does between integer types.
    pub fn wrap(self, v: i64) -> i64 {
        match self {
            Narrow::U4 => v & 0xf,
            Narrow::I4 => ((v & 0xf) ^ 0x8) - 0x8,
            Narrow::U2 => v & 0x3,
            Narrow::I2 => ((v & 0x3) ^ 0x2) - 0x2,
            _ => v,
        }
    }

    /// The value of one storage code.
    fn decode(self, code: u32) -> f32 {
        match self {
            Narrow::Bf16 => f32::from_bits(code << 16),
            Narrow::F8E8M0 if code == 0xff => f32::NAN,
            Narrow::F8E8M0 => (2f64).powi(code as i32 - 127) as f32,
            Narrow::U4 | Narrow::U2 => code as f32,
            Narrow::I4 => (((code & 0xf) ^ 0x8) as i32 - 0x8) as f32,
            Narrow::I2 => (((code & 0x3) ^ 0x2) as i32 - 0x2) as f32,
            _ => {
                let m = self.mini().expect("a small float");
                let sign = (code >> (m.bits - 1)) & 1;
                let body = code & ((1 << (m.bits - 1)) - 1);
                let exp_bits = m.bits - 1 - m.man;
                let (e, f) = (body >> m.man, body & ((1 << m.man) - 1));
                let nan = match self {
                    Narrow::F8E4M3Fn => body == 0x7f,
                    Narrow::F8E4M3Fnuz | Narrow::F8E5M2Fnuz => sign == 1 && body == 0,
                    Narrow::F8E5M2 => e == (1 << exp_bits) - 1 && f != 0,
                    _ => false,
                };
                if nan {
                    return f32::NAN;
                }
                let magnitude = if self == Narrow::F8E5M2 && e == 31 {
                    f64::INFINITY
                } else if e == 0 {
                    f as f64 * (2f64).powi(1 - m.bias - m.man as i32)
                } else {
                    (1.0 + f as f64 / (1u32 << m.man) as f64) * (2f64).powi(e as i32 - m.bias)
                };
                (if sign == 1 { -magnitude } else { magnitude }) as f32
            }
        }
    }

    /// Rounds a float onto this float type's grid (ONNX Cast: round to nearest even; beyond
    /// the largest value, the largest value when saturating, else infinity or NaN).
    pub fn round(self, x: f32, saturate: bool) -> f32 {
        match self {
            Narrow::Bf16 => {
                if x.is_nan() {
                    return x;
                }
                let b = x.to_bits();
                f32::from_bits(b.wrapping_add(0x7fff + ((b >> 16) & 1)) & 0xffff_0000)
            }
            Narrow::F8E8M0 => round_e8m0(x, saturate, E8M0Rounding::Up),
            _ => match self.mini() {
                Some(m) => round_mini(&m, x, saturate),
                None => x,
            },
        }
    }

    /// Takes a tensor that arrived in this type's carrier to the held type, refusing values
    /// the narrow type cannot hold (never rounding them silently).
    pub fn to_tract(self, t: &TensorData) -> NnResult<Tensor> {
        if t.ty != self.carrier() {
            return Err(NnError::invalid(format!(
                "expected {} (as {}), got {}",
                self.name(),
                self.carrier().as_str(),
                t.ty.as_str()
            )));
        }
        let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        let refuse = |v: &dyn std::fmt::Display| {
            NnError::invalid(format!("value {v} is not a {} value", self.name()))
        };
        let tensor = match self.held() {
            DatumType::F32 => {
                let values: Vec<f32> = if self == Narrow::Bf16 {
                    t.data
                        .chunks_exact(2)
                        .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                        .collect()
                } else {
                    let mut v = Vec::with_capacity(t.data.len() / 4);
                    for b in t.data.chunks_exact(4) {
                        let x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                        let y = self.round(x, false);
                        if !(y == x || x.is_nan() && y.is_nan()) {
                            return Err(refuse(&x));
                        }
                        v.push(y);
                    }
                    v
                };
                tensor_from(&shape, values)?
            }
            held => {
                let (lo, hi) = self.int_range();
                let mut v = Vec::with_capacity(t.data.len() / 4);
                for b in t.data.chunks_exact(4) {
                    let x = i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64;
                    if x < lo || x > hi {
                        return Err(refuse(&x));
                    }
                    v.push(x);
                }
                if held == DatumType::I8 {
                    tensor_from(&shape, v.into_iter().map(|x| x as i8).collect())?
                } else {
                    tensor_from(&shape, v.into_iter().map(|x| x as u8).collect())?
                }
            }
        };
        Ok(tensor)
    }

    /// Takes a held tensor out to this type's carrier, on the type's grid.
    pub fn from_tract(self, t: &Tensor) -> NnResult<TensorData> {
        let dims = t
            .shape()
            .iter()
            .map(|&d| u32::try_from(d))
            .collect::<Result<Vec<u32>, _>>()
            .map_err(|_| NnError::too_large("output dimension does not fit in u32"))?;
        let data = if self.is_float() {
            let f = t
                .cast_to::<f32>()
                .map_err(|e| NnError::runtime(e.to_string()))?;
            let v = f
                .try_as_plain_ram()
                .and_then(|p| p.as_slice::<f32>().map(|s| s.to_vec()))
                .map_err(|e| NnError::runtime(e.to_string()))?;
            let mut out = Vec::with_capacity(v.len() * 4);
            for x in v {
                let y = self.round(x, true);
                if self == Narrow::Bf16 {
                    out.extend_from_slice(&((y.to_bits() >> 16) as u16).to_le_bytes());
                } else {
                    out.extend_from_slice(&y.to_le_bytes());
                }
            }
            out
        } else {
            let i = t
                .cast_to::<i64>()
                .map_err(|e| NnError::runtime(e.to_string()))?;
            let v = i
                .try_as_plain_ram()
                .and_then(|p| p.as_slice::<i64>().map(|s| s.to_vec()))
                .map_err(|e| NnError::runtime(e.to_string()))?;
            v.into_iter()
                .flat_map(|x| (self.wrap(x) as i32).to_le_bytes())
                .collect()
        };
        Ok(TensorData::new(dims, self.carrier(), data))
    }
}

fn tensor_from<T: Datum>(shape: &[usize], v: Vec<T>) -> NnResult<Tensor> {
    tract_ndarray::ArrayD::from_shape_vec(shape, v)
        .map(Tensor::from)
        .map_err(|e| NnError::invalid(e.to_string()))
}

fn round_mini(m: &MiniFloat, x: f32, saturate: bool) -> f32 {
    let overflow = |negative: bool| {
        let v = if saturate || !m.nan {
            m.max
        } else if m.inf {
            f64::INFINITY
        } else {
            return f32::NAN;
        };
        (if negative { -v } else { v }) as f32
    };
    if x.is_nan() {
        return if m.nan { f32::NAN } else { -0.0 };
    }
    if x.is_infinite() {
        return overflow(x < 0.0);
    }
    let a = (x as f64).abs();
    let r = if a == 0.0 {
        0.0
    } else {
        // The spacing of representable values around `a`: 2^(e - man), with e no lower than
        // the smallest normal exponent (below it, subnormals share one spacing).
        let e = ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023;
        let q = (2f64).powi(e.max(1 - m.bias) - m.man as i32);
        (a / q).round_ties_even() * q
    };
    if r > m.max {
        return overflow(x < 0.0);
    }
    if x < 0.0 && (m.neg_zero || r != 0.0) {
        -r as f32
    } else {
        r as f32
    }
}

/// How a value between two powers of two becomes one (Cast's `round_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum E8M0Rounding {
    Up,
    Down,
    Nearest,
}

/// float8e8m0 holds only powers of two, 2^-127 to 2^127; this follows onnx's reference
/// (`numpy_helper.to_float8e8m0`) bit for bit: the f32 exponent, moved up by the mantissa.
pub fn round_e8m0(x: f32, saturate: bool, mode: E8M0Rounding) -> f32 {
    let bits = x.to_bits();
    let mut exp = (bits >> 23) & 0xff;
    if exp == 0xff {
        return f32::NAN;
    }
    let up = match mode {
        E8M0Rounding::Down => false,
        E8M0Rounding::Up => bits & 0x7f_ffff != 0,
        E8M0Rounding::Nearest => {
            let (g, r, s) = (
                bits & 0x40_0000 != 0,
                bits & 0x20_0000 != 0,
                bits & 0x1f_ffff != 0,
            );
            g && (r || s || exp > 0)
        }
    };
    if up && !(saturate && exp == 0xfe) {
        exp += 1;
    }
    Narrow::F8E8M0.decode(exp)
}

/// The values of a narrow-typed `TensorProto` (initializer, constant, test data), in the held
/// type. None when the tensor is not of a narrow type.
pub fn decode_proto(t: &TensorProto) -> Option<TractResult<(Narrow, Tensor)>> {
    let narrow = Narrow::from_onnx(t.data_type)?;
    Some(decode_as(narrow, t).map(|tensor| (narrow, tensor)))
}

/// A narrow-typed `TensorProto` (test data, for one) in its wasi-nn carrier.
pub fn carried(t: &TensorProto) -> Option<NnResult<(Narrow, TensorData)>> {
    let decoded = decode_proto(t)?;
    Some(
        decoded
            .map_err(|e| NnError::invalid(e.to_string()))
            .and_then(|(n, tensor)| Ok((n, n.from_tract(&tensor)?))),
    )
}

fn decode_as(narrow: Narrow, t: &TensorProto) -> TractResult<Tensor> {
    ensure!(
        t.external_data.is_empty(),
        "tensor \"{}\": external data is not supported",
        t.name
    );
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format_err!("negative dimension {d}")))
        .collect::<TractResult<_>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .context("tensor too large")?;
    let bits = narrow.storage_bits();
    // Raw data is packed little-endian; int32_data holds one storage unit (a 16-bit value or
    // a byte, itself packing 2 or 4 small values) per entry.
    let units: Vec<u32> = if !t.raw_data.is_empty() {
        if bits == 16 {
            t.raw_data
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) as u32)
                .collect()
        } else {
            t.raw_data.iter().map(|&b| b as u32).collect()
        }
    } else {
        t.int32_data.iter().map(|&v| v as u32).collect()
    };
    let codes: Vec<u32> = if bits >= 8 {
        units
    } else {
        let per = 8 / bits;
        let mask = (1u32 << bits) - 1;
        units
            .iter()
            .flat_map(|&b| (0..per).map(move |i| (b >> (i * bits)) & mask))
            .collect()
    };
    ensure!(
        codes.len() >= count && codes.len() < count + 8 / bits.min(8),
        "tensor \"{}\": {} values for shape {:?}",
        t.name,
        codes.len(),
        shape
    );
    let codes = &codes[..count];
    Ok(match narrow.held() {
        DatumType::F32 => {
            let v: Vec<f32> = codes.iter().map(|&c| narrow.decode(c)).collect();
            tract_ndarray::ArrayD::from_shape_vec(shape, v)?.into()
        }
        DatumType::I8 => {
            let v: Vec<i8> = codes.iter().map(|&c| narrow.decode(c) as i8).collect();
            tract_ndarray::ArrayD::from_shape_vec(shape, v)?.into()
        }
        _ => {
            let v: Vec<u8> = codes.iter().map(|&c| narrow.decode(c) as u8).collect();
            tract_ndarray::ArrayD::from_shape_vec(shape, v)?.into()
        }
    })
}

/// The same tensor in its held type, as an ONNX `TensorProto` tract can read.
pub fn held_proto(name: &str, tensor: &Tensor, narrow: Narrow) -> TractResult<TensorProto> {
    let plain = tensor.try_as_plain_ram()?;
    Ok(TensorProto {
        name: name.to_string(),
        dims: tensor.shape().iter().map(|&d| d as i64).collect(),
        data_type: narrow.held_onnx(),
        raw_data: plain.as_bytes().to_vec(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float8_rounds_like_onnx() {
        // From onnx's test_cast_FLOAT_to_FLOAT8E4M3FN (input, expected).
        let n = Narrow::F8E4M3Fn;
        assert_eq!(n.round(0.478_925_47, true), 0.46875);
        assert_eq!(n.round(0.819_105_45, true), 0.8125);
        assert_eq!(n.round(1e6, true), 448.0);
        assert!(n.round(1e6, false).is_nan());
        assert_eq!(n.round(f32::NEG_INFINITY, true), -448.0);
        assert_eq!(n.round(1e-7, true), 0.0);
        assert_eq!(Narrow::F8E5M2.round(1e6, false), f32::INFINITY);
        // float4 has neither NaN nor infinity (onnx's test_cast_FLOAT_to_FLOAT4E2M1).
        assert_eq!(
            Narrow::F4E2M1.round(f32::NAN, true).to_bits(),
            (-0f32).to_bits()
        );
        assert_eq!(Narrow::F4E2M1.round(f32::INFINITY, false), 6.0);
        assert_eq!(Narrow::F4E2M1.round(-3.5, true), -4.0);
        // Every code decodes to a value that rounds to itself.
        for n in [
            Narrow::F8E4M3Fn,
            Narrow::F8E4M3Fnuz,
            Narrow::F8E5M2,
            Narrow::F8E5M2Fnuz,
        ] {
            for c in 0..256 {
                let v = n.decode(c);
                assert!(v.is_nan() || n.round(v, false) == v, "{n:?} code {c}: {v}");
            }
        }
    }

    #[test]
    fn small_ints_wrap() {
        assert_eq!(Narrow::I4.wrap(-9), 7);
        assert_eq!(Narrow::I4.wrap(8), -8);
        assert_eq!(Narrow::U4.wrap(-9), 7);
        assert_eq!(Narrow::I2.wrap(3), -1);
    }

    #[test]
    fn e8m0_rounds_up_and_saturates() {
        assert_eq!(round_e8m0(1.1, true, E8M0Rounding::Up), 2.0);
        assert_eq!(round_e8m0(0.124, true, E8M0Rounding::Up), 0.125);
        assert_eq!(
            round_e8m0(0.0, true, E8M0Rounding::Up),
            (2f64).powi(-127) as f32
        );
    }

    #[test]
    fn carriers_refuse_values_off_the_grid() {
        let bad = TensorData::new(vec![1], ElementType::F32, 0.3f32.to_le_bytes().to_vec());
        assert!(Narrow::F8E4M3Fn.to_tract(&bad).is_err());
        let bad = TensorData::new(vec![1], ElementType::I32, 8i32.to_le_bytes().to_vec());
        assert!(Narrow::I4.to_tract(&bad).is_err());
    }
}
