//! `BitCast` (opset 26): the same bytes read as another type of the same width (e.g. float
//! bits as integers, as hashing and packing code in exported graphs does). tract-onnx lacks it.
use tract_hir::internal::*;
use tract_onnx::model::OnnxOpRegister;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("BitCast", |_, node| {
        let to: i64 = node.get_attr("to")?;
        let dt = tract_onnx::pb::tensor_proto::DataType::try_from(to as i32)
            .map_err(|_| format_err!("BitCast: unknown data type {to}"))
            .and_then(DatumType::try_from)?;
        ensure!(
            dt != DatumType::String,
            "BitCast: strings have no bit pattern"
        );
        Ok((expand(BitCast { to: dt }), vec![]))
    });
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct BitCast {
    to: DatumType,
}

impl Expansion for BitCast {
    fn name(&self) -> StaticName {
        "BitCast".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, self.to)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let from = model.outlet_fact(inputs[0])?.datum_type;
        // Shapes computed by tract are symbolic dims; their bits are those of i64.
        let mut wire = inputs[0];
        if from == DatumType::TDim {
            wire = model.wire_node(
                format!("{prefix}.i64"),
                tract_hir::tract_core::ops::cast::cast(DatumType::I64),
                &[wire],
            )?[0];
        }
        let from = model.outlet_fact(wire)?.datum_type;
        ensure!(
            from.size_of() == self.to.size_of() && from != DatumType::String,
            "BitCast from {from:?} to {:?}: the widths differ",
            self.to
        );
        model.wire_node(prefix, self.clone(), &[wire])
    }
}

impl Op for BitCast {
    fn name(&self) -> StaticName {
        "BitCast".into()
    }

    op_as_typed_op!();
}

impl EvalOp for BitCast {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let bytes = input.try_as_plain_ram()?.as_bytes().to_vec();
        if self.to == DatumType::Bool {
            ensure!(
                bytes.iter().all(|&b| b <= 1),
                "BitCast: a bool byte must be 0 or 1"
            );
        }
        // Safety: same element width (checked when wired), and bool bytes checked above.
        let out = unsafe { Tensor::from_raw_dt(self.to, input.shape(), &bytes)? };
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for BitCast {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(self.to.fact(inputs[0].shape.clone())))
    }

    as_op!();
}
