//! Tensors as wasi-nn carries them (dims, element type, little-endian bytes) and their
//! conversion to and from tract tensors.
//!
//! wasi-nn has seven element types; models have more. Types wasi-nn cannot name travel in the
//! smallest carrier that holds every value (bool in u8, i8/i16/u16 in i32, u32/u64 in i64), and
//! are range-checked on the way in, so a value never changes silently.
use crate::error::{NnError, NnResult};
use tract_onnx::prelude::*;

use nn_tables::DType;
/// wasi-nn's `tensor-type`, with its names and widths (`nn-tables`).
pub use nn_tables::ElementType;

/// A tract type as the element types the tables know (quantized types by their storage; shape
/// computations' symbolic dims as i64, concrete by the time a plan runs).
fn table_dtype(dt: DatumType) -> Option<DType> {
    Some(match dt.unquantized() {
        DatumType::F16 => DType::F16,
        DatumType::F32 => DType::F32,
        DatumType::F64 => DType::F64,
        DatumType::Bool => DType::Bool,
        DatumType::U8 => DType::U8,
        DatumType::U16 => DType::U16,
        DatumType::U32 => DType::U32,
        DatumType::U64 => DType::U64,
        DatumType::I8 => DType::I8,
        DatumType::I16 => DType::I16,
        DatumType::I32 => DType::I32,
        DatumType::I64 | DatumType::TDim => DType::I64,
        _ => return None,
    })
}

/// The carrier for a model's element type, or None when wasi-nn cannot carry it at all.
pub fn carrier_for(dt: DatumType) -> Option<ElementType> {
    table_dtype(dt).map(DType::carrier)
}

/// The tract type for data that arrives in a carrier when the model does not say.
fn natural_datum(ty: ElementType) -> Option<DatumType> {
    Some(match ty {
        ElementType::F16 => DatumType::F16,
        ElementType::F32 => DatumType::F32,
        ElementType::F64 => DatumType::F64,
        ElementType::U8 => DatumType::U8,
        ElementType::I32 => DatumType::I32,
        ElementType::I64 => DatumType::I64,
        ElementType::Bf16 => return None,
    })
}

