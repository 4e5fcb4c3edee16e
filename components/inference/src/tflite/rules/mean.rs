//! A float `MEAN`: tract-tflite scales the sum with an operator that rounds to integers, so a
//! float `MEAN` becomes `SUM` then `MUL` by 1/n (n: the product of the reduced dims). Quantized
//! `MEAN`s are left to tract. Negative axes are counted from the end, as TFLite does.
use super::super::invalid;
use super::super::rewriter::{f32_bytes, Const, Rewriter};
use super::super::writer::Field;
use super::Matched;
use crate::error::{NnError, NnResult};
use tract_tflite::tflite::{BuiltinOperator, BuiltinOptions, TensorType};

pub(super) fn rewrite<'a>(rw: &mut Rewriter<'a>, m: &Matched<'a>) -> NnResult<bool> {
    let (x, y) = (m.input(0)?, m.output());
    if rw.ty(x) != TensorType::FLOAT32 {
        return Ok(false);
    }
    let axes = rw.konst(m.input(1)?)?;
    let axes = axes
        .filter(|a| a.ty == TensorType::INT32)
        .ok_or_else(|| NnError::unsupported("MEAN over axes that are not constant"))?;
    let shape = rw.shape(x);
    let mut count = 1f64;
    let (mut normalized, mut original) = (vec![], vec![]);
    for a in axes.data.chunks_exact(4) {
        let a = i32::from_le_bytes([a[0], a[1], a[2], a[3]]);
        let rank = shape.len() as i32;
        let axis = if a < 0 { a + rank } else { a };
        let dim = shape
            .get(usize::try_from(axis).unwrap_or(usize::MAX))
            .ok_or_else(|| invalid(format!("MEAN axis {a} of a rank {rank} input")))?;
        count *= f64::from(*dim);
        normalized.push(axis);
        original.push(a);
    }
    let keep_dims =
        m.op.builtin_options_as_reducer_options()
            .is_some_and(|o| o.keep_dims());
    let name = rw.name(y);
    // tract-tflite's SUM takes axes in 0..rank; TFLite counts negative ones from the end.
    let axes = if normalized != original {
        rw.i32_const(format!("{name}.axes"), &normalized)
    } else {
        m.input(1)?
    };
    let sum = rw.add_tensor(format!("{name}.sum"), TensorType::FLOAT32, rw.shape(y));
    let reducer = vec![(0, Field::Byte(keep_dims as u8))];
    rw.push_with(
        BuiltinOperator::SUM,
        vec![x, axes],
        vec![sum],
        Some((BuiltinOptions::ReducerOptions, reducer)),
    );
    let recip = [(1.0 / count.max(1.0)) as f32];
    let recip = Const {
        ty: TensorType::FLOAT32,
        shape: vec![1],
        data: f32_bytes(&recip),
    };
    let recip = rw.add_const(format!("{name}.recip"), recip);
    rw.push(BuiltinOperator::MUL, vec![sum, recip], vec![y]);
    Ok(true)
}
