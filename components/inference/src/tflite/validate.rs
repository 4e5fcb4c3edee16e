//! The structure the rewrite and tract-tflite follow without checking: every index in range
//! (tensors, buffers, operator codes), names and shapes present, constants of a readable type,
//! and the window options tract divides by. A failure is an `invalid-argument` error naming the
//! part; nothing here panics on any bytes `root_as_model` accepted.
use super::{elem_size, invalid, MAX_DIM};
use crate::error::NnResult;
use tract_tflite::tflite::{self, Model, SubGraph};

/// Indices that must be in range: the subgraph's, its operators' and its tensors' buffers.
pub(super) fn validate<'a>(model: &Model<'a>) -> NnResult<SubGraph<'a>> {
    let subgraphs = model
        .subgraphs()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("it has no subgraph"))?;
    let sg = subgraphs.get(0);
    let n_tensors = sg.tensors().map_or(0, |t| t.len());
    let n_buffers = model.buffers().map_or(0, |b| b.len());
    let n_codes = model.operator_codes().map_or(0, |c| c.len());
    let tensor_ok = |ix: i32, what: &str| -> NnResult<()> {
        if ix < 0 || ix as usize >= n_tensors {
            return Err(invalid(format!(
                "{what} refers to tensor {ix}, but the subgraph has {n_tensors} tensors"
            )));
        }
        Ok(())
    };
    for ix in sg.inputs().iter().flatten() {
        tensor_ok(ix, "a subgraph input")?;
    }
    for ix in sg.outputs().iter().flatten() {
        tensor_ok(ix, "a subgraph output")?;
    }
    if let Some(tensors) = sg.tensors() {
        for (i, t) in tensors.iter().enumerate() {
            if t.buffer() as usize >= n_buffers.max(1) && t.buffer() != 0 {
                return Err(invalid(format!(
                    "tensor {i} refers to buffer {}, but the model has {n_buffers} buffers",
                    t.buffer()
                )));
            }
            let has_data = model
                .buffers()
                .filter(|b| t.buffer() != 0 && (t.buffer() as usize) < b.len())
                .and_then(|b| b.get(t.buffer() as usize).data())
                .is_some_and(|d| !d.is_empty());
            if has_data && elem_size(t.type_()).is_none() {
                return Err(invalid(format!(
                    "tensor {i} holds constant data of type {:?}, which this engine cannot read",
                    t.type_()
                )));
            }
            if t.shape().is_none() {
                return Err(invalid(format!("tensor {i} has no shape")));
            }
            if t.name().is_none() {
                return Err(invalid(format!("tensor {i} has no name")));
            }
        }
    }
    for (k, op) in sg.operators().iter().flatten().enumerate() {
        if op.opcode_index() as usize >= n_codes {
            return Err(invalid(format!(
                "operator {k} has opcode index {}, but the model has {n_codes} operator codes",
                op.opcode_index()
            )));
        }
        let what = format!("operator {k}");
        // -1 marks an omitted optional input.
        for ix in op.inputs().iter().flatten().filter(|&ix| ix != -1) {
            tensor_ok(ix, &what)?;
        }
        let outputs = op.outputs().filter(|o| !o.is_empty());
        let outputs = outputs.ok_or_else(|| invalid(format!("{what} has no output")))?;
        for ix in outputs {
            tensor_ok(ix, &what)?;
        }
        if op.inputs().is_none() {
            return Err(invalid(format!("{what} has no input list")));
        }
        check_window(&op).map_err(|e| invalid(format!("{what}: {e}")))?;
    }
    Ok(sg)
}

