//! MediaPipe's custom `Convolution2DTransposeBias` (a transposed convolution with a bias;
//! options: padding, stride w, stride h, as three int32) as builtins tract-tflite has: zeros
//! inserted between input pixels (`RESHAPE`, `PAD`, `RESHAPE`), border padding (`PAD`), then a
//! stride-1 `CONV_2D` with the kernel flipped and the bias.
use super::super::rewriter::{f32_bytes, Const, Rewriter};
use super::super::writer::Field;
use super::super::{invalid, MAX_DIM};
use super::Matched;
use crate::error::{NnError, NnResult};
use tract_tflite::tflite::{self, BuiltinOperator, BuiltinOptions, TensorType};

/// The operator's `custom_code`.
pub(super) const NAME: &str = "Convolution2DTransposeBias";

pub(super) fn rewrite<'a>(rw: &mut Rewriter<'a>, m: &Matched<'a>) -> NnResult<bool> {
    let opts: Vec<i32> =
        m.op.custom_options()
            .map(|o| {
                o.bytes()
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            })
            .unwrap_or_default();
    let [padding, stride_w, stride_h] = opts[..] else {
        return Err(invalid("options are not (padding, stride_w, stride_h)"));
    };
    let (&[x, w, bias], &y) = (&m.inputs[..], &m.output()) else {
        return Err(invalid("expects input, weights and bias"));
    };
    let [n, h, wd, c] = rw.shape(x)[..] else {
        return Err(invalid("input is not 4-D"));
    };
    let [o, kh, kw, ci] = rw.shape(w)[..] else {
        return Err(invalid("weights are not 4-D"));
    };
    let [on, oh, ow, oc] = rw.shape(y)[..] else {
        return Err(invalid("output is not 4-D"));
    };
    let positive = [stride_w, stride_h, kh, kw, h, wd, oh, ow, n, c]
        .iter()
        .all(|&v| (1..=MAX_DIM).contains(&v));
    if !positive || ci != c || oc != o || on != n || bias < 0 {
        return Err(invalid("inconsistent shapes"));
    }
    let weights = rw
        .konst(w)?
        .ok_or_else(|| NnError::unsupported("weights that are not constant"))?;
    // Per axis: zeros before and after the zero-inserted input (which ends with stride-1
    // zeros), so a VALID stride-1 convolution gives exactly the output's rows.
    let pads = |size: i32, stride: i32, k: i32, out: i32| -> NnResult<(i32, i32)> {
        let before = match padding {
            // SAME: tflite centres the output, extra padding going after.
            1 => ((size - 1) * stride + k - out).max(0) / 2,
            2 => 0,
            _ => return Err(invalid(format!("padding {padding}"))),
        };
        let left = k - 1 - before;
        let right = out + k - 1 - left - size * stride;
        if left < 0 || right < 0 {
            return Err(NnError::unsupported("this output size and padding"));
        }
        Ok((left, right))
    };
    let (top, bottom) = pads(h, stride_h, kh, oh)?;
    let (left, right) = pads(wd, stride_w, kw, ow)?;
    let ty = TensorType::FLOAT32;
    let name = rw.name(y);
    let mut wire = x;
    if stride_h > 1 || stride_w > 1 {
        let spread = rw.reshape(wire, &[n, h, 1, wd, 1, c], ty, &format!("{name}.spread"));
        let padded = rw.add_tensor(
            format!("{name}.zeros"),
            ty,
            vec![n, h, stride_h, wd, stride_w, c],
        );
        let p = [0, 0, 0, 0, 0, stride_h - 1, 0, 0, 0, stride_w - 1, 0, 0];
        let p = rw.i32_const_shaped(format!("{name}.zeros.pads"), &p, &[6, 2]);
        rw.push(BuiltinOperator::PAD, vec![spread, p], vec![padded]);
        let up = [n, h * stride_h, wd * stride_w, c];
        wire = rw.reshape(padded, &up, ty, &format!("{name}.upsampled"));
    }
    let bordered = rw.add_tensor(
        format!("{name}.bordered"),
        ty,
        vec![
            n,
            h * stride_h + top + bottom,
            wd * stride_w + left + right,
            c,
        ],
    );
    let p = [0, 0, top, bottom, left, right, 0, 0];
    let p = rw.i32_const_shaped(format!("{name}.border.pads"), &p, &[4, 2]);
    rw.push(BuiltinOperator::PAD, vec![wire, p], vec![bordered]);
    // Flip the kernel in both spatial axes: a transposed convolution is a correlation
    // with the mirrored kernel over the spread input.
    let wv = weights.f32s()?;
    let (o, kh, kw, ci) = (o as usize, kh as usize, kw as usize, ci as usize);
    let mut flipped = vec![0f32; wv.len()];
    for a in 0..o {
        for yy in 0..kh {
            for xx in 0..kw {
                let src = ((a * kh + yy) * kw + xx) * ci;
                let dst = ((a * kh + (kh - 1 - yy)) * kw + (kw - 1 - xx)) * ci;
                flipped[dst..dst + ci].copy_from_slice(&wv[src..src + ci]);
            }
        }
    }
    let k = rw.add_const(
        format!("{name}.flipped_kernel"),
        Const {
            ty,
            shape: weights.shape.clone(),
            data: f32_bytes(&flipped),
        },
    );
    // Conv2DOptions: padding VALID, strides and dilations 1, no activation.
    let options = vec![
        (0, Field::Byte(tflite::Padding::VALID.0 as u8)),
        (1, Field::Int(1)),
        (2, Field::Int(1)),
        (4, Field::Int(1)),
        (5, Field::Int(1)),
    ];
    rw.push_with(
        BuiltinOperator::CONV_2D,
        vec![bordered, k, bias],
        vec![y],
        Some((BuiltinOptions::Conv2DOptions, options)),
    );
    Ok(true)
}
