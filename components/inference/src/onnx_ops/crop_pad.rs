//! `CenterCropPad`: crop or zero-pad around the centre to a given size (image preprocessing
//! exported into the graph). tract-onnx lacks it; it becomes tract's Slice and Pad once the
//! target shape is known (a constant, or a small input the plan is specialised on).
use tract_hir::internal::*;
use tract_hir::tract_core::ops::array::{Pad, PadMode, Slice};
use tract_onnx::model::OnnxOpRegister;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("CenterCropPad", |_, node| {
        let axes = node.get_attr_opt_vec::<i64>("axes")?;
        Ok((expand(CenterCropPad { axes }), vec![]))
    });
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct CenterCropPad {
    axes: Option<Vec<i64>>,
}

impl Expansion for CenterCropPad {
    fn name(&self) -> StaticName {
        "CenterCropPad".into()
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
        s.equals(&outputs[0].rank, &inputs[0].rank)?;
        s.given_2(
            &inputs[0].shape,
            &inputs[1].value,
            move |s, shape, target| {
                let target = target.cast_to::<i64>()?;
                let target = target.try_as_plain_ram()?;
                let target = target.as_slice::<i64>()?;
                let mut out = shape.clone();
                for (axis, &size) in self.resolved_axes(shape.len())?.iter().zip(target) {
                    out[*axis] = size.to_dim();
                }
                s.equals(&outputs[0].shape, out)
            },
        )?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let target = model
            .outlet_fact(inputs[1])?
            .konst
            .clone()
            .context("CenterCropPad: the target shape must be known before running")?
            .cast_to::<i64>()?
            .into_owned();
        let target = target.try_as_plain_ram()?.as_slice::<i64>()?.to_vec();
        let shape = model.outlet_fact(inputs[0])?.shape.clone();
        let axes = self.resolved_axes(shape.rank())?;
        ensure!(
            axes.len() == target.len(),
            "CenterCropPad: {} sizes for {} axes",
            target.len(),
            axes.len()
        );
        let mut wire = inputs[0];
        let mut pads = vec![(0usize, 0usize); shape.rank()];
        for (&axis, &want) in axes.iter().zip(&target) {
            let have = shape[axis]
                .to_i64()
                .context("CenterCropPad: input dims must be known")?;
            ensure!(want >= 0, "CenterCropPad: negative size {want}");
            if have > want {
                let start = (have - want) / 2;
                let op = Slice::new(axis, start as usize, (start + want) as usize);
                wire = model.wire_node(format!("{prefix}.crop{axis}"), op, &[wire])?[0];
            } else if want > have {
                let total = (want - have) as usize;
                pads[axis] = (total / 2, total - total / 2);
            }
        }
        if pads.iter().any(|&(a, b)| a + b > 0) {
            let zero =
                Tensor::zero_scalar_dt(model.outlet_fact(wire)?.datum_type)?.into_arc_tensor();
            let pad = Pad {
                pads,
                mode: PadMode::Constant(zero),
            };
            wire = model.wire_node(format!("{prefix}.pad"), pad, &[wire])?[0];
        }
        Ok(tvec!(wire))
    }
}

impl CenterCropPad {
    fn resolved_axes(&self, rank: usize) -> TractResult<Vec<usize>> {
        match &self.axes {
            None => Ok((0..rank).collect()),
            Some(axes) => axes
                .iter()
                .map(|&a| {
                    let a = if a < 0 { a + rank as i64 } else { a };
                    ensure!(
                        (0..rank as i64).contains(&a),
                        "CenterCropPad: axis {a} out of range for rank {rank}"
                    );
                    Ok(a as usize)
                })
                .collect(),
        }
    }
}
