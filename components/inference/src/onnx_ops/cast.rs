//! `Cast` and `CastLike` to the narrow types tract lacks (bfloat16, float8, float4, 4- and
//! 2-bit integers; see `narrow.rs`): the value is rounded onto the narrow grid and held in
//! tract's f32/i8/u8. Casts between tract's own types stay tract's.
use super::narrow::{round_e8m0, E8M0Rounding, Narrow};
use tract_hir::internal::*;
use tract_hir::tract_core::ops::element_wise::{ElementWiseMiniOp, ElementWiseOp};
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("Cast", cast);
    // CastLike to a narrow type was made a Cast by the model rewrite (`lower.rs`), which knows
    // the declared type of the second input; tract only sees its held type.
}

fn cast(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let to: i64 = node.get_attr("to")?;
    let Some(to) = Narrow::from_onnx(to as i32) else {
        return super::tract_builder(ctx, node);
    };
    let saturate = node.get_attr_opt::<i64>("saturate")?.unwrap_or(1) != 0;
    let rounding = match node.get_attr_opt::<&str>("round_mode")?.unwrap_or("up") {
        "up" => E8M0Rounding::Up,
        "down" => E8M0Rounding::Down,
        "nearest" => E8M0Rounding::Nearest,
        other => bail!("Cast: unknown round_mode {other:?}"),
    };
    Ok((
        expand(NarrowCast {
            to,
            saturate,
            rounding,
        }),
        vec![],
    ))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct NarrowCast {
    pub to: Narrow,
    pub saturate: bool,
    pub rounding: E8M0Rounding,
}

impl Expansion for NarrowCast {
    fn name(&self) -> StaticName {
        format!("Cast(to {})", self.to.name()).into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, self.to.held())?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        wire_narrow_cast(model, prefix, inputs[0], self.clone())
    }
}

/// Casts `input` (any numeric type) to `cast.to`, in its held type.
pub fn wire_narrow_cast(
    model: &mut TypedModel,
    prefix: &str,
    input: OutletId,
    cast: NarrowCast,
) -> TractResult<TVec<OutletId>> {
    // Floats go through f32 (exact for every source but f64); integers through i64.
    let via = if cast.to.is_float() {
        DatumType::F32
    } else {
        DatumType::I64
    };
    let mut wire = input;
    if model.outlet_fact(wire)?.datum_type != via {
        wire = model.wire_node(
            format!("{prefix}.widen"),
            tract_hir::tract_core::ops::cast::cast(via),
            &[wire],
        )?[0];
    }
    model.wire_node(prefix, ElementWiseOp(Box::new(cast), None), &[wire])
}

impl ElementWiseMiniOp for NarrowCast {
    fn name(&self) -> String {
        format!("NarrowCast({})", self.to.name())
    }

    fn output_type(&self, _input_type: DatumType) -> Option<DatumType> {
        Some(self.to.held())
    }

    fn eval_out_of_place(&self, t: &Tensor, _out_dt: Option<DatumType>) -> TractResult<Tensor> {
        Ok(match self.to.held() {
            DatumType::F32 => t
                .to_plain_array_view::<f32>()?
                .mapv(|x| self.round(x))
                .into(),
            DatumType::I8 => t
                .to_plain_array_view::<i64>()?
                .mapv(|x| self.to.wrap(x) as i8)
                .into(),
            _ => t
                .to_plain_array_view::<i64>()?
                .mapv(|x| self.to.wrap(x) as u8)
                .into(),
        })
    }
}

impl NarrowCast {
    fn round(&self, x: f32) -> f32 {
        if self.to == Narrow::F8E8M0 {
            round_e8m0(x, self.saturate, self.rounding)
        } else {
            self.to.round(x, self.saturate)
        }
    }
}
