//! `CumProd` (opset 26), the product counterpart of `CumSum`, which tract-onnx lacks.
use tract_hir::internal::*;
use tract_ndarray::{ArrayD, Axis};
use tract_onnx::model::OnnxOpRegister;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("CumProd", |_, node| {
        let op = CumProd {
            axis: 0,
            reverse: node.get_attr_opt::<i64>("reverse")?.unwrap_or(0) != 0,
            exclusive: node.get_attr_opt::<i64>("exclusive")?.unwrap_or(0) != 0,
        };
        Ok((expand(op), vec![]))
    });
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct CumProd {
    /// Resolved from the constant `axis` input when wired.
    axis: usize,
    reverse: bool,
    exclusive: bool,
}

impl Expansion for CumProd {
    fn name(&self) -> StaticName {
        "CumProd".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let rank = model.outlet_fact(inputs[0])?.rank() as i64;
        let axis = model
            .outlet_fact(inputs[1])?
            .konst
            .clone()
            .context("CumProd: the axis must be known before running")?
            .cast_to_scalar::<i64>()?;
        let axis = if axis < 0 { axis + rank } else { axis };
        ensure!(
            (0..rank.max(1)).contains(&axis),
            "CumProd: axis {axis} out of range for rank {rank}"
        );
        let op = CumProd {
            axis: axis as usize,
            ..self.clone()
        };
        model.wire_node(prefix, op, &[inputs[0]])
    }
}

impl Op for CumProd {
    fn name(&self) -> StaticName {
        "CumProd".into()
    }

    op_as_typed_op!();
}

impl CumProd {
    fn run<T: Datum + Copy + tract_num_traits::One + std::ops::Mul<Output = T>>(
        &self,
        x: &Tensor,
    ) -> TractResult<Tensor> {
        let mut a: ArrayD<T> = x.to_plain_array_view::<T>()?.to_owned();
        if a.ndim() == 0 {
            return Ok(a.into());
        }
        for mut lane in a.lanes_mut(Axis(self.axis)) {
            let n = lane.len();
            let mut acc = T::one();
            for i in 0..n {
                let ix = if self.reverse { n - 1 - i } else { i };
                let v = lane[ix];
                if self.exclusive {
                    lane[ix] = acc;
                    acc = acc * v;
                } else {
                    acc = acc * v;
                    lane[ix] = acc;
                }
            }
        }
        Ok(a.into())
    }
}

impl EvalOp for CumProd {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let y = match x.datum_type() {
            DatumType::F32 => self.run::<f32>(x)?,
            DatumType::F64 => self.run::<f64>(x)?,
            DatumType::F16 => self.run::<f16>(x)?,
            DatumType::I32 => self.run::<i32>(x)?,
            DatumType::I64 => self.run::<i64>(x)?,
            DatumType::U32 => self.run::<u32>(x)?,
            DatumType::U64 => self.run::<u64>(x)?,
            dt => bail!("CumProd of {dt:?} tensors"),
        };
        Ok(tvec!(y.into_tvalue()))
    }
}

impl TypedOp for CumProd {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].without_value()))
    }

    as_op!();
}