/// A model's element type as people write it (`f32`, `bool`, `qu8`...).
pub fn datum_name(dt: DatumType) -> String {
    match dt {
        DatumType::Bool => "bool".into(),
        DatumType::QU8(_) => "qu8".into(),
        DatumType::QI8(_) => "qi8".into(),
        DatumType::QI32(_) => "qi32".into(),
        DatumType::TDim => "tdim".into(),
        DatumType::Blob => "blob".into(),
        DatumType::String => "string".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// A tensor in wasi-nn's representation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorData {
    pub dims: Vec<u32>,
    pub ty: ElementType,
    pub data: Vec<u8>,
}

impl TensorData {
    pub fn new(dims: Vec<u32>, ty: ElementType, data: Vec<u8>) -> Self {
        TensorData { dims, ty, data }
    }

    /// `f32[1,1,8,8]`, the form every shape message uses.
    pub fn signature(&self) -> String {
        nn_tables::signature(self.ty.as_str(), &self.dims)
    }

    /// Element count, or an error when the dims overflow or pass the limit.
    pub fn element_count(&self, limit: usize) -> NnResult<usize> {
        let count = self
            .dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
            .filter(|&n| n <= limit)
            .ok_or_else(|| {
                NnError::too_large(format!(
                    "tensor {} has more than {limit} elements",
                    self.signature()
                ))
            })?;
        Ok(count)
    }

    /// Checks that the byte length matches dims and type.
    pub fn validate(&self, limit: usize) -> NnResult<usize> {
        let count = self.element_count(limit)?;
        let expected = count * self.ty.size();
        if self.data.len() != expected {
            return Err(NnError::invalid(format!(
                "tensor {} needs {expected} bytes of data, got {}",
                self.signature(),
                self.data.len()
            )));
        }
        Ok(count)
    }

    /// Builds the tract tensor the model expects (`want`, or the carrier's own type).
    pub fn to_tract(&self, want: Option<DatumType>) -> NnResult<Tensor> {
        let shape: Vec<usize> = self.dims.iter().map(|&d| d as usize).collect();
        let want = match want {
            Some(dt) => dt,
            None => natural_datum(self.ty).ok_or_else(|| {
                NnError::unsupported("bf16 tensors are not supported by this engine")
            })?,
        };
        if carrier_for(want) != Some(self.ty) {
            return Err(NnError::invalid(format!(
                "expected {}, got {}",
                datum_name(want),
                self.ty.as_str()
            )));
        }
        let plain = want.unquantized();
        // Same-width types are taken byte for byte; narrower ones are decoded and range-checked.
        let tensor = match plain {
            DatumType::Bool => {
                if let Some(b) = self.data.iter().find(|&&b| b > 1) {
                    return Err(NnError::invalid(format!(
                        "bool tensor holds {b}; only 0 and 1 are allowed"
                    )));
                }
                let v: Vec<bool> = self.data.iter().map(|&b| b == 1).collect();
                tensor_from_vec(&shape, v)?
            }
            DatumType::I8 => narrow::<i32, i8>(&shape, &self.data)?,
            DatumType::I16 => narrow::<i32, i16>(&shape, &self.data)?,
            DatumType::U16 => narrow::<i32, u16>(&shape, &self.data)?,
            DatumType::U32 => narrow::<i64, u32>(&shape, &self.data)?,
            DatumType::U64 => narrow::<i64, u64>(&shape, &self.data)?,
            _ => unsafe {
                // Safety: the carrier equals the datum type's own layout (checked above) and
                // from_raw_dt checks the length against the shape.
                Tensor::from_raw_dt(plain, &shape, &self.data)
                    .map_err(|e| NnError::invalid(e.to_string()))?
            },
        };
        if plain != want {
            // Quantized types carry their zero point and scale in the type, not in the bytes.
            let mut t = tensor;
            unsafe { t.set_datum_type(want) };
            return Ok(t);
        }
        Ok(tensor)
    }

    /// Converts a tract output into its wasi-nn carrier.
    pub fn from_tract(t: &Tensor) -> NnResult<TensorData> {
        if t.datum_type() == DatumType::TDim {
            let ints = t
                .cast_to::<i64>()
                .map_err(|e| NnError::runtime(format!("symbolic output: {e}")))?;
            return Self::from_tract(&ints);
        }
        let dt = t.datum_type();
        let ty = carrier_for(dt).ok_or_else(|| {
            NnError::unsupported(format!(
                "output of type {} cannot be carried by wasi-nn",
                datum_name(dt)
            ))
        })?;
        let dims = t
            .shape()
            .iter()
            .map(|&d| u32::try_from(d))
            .collect::<Result<Vec<u32>, _>>()
            .map_err(|_| NnError::too_large("output dimension does not fit in u32"))?;
        let plain = t.try_as_plain_ram().map_err(internal)?;
        let data = match dt.unquantized() {
            DatumType::Bool => plain
                .as_slice::<bool>()
                .map_err(internal)?
                .iter()
                .map(|&b| b as u8)
                .collect(),
            DatumType::I8 => widen::<i8, i32>(&plain)?,
            DatumType::I16 => widen::<i16, i32>(&plain)?,
            DatumType::U16 => widen::<u16, i32>(&plain)?,
            DatumType::U32 => widen::<u32, i64>(&plain)?,
            DatumType::U64 => {
                let v = plain.as_slice::<u64>().map_err(internal)?;
                let mut out = Vec::with_capacity(v.len() * 8);
                for &x in v {
                    let x = i64::try_from(x).map_err(|_| {
                        NnError::runtime(format!("u64 output value {x} does not fit in i64"))
                    })?;
                    out.extend_from_slice(&x.to_le_bytes());
                }
                out
            }
            _ => plain.as_bytes().to_vec(),
        };
        Ok(TensorData { dims, ty, data })
    }
}

fn internal(e: TractError) -> NnError {
    NnError::runtime(e.to_string())
}

fn tensor_from_vec<T: Datum>(shape: &[usize], v: Vec<T>) -> NnResult<Tensor> {
    tract_ndarray::ArrayD::from_shape_vec(shape, v)
        .map(Tensor::from)
        .map_err(|e| NnError::invalid(e.to_string()))
}

/// Little-endian carriers of 4 or 8 bytes.
trait Carrier: Copy + std::fmt::Display {
    const SIZE: usize;
    fn read(b: &[u8]) -> Self;
    fn write(self, out: &mut Vec<u8>);
}

impl Carrier for i32 {
    const SIZE: usize = 4;
    fn read(b: &[u8]) -> Self {
        i32::from_le_bytes(b.try_into().expect("chunk of 4"))
    }
    fn write(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes())
    }
}

