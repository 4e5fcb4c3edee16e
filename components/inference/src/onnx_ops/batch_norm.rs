//! `BatchNormalization` with `training_mode = 1`: normalised with the batch's own statistics,
//! and the updated running mean and variance as extra outputs (graphs exported in training
//! mode). tract-onnx has the inference form only, which it still handles.
use tract_hir::internal::*;
use tract_ndarray::{ArrayD, Axis, IxDyn};
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("BatchNormalization", batch_norm);
}

fn batch_norm(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    if node.get_attr_opt::<i64>("training_mode")?.unwrap_or(0) == 0 {
        return super::tract_builder(ctx, node);
    }
    let op = Training {
        epsilon: node
            .get_attr_opt::<f32>("epsilon")?
            .unwrap_or(1e-5)
            .to_bits(),
        momentum: node
            .get_attr_opt::<f32>("momentum")?
            .unwrap_or(0.9)
            .to_bits(),
        outputs: node.output.iter().filter(|s| !s.is_empty()).count(),
    };
    Ok((expand(op), vec![]))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Training {
    epsilon: u32,
    momentum: u32,
    outputs: usize,
}

impl Expansion for Training {
    fn name(&self) -> StaticName {
        "BatchNormalization(training)".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.outputs)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 5)?;
        check_output_arity(outputs, self.outputs)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        for o in &outputs[1..] {
            s.equals(&o.datum_type, &inputs[3].datum_type)?;
            s.equals(&o.shape, &inputs[3].shape)?;
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

impl Op for Training {
    fn name(&self) -> StaticName {
        "BatchNormalization(training)".into()
    }

    op_as_typed_op!();
}

fn vector(t: &TValue) -> TractResult<Vec<f64>> {
    Ok(t.cast_to::<f64>()?
        .try_as_plain_ram()?
        .as_slice::<f64>()?
        .to_vec())
}

impl EvalOp for Training {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = inputs[0]
            .cast_to::<f64>()?
            .to_plain_array_view::<f64>()?
            .to_owned();
        ensure!(
            x.ndim() >= 2,
            "BatchNormalization: input needs a channel axis"
        );
        let c = x.shape()[1];
        let [scale, bias, mean, var] = [1, 2, 3, 4].map(|i| vector(&inputs[i]));
        let (scale, bias, mean, var) = (scale?, bias?, mean?, var?);
        ensure!(
            [&scale, &bias, &mean, &var].iter().all(|v| v.len() == c),
            "BatchNormalization: parameters must have {c} values"
        );
        let (eps, momentum) = (
            f32::from_bits(self.epsilon) as f64,
            f32::from_bits(self.momentum) as f64,
        );
        let mut y = x.clone();
        let (mut run_mean, mut run_var) = (vec![0.0; c], vec![0.0; c]);
        for ch in 0..c {
            let lane = x.index_axis(Axis(1), ch);
            let n = lane.len().max(1) as f64;
            let m = lane.sum() / n;
            let v = lane.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / n;
            y.index_axis_mut(Axis(1), ch)
                .mapv_inplace(|a| scale[ch] * (a - m) / (v + eps).sqrt() + bias[ch]);
            run_mean[ch] = mean[ch] * momentum + m * (1.0 - momentum);
            run_var[ch] = var[ch] * momentum + v * (1.0 - momentum);
        }
        let dt = inputs[0].datum_type();
        let stat_dt = inputs[3].datum_type();
        let mut out = tvec!(Tensor::from(y).cast_to_dt(dt)?.into_owned().into_tvalue());
        for stat in [run_mean, run_var].into_iter().take(self.outputs - 1) {
            let t = Tensor::from(ArrayD::from_shape_vec(IxDyn(&[c]), stat)?);
            out.push(t.cast_to_dt(stat_dt)?.into_owned().into_tvalue());
        }
        Ok(out)
    }
}

impl TypedOp for Training {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut facts = tvec!(inputs[0].without_value());
        for _ in 1..self.outputs {
            facts.push(inputs[3].without_value());
        }
        Ok(facts)
    }

    as_op!();
}
