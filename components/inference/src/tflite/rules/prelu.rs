//! `PRELU`, which tract-tflite lacks: prelu(x) = relu(x) + alpha * (x - relu(x)), from
//! builtins it has (`alpha` broadcasts as TFLite's does, over the trailing axes).
use super::super::rewriter::Rewriter;
use super::Matched;
use crate::error::NnResult;
use tract_tflite::tflite::{BuiltinOperator, TensorType};

pub(super) fn rewrite<'a>(rw: &mut Rewriter<'a>, m: &Matched<'a>) -> NnResult<bool> {
    let (x, alpha, y) = (m.input(0)?, m.input(1)?, m.output());
    if rw.ty(y) != TensorType::FLOAT32 {
        return Ok(false);
    }
    let shape = rw.shape(y);
    let name = rw.name(y);
    let f32t = TensorType::FLOAT32;
    let r = rw.add_tensor(format!("{name}.relu"), f32t, shape.clone());
    let n = rw.add_tensor(format!("{name}.neg_part"), f32t, shape.clone());
    let s = rw.add_tensor(format!("{name}.scaled"), f32t, shape);
    rw.push(BuiltinOperator::RELU, vec![x], vec![r]);
    rw.push(BuiltinOperator::SUB, vec![x, r], vec![n]);
    rw.push(BuiltinOperator::MUL, vec![n, alpha], vec![s]);
    rw.push(BuiltinOperator::ADD, vec![r, s], vec![y]);
    Ok(true)
}
