//! `DEQUANTIZE` of fp16 weights (how the TFLite converter stores float16-quantized models):
//! tract-tflite has no `DEQUANTIZE`, and the value is known at load, so the output becomes an
//! f32 constant (f16 to f32 is exact). Other `DEQUANTIZE`s are left to tract.
use super::super::rewriter::{f32_bytes, Const, Rewriter};
use super::Matched;
use crate::error::NnResult;
use tract_tflite::tflite::TensorType;

pub(super) fn rewrite<'a>(rw: &mut Rewriter<'a>, m: &Matched<'a>) -> NnResult<bool> {
    let Some(c) = rw.konst(m.input(0)?)? else {
        return Ok(false);
    };
    if c.ty != TensorType::FLOAT16 {
        return Ok(false);
    }
    let values = c.f32s()?;
    rw.set_const(
        m.output(),
        Const {
            ty: TensorType::FLOAT32,
            shape: c.shape,
            data: f32_bytes(&values),
        },
    );
    Ok(true)
}