/// Window options tract-tflite divides by or matches exhaustively (it panics otherwise).
fn check_window(op: &tflite::Operator) -> Result<(), String> {
    let padding_ok =
        |p: tflite::Padding| matches!(p, tflite::Padding::SAME | tflite::Padding::VALID);
    let (padding, values) = if let Some(o) = op.builtin_options_as_conv_2_doptions() {
        let v = vec![
            o.stride_w(),
            o.stride_h(),
            o.dilation_w_factor(),
            o.dilation_h_factor(),
        ];
        (o.padding(), v)
    } else if let Some(o) = op.builtin_options_as_depthwise_conv_2_doptions() {
        let v = vec![
            o.stride_w(),
            o.stride_h(),
            o.dilation_w_factor(),
            o.dilation_h_factor(),
            o.depth_multiplier(),
        ];
        (o.padding(), v)
    } else if let Some(o) = op.builtin_options_as_pool_2_doptions() {
        let v = vec![
            o.stride_w(),
            o.stride_h(),
            o.filter_width(),
            o.filter_height(),
        ];
        (o.padding(), v)
    } else {
        return Ok(());
    };
    if !padding_ok(padding) {
        return Err(format!("unknown padding {}", padding.0));
    }
    if let Some(v) = values.iter().find(|&&v| !(1..=MAX_DIM).contains(&v)) {
        return Err(format!("stride, dilation or window size {v}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{build, f32_const, m, o, t, M, T};
    use super::super::writer::Field;
    use crate::error::ErrorCode;
    use tract_tflite::tflite::{BuiltinOperator as Op, BuiltinOptions, Padding, TensorType};

    /// x -> RELU -> y: valid, so each refusal below is the one thing it changes.
    fn relu() -> M {
        m(
            vec![t("x", &[1, 4]), t("y", &[1, 4])],
            vec![o(Op::RELU, &[0], &[1])],
            &[0],
            &[1],
        )
    }

    /// A 1x1 convolution with strides 1 (the schema's default is 0) and these options.
    fn conv(mut fields: Vec<(u16, Field)>) -> M {
        for slot in [1, 2] {
            if fields.iter().all(|f| f.0 != slot) {
                fields.push((slot, Field::Int(1)));
            }
        }
        m(
            vec![
                t("x", &[1, 4, 4, 1]),
                f32_const("k", &[1, 1, 1, 1], &[1.0]),
                f32_const("b", &[1], &[0.0]),
                t("y", &[1, 4, 4, 1]),
            ],
            vec![o(Op::CONV_2D, &[0, 1, 2], &[3]).with(BuiltinOptions::Conv2DOptions, fields)],
            &[0],
            &[3],
        )
    }

    fn refused(model: M, words: &str) {
        let err = super::super::rewrite(&build(&model)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument, "{}", err.message);
        assert!(
            err.message.contains(words),
            "{:?} not in {:?}",
            words,
            err.message
        );
    }

    #[test]
    fn the_baselines_are_valid() {
        assert!(super::super::rewrite(&build(&relu())).is_ok());
        let same = vec![(0, Field::Byte(Padding::SAME.0 as u8))];
        assert!(super::super::rewrite(&build(&conv(same))).is_ok());
    }

    #[test]
    fn refuses_indices_out_of_range() {
        let mut x = relu();
        x.inputs = vec![2];
        refused(
            x,
            "a subgraph input refers to tensor 2, but the subgraph has 2 tensors",
        );
        let mut x = relu();
        x.outputs = vec![-3];
        refused(x, "a subgraph output refers to tensor -3");
        let mut x = relu();
        x.ops[0].inputs = vec![7];
        refused(x, "operator 0 refers to tensor 7");
        let mut x = relu();
        x.ops[0].opcode_index = Some(4);
        refused(
            x,
            "operator 0 has opcode index 4, but the model has 1 operator codes",
        );
        let mut x = relu();
        x.tensors[0].buffer = Some(9);
        refused(
            x,
            "tensor 0 refers to buffer 9, but the model has 1 buffers",
        );
    }

    #[test]
    fn refuses_missing_parts() {
        let mut x = relu();
        x.subgraph = false;
        refused(x, "it has no subgraph");
        let mut x = relu();
        x.ops[0].outputs = vec![];
        refused(x, "operator 0 has no output");
        let mut x = relu();
        x.tensors[1].name = None;
        refused(x, "tensor 1 has no name");
        let mut x = relu();
        x.tensors[1].shape = None;
        refused(x, "tensor 1 has no shape");
    }

    #[test]
    fn refuses_constants_it_cannot_read() {
        let mut x = relu();
        x.tensors.push(T {
            ty: TensorType::STRING,
            data: Some(vec![0; 8]),
            ..t("s", &[1])
        });
        refused(x, "tensor 2 holds constant data of type STRING");
    }

    #[test]
    fn refuses_windows_tract_would_divide_by() {
        let padding = |p: Padding| (0, Field::Byte(p.0 as u8));
        refused(
            conv(vec![padding(Padding(7))]),
            "operator 0: unknown padding 7",
        );
        let zero_stride = vec![padding(Padding::SAME), (1, Field::Int(0))];
        refused(conv(zero_stride), "stride, dilation or window size 0");
        let huge_dilation = vec![padding(Padding::VALID), (4, Field::Int(1 << 20))];
        refused(
            conv(huge_dilation),
            "stride, dilation or window size 1048576",
        );
    }
}
