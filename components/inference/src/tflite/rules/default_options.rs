//! `ADD`, `SUB` and `MUL` written without their options table (some converters omit it when
//! it holds only defaults): tract-tflite unwraps it. The table holds only a fused activation,
//! NONE by default, so the same operator with default options computes the same.
use super::super::rewriter::Rewriter;
use super::Matched;
use crate::error::NnResult;
use tract_tflite::tflite::{BuiltinOperator, BuiltinOptions};

pub(super) fn rewrite<'a>(rw: &mut Rewriter<'a>, m: &Matched<'a>) -> NnResult<bool> {
    if m.op.builtin_options_type() != BuiltinOptions::NONE {
        return Ok(false);
    }
    rw.push(BuiltinOperator(m.code), m.inputs.clone(), m.outputs.clone());
    Ok(true)
}
