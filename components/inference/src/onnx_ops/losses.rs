//! `NegativeLogLikelihoodLoss` and `SoftmaxCrossEntropyLoss`: what classifiers exported with
//! their loss (for evaluation, or distillation) carry. tract-onnx has neither. Both are a
//! gather of one class per position, weighted, then reduced; computed here in f64.
use tract_hir::internal::*;
use tract_ndarray::{ArrayD, Axis, IxDyn};
use tract_onnx::model::OnnxOpRegister;
use tract_onnx::pb::NodeProto;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("NegativeLogLikelihoodLoss", |_, node| build(node, false));
    reg.insert("SoftmaxCrossEntropyLoss", |_, node| build(node, true));
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum Reduction {
    None,
    Sum,
    Mean,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Loss {
    /// SoftmaxCrossEntropyLoss: log-softmax over the classes first (and maybe output it).
    softmax: bool,
    reduction: Reduction,
    ignore_index: Option<i64>,
    weights: bool,
    log_prob: bool,
}

fn build(node: &NodeProto, softmax: bool) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let reduction = match node.get_attr_opt::<&str>("reduction")?.unwrap_or("mean") {
        "none" => Reduction::None,
        "sum" => Reduction::Sum,
        "mean" => Reduction::Mean,
        other => bail!("{}: unknown reduction {other:?}", node.op_type),
    };
    let op = Loss {
        softmax,
        reduction,
        ignore_index: node.get_attr_opt("ignore_index")?,
        weights: node.input.get(2).is_some_and(|s| !s.is_empty()),
        log_prob: softmax && node.output.get(1).is_some_and(|s| !s.is_empty()),
    };
    Ok((expand(op), vec![]))
}

impl Expansion for Loss {
    fn name(&self) -> StaticName {
        if self.softmax {
            "SoftmaxCrossEntropyLoss"
        } else {
            "NegativeLogLikelihoodLoss"
        }
        .into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(1 + self.log_prob as usize)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2 + self.weights as usize)?;
        check_output_arity(outputs, 1 + self.log_prob as usize)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        if self.reduction == Reduction::None {
            s.equals(&outputs[0].shape, &inputs[1].shape)?;
        } else {
            s.equals(&outputs[0].rank, 0)?;
        }
        if self.log_prob {
            s.equals(&outputs[1].datum_type, &inputs[0].datum_type)?;
            s.equals(&outputs[1].shape, &inputs[0].shape)?;
        }
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for Loss {
    fn name(&self) -> StaticName {
        Expansion::name(self)
    }

    op_as_typed_op!();
}

impl EvalOp for Loss {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let dt = inputs[0].datum_type();
        let x = inputs[0].cast_to::<f64>()?;
        let mut x = x.to_plain_array_view::<f64>()?.to_owned();
        ensure!(
            x.ndim() >= 2,
            "{}: input must have a class axis",
            Expansion::name(self)
        );
        let classes = x.shape()[1];
        if self.softmax {
            for mut lane in x.lanes_mut(Axis(1)) {
                let max = lane.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                let sum: f64 = lane.iter().map(|v| (v - max).exp()).sum();
                lane.mapv_inplace(|v| v - max - sum.ln());
            }
        }
        let target = inputs[1].cast_to::<i64>()?;
        let target = target.to_plain_array_view::<i64>()?;
        let mut expected = x.shape().to_vec();
        expected.remove(1);
        ensure!(
            target.shape() == expected.as_slice(),
            "target shape {:?} does not match input {:?}",
            target.shape(),
            x.shape()
        );
        let weights = match inputs.get(2) {
            Some(w) => {
                let w = w.cast_to::<f64>()?;
                let w = w
                    .to_plain_array_view::<f64>()?
                    .iter()
                    .copied()
                    .collect::<Vec<_>>();
                ensure!(
                    w.len() == classes,
                    "{} weights for {classes} classes",
                    w.len()
                );
                Some(w)
            }
            None => None,
        };
        // Position-major view of x: [N, rest..., C].
        let moved = x.view().permuted_axes(
            std::iter::once(0)
                .chain(2..x.ndim())
                .chain(std::iter::once(1))
                .collect::<Vec<_>>(),
        );
        let mut loss = ArrayD::<f64>::zeros(IxDyn(&expected));
        let mut weight_sum = 0.0;
        for ((l, &t), lane) in loss
            .iter_mut()
            .zip(target.iter())
            .zip(moved.lanes(Axis(moved.ndim() - 1)))
        {
            if Some(t) == self.ignore_index {
                continue;
            }
            ensure!(
                (0..classes as i64).contains(&t),
                "target class {t} out of range 0..{classes}"
            );
            let w = weights.as_ref().map_or(1.0, |w| w[t as usize]);
            *l = -lane[t as usize] * w;
            weight_sum += w;
        }
        let loss = match self.reduction {
            Reduction::None => loss,
            Reduction::Sum => ArrayD::from_elem(IxDyn(&[]), loss.sum()),
            Reduction::Mean => ArrayD::from_elem(IxDyn(&[]), loss.sum() / weight_sum),
        };
        let mut outputs = tvec!(Tensor::from(loss)
            .cast_to_dt(dt)?
            .into_owned()
            .into_tvalue());
        if self.log_prob {
            outputs.push(Tensor::from(x).cast_to_dt(dt)?.into_owned().into_tvalue());
        }
        Ok(outputs)
    }
}

impl TypedOp for Loss {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let dt = inputs[0].datum_type;
        let mut facts = tvec!(match self.reduction {
            Reduction::None => dt.fact(inputs[1].shape.clone()),
            _ => dt.scalar_fact(),
        });
        if self.log_prob {
            facts.push(dt.fact(inputs[0].shape.clone()));
        }
        Ok(facts)
    }

    as_op!();
}
