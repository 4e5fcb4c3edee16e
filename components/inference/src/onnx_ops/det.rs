//! `Det`: determinants of square matrices (the last two axes), by LU decomposition with
//! partial pivoting in f64. tract-onnx lacks it.
use tract_hir::internal::*;
use tract_onnx::model::OnnxOpRegister;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("Det", |_, _| Ok((expand(Det), vec![])));
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Det;

impl Expansion for Det {
    fn name(&self) -> StaticName {
        "Det".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(inputs[0].rank.bex() - 2, outputs[0].rank.bex())?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, Det, inputs)
    }
}

impl Op for Det {
    fn name(&self) -> StaticName {
        "Det".into()
    }

    op_as_typed_op!();
}

fn det(mut m: Vec<f64>, n: usize) -> f64 {
    let mut d = 1.0;
    for c in 0..n {
        let pivot = (c..n)
            .max_by(|&a, &b| m[a * n + c].abs().total_cmp(&m[b * n + c].abs()))
            .unwrap_or(c);
        if m[pivot * n + c] == 0.0 {
            return 0.0;
        }
        if pivot != c {
            for j in 0..n {
                m.swap(pivot * n + j, c * n + j);
            }
            d = -d;
        }
        let p = m[c * n + c];
        d *= p;
        for r in c + 1..n {
            let f = m[r * n + c] / p;
            for j in c..n {
                m[r * n + j] -= f * m[c * n + j];
            }
        }
    }
    d
}

impl EvalOp for Det {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let shape = inputs[0].shape().to_vec();
        ensure!(
            shape.len() >= 2 && shape[shape.len() - 1] == shape[shape.len() - 2],
            "Det: needs square matrices, got {shape:?}"
        );
        let n = shape[shape.len() - 1];
        let x = inputs[0].cast_to::<f64>()?;
        let x = x.try_as_plain_ram()?;
        let values = x.as_slice::<f64>()?;
        let dets: Vec<f64> = if n == 0 {
            vec![1.0; values.len().max(1)]
        } else {
            values.chunks(n * n).map(|m| det(m.to_vec(), n)).collect()
        };
        let out = tract_ndarray::ArrayD::from_shape_vec(&shape[..shape.len() - 2], dets)?;
        Ok(tvec!(Tensor::from(out)
            .cast_to_dt(inputs[0].datum_type())?
            .into_owned()
            .into_tvalue()))
    }
}

impl TypedOp for Det {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let s = &inputs[0].shape;
        ensure!(s.rank() >= 2, "Det: needs a rank of 2 or more");
        Ok(tvec!(inputs[0].datum_type.fact(
            s.iter().take(s.rank() - 2).cloned().collect::<TVec<_>>()
        )))
    }

    as_op!();
}
