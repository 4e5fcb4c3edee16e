//! `ai.onnx.ml.Binarizer`: 1 above a threshold, else 0 (scikit-learn pipelines exported with
//! skl2onnx). tract-onnx lacks it; it is a comparison and a cast.
use tract_hir::internal::*;
use tract_hir::tract_core::ops::binary::TypedBinOp;
use tract_hir::tract_core::ops::cast::cast;
use tract_hir::tract_core::ops::logic::CompGT;
use tract_onnx::model::OnnxOpRegister;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("Binarizer", |_, node| {
        let threshold = node.get_attr_opt::<f32>("threshold")?.unwrap_or(0.0);
        Ok((
            expand(Binarizer {
                threshold: threshold.to_bits(),
            }),
            vec![],
        ))
    });
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Binarizer {
    threshold: u32,
}

impl Expansion for Binarizer {
    fn name(&self) -> StaticName {
        "Binarizer".into()
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
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let fact = model.outlet_fact(inputs[0])?.clone();
        let t = tensor0(f32::from_bits(self.threshold))
            .cast_to_dt(fact.datum_type)?
            .into_owned();
        let t = model.add_const(
            format!("{prefix}.threshold"),
            t.broadcast_into_rank(fact.rank())?,
        )?;
        let above = model.wire_node(
            format!("{prefix}.greater"),
            TypedBinOp(Box::new(CompGT), None),
            &[inputs[0], t],
        )?;
        model.wire_node(prefix, cast(fact.datum_type), &above)
    }
}
