//! `DEPTH_TO_SPACE`, which tract-tflite lacks, as `RESHAPE`, `TRANSPOSE`, `RESHAPE` in TFLite's
//! DCR order: [n,h,w,(bh,bw,c)] -> [n,h,bh,w,bw,c] -> [n,h*b,w*b,c].
use super::super::rewriter::Rewriter;
use super::super::{invalid, MAX_DIM};
use super::Matched;
use crate::error::NnResult;
use tract_tflite::tflite::BuiltinOperator;

pub(super) fn rewrite<'a>(rw: &mut Rewriter<'a>, m: &Matched<'a>) -> NnResult<bool> {
    let b =
        m.op.builtin_options_as_depth_to_space_options()
            .map(|o| o.block_size())
            .ok_or_else(|| invalid("DEPTH_TO_SPACE without its options"))?;
    let (x, y) = (m.input(0)?, m.output());
    let s = rw.shape(x);
    let [n, h, w, c] = s[..] else {
        return Err(invalid("DEPTH_TO_SPACE input is not 4-D"));
    };
    let sane = [n, h, w, c, b].iter().all(|&v| (1..=MAX_DIM).contains(&v));
    if !sane || c % (b * b) != 0 {
        return Err(invalid(format!("DEPTH_TO_SPACE block size {b}")));
    }
    let c = c / (b * b);
    let ty = rw.ty(y);
    let name = rw.name(y);
    let split = vec![n, h, w, b, b, c];
    let r = rw.reshape(x, &split, ty, &format!("{name}.split"));
    let t = rw.add_tensor(format!("{name}.interleaved"), ty, vec![n, h, b, w, b, c]);
    let perm = rw.i32_const(format!("{name}.perm"), &[0, 1, 3, 2, 4, 5]);
    rw.push(BuiltinOperator::TRANSPOSE, vec![r, perm], vec![t]);
    let shape = rw.i32_const(format!("{name}.shape"), &[n, h * b, w * b, c]);
    rw.push(BuiltinOperator::RESHAPE, vec![t, shape], vec![y]);
    Ok(true)
}