impl Carrier for i64 {
    const SIZE: usize = 8;
    fn read(b: &[u8]) -> Self {
        i64::from_le_bytes(b.try_into().expect("chunk of 8"))
    }
    fn write(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes())
    }
}

fn narrow<C, T>(shape: &[usize], bytes: &[u8]) -> NnResult<Tensor>
where
    C: Carrier,
    T: Datum + TryFrom<C>,
{
    let mut v = Vec::with_capacity(bytes.len() / C::SIZE);
    for chunk in bytes.chunks_exact(C::SIZE) {
        let x = C::read(chunk);
        let y = T::try_from(x).map_err(|_| {
            NnError::invalid(format!(
                "value {x} does not fit in {}",
                datum_name(T::datum_type())
            ))
        })?;
        v.push(y);
    }
    tensor_from_vec(shape, v)
}

fn widen<T, C>(t: &PlainView<'_>) -> NnResult<Vec<u8>>
where
    T: Datum + Copy,
    C: Carrier + From<T>,
{
    let v = t.as_slice::<T>().map_err(internal)?;
    let mut out = Vec::with_capacity(v.len() * C::SIZE);
    for &x in v {
        C::from(x).write(&mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_round_trips_bit_for_bit() {
        let vals = [1.5f32, -0.0, f32::NAN, f32::INFINITY];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let td = TensorData::new(vec![2, 2], ElementType::F32, bytes.clone());
        let t = td.to_tract(Some(DatumType::F32)).unwrap();
        assert_eq!(TensorData::from_tract(&t).unwrap().data, bytes);
    }

    #[test]
    fn narrow_types_are_range_checked() {
        let td = TensorData::new(vec![1], ElementType::I32, 300i32.to_le_bytes().to_vec());
        let e = td.to_tract(Some(DatumType::I8)).unwrap_err();
        assert_eq!(e.message, "value 300 does not fit in i8");
        let ok = TensorData::new(vec![1], ElementType::I32, (-5i32).to_le_bytes().to_vec());
        let t = ok.to_tract(Some(DatumType::I8)).unwrap();
        assert_eq!(
            t.try_as_plain_ram().unwrap().as_slice::<i8>().unwrap(),
            &[-5]
        );
        assert_eq!(TensorData::from_tract(&t).unwrap(), ok);
    }

    #[test]
    fn bool_rides_in_u8() {
        let td = TensorData::new(vec![3], ElementType::U8, vec![0, 1, 1]);
        let t = td.to_tract(Some(DatumType::Bool)).unwrap();
        assert_eq!(
            t.try_as_plain_ram().unwrap().as_slice::<bool>().unwrap(),
            &[false, true, true]
        );
        let bad = TensorData::new(vec![1], ElementType::U8, vec![2]);
        assert!(bad
            .to_tract(Some(DatumType::Bool))
            .unwrap_err()
            .message
            .contains("only 0 and 1"));
    }

    #[test]
    fn overflowing_dims_are_too_large() {
        let td = TensorData::new(vec![u32::MAX, u32::MAX, u32::MAX], ElementType::F32, vec![]);
        assert_eq!(
            td.validate(1 << 20).unwrap_err().code,
            crate::ErrorCode::TooLarge
        );
    }
}
