//! `QLinearMatMul` with float16 scales (opset 21 allows them; tract-onnx takes f32 only). The
//! integer product is exact in i32, then requantized as onnx's reference does. Models with
//! f32 scales still go to tract's quantized kernels.
use tract_hir::internal::*;
use tract_ndarray::{ArrayD, Axis, IxDyn};
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("QLinearMatMul", qlinear_matmul);
}

fn qlinear_matmul(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let f16_scale = node
        .input
        .get(1)
        .is_some_and(|s| super::declared_type(ctx, s) == Some(10));
    if !f16_scale {
        return super::tract_builder(ctx, node);
    }
    ensure!(
        node.input.len() == 8 && node.input.iter().all(|s| !s.is_empty()),
        "QLinearMatMul: all 8 inputs are required"
    );
    Ok((expand(QLinearMatMul), vec![]))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct QLinearMatMul;

impl Expansion for QLinearMatMul {
    fn name(&self) -> StaticName {
        "QLinearMatMul".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 8)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[7].datum_type)?;
        s.equals(&outputs[0].rank, &inputs[0].rank)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, QLinearMatMul, inputs)
    }
}

impl Op for QLinearMatMul {
    fn name(&self) -> StaticName {
        "QLinearMatMul".into()
    }

    op_as_typed_op!();
}

fn scalar(t: &TValue, what: &str) -> TractResult<f32> {
    ensure!(
        t.len() == 1,
        "QLinearMatMul: only a single {what} is supported here, got {} values",
        t.len()
    );
    t.cast_to_scalar::<f32>()
}

/// (a - zp) as i32, with a leading batch axis added to a matrix.
fn centered(t: &TValue, zp: &TValue) -> TractResult<ArrayD<i32>> {
    let zp = scalar(zp, "zero point")? as i32;
    let a = t
        .cast_to::<i32>()?
        .to_plain_array_view::<i32>()?
        .mapv(|x| x - zp);
    Ok(if a.ndim() == 2 {
        a.insert_axis(Axis(0))
    } else {
        a
    })
}

impl EvalOp for QLinearMatMul {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (a, b) = (
            centered(&inputs[0], &inputs[2])?,
            centered(&inputs[3], &inputs[5])?,
        );
        ensure!(
            a.ndim() == 3 && b.ndim() == 3,
            "QLinearMatMul: only 2-D and 3-D operands are supported here"
        );
        let (ba, m, k) = (a.shape()[0], a.shape()[1], a.shape()[2]);
        let (bb, k2, n) = (b.shape()[0], b.shape()[1], b.shape()[2]);
        ensure!(
            k == k2 && (ba == bb || ba == 1 || bb == 1),
            "QLinearMatMul: {:?} and {:?} do not multiply",
            a.shape(),
            b.shape()
        );
        let batch = ba.max(bb);
        let mult = scalar(&inputs[1], "scale")? * scalar(&inputs[4], "scale")?
            / scalar(&inputs[6], "scale")?;
        let out_dt = inputs[7].datum_type();
        let y_zp = scalar(&inputs[7], "zero point")?;
        let (lo, hi) = match out_dt {
            DatumType::U8 => (0.0, 255.0),
            DatumType::I8 => (-128.0, 127.0),
            dt => bail!("QLinearMatMul: output type {dt:?}"),
        };
        let mut y = ArrayD::<f32>::zeros(IxDyn(&[batch, m, n]));
        for bi in 0..batch {
            let (ai, bj) = (if ba == 1 { 0 } else { bi }, if bb == 1 { 0 } else { bi });
            for i in 0..m {
                for j in 0..n {
                    let c: i32 = (0..k).map(|l| a[[ai, i, l]] * b[[bj, l, j]]).sum();
                    y[[bi, i, j]] = (c as f32 * mult + y_zp).round_ties_even().clamp(lo, hi);
                }
            }
        }
        let y = if inputs[0].rank() == 2 && inputs[3].rank() == 2 {
            y.index_axis_move(Axis(0), 0)
        } else {
            y
        };
        Ok(tvec!(Tensor::from(y)
            .cast_to_dt(out_dt)?
            .into_owned()
            .into_tvalue()))
    }
}

impl TypedOp for QLinearMatMul {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let (a, b) = (&inputs[0].shape, &inputs[3].shape);
        ensure!(
            a.rank() >= 2 && b.rank() >= 2,
            "QLinearMatMul: operands must be matrices"
        );
        let mut shape: TVec<TDim> = if a.rank() >= b.rank() {
            a.iter().cloned().collect()
        } else {
            b.iter().cloned().collect()
        };
        let r = shape.len();
        if a.rank() == 3 && b.rank() == 3 && a[0] == 1.to_dim() {
            shape[0] = b[0].clone();
        }
        shape[r - 2] = a[a.rank() - 2].clone();
        shape[r - 1] = b[b.rank() - 1].clone();
        Ok(tvec!(inputs[7].datum_type.fact(shape)))
    }

    as_op!();
}
