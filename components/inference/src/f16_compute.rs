//! fp16 models computed in f32, their f16 inputs and outputs kept.
//!
//! WebAssembly has no f16 arithmetic: tract converts every f16 value in software, so an fp16
//! image model ran ~500x slower than onnxruntime (one 3x3 conv at 256x256: 256 ms in f32, 24 s
//! in f16), and some of its f16 kernels trade accuracy (Sigmoid clamped to [2^-10, 1-2^-10]).
//! So a plan with f16 values is translated to f32 before it is optimized (tract-core's
//! FloatPrecisionTranslator: constants, casts and the types operators compute in) and runs on
//! the f32 kernels. The caller still gives and gets f16: inputs are widened before running
//! (exact) and outputs rounded to f16 once, at the end, which is closer to the exact result than
//! rounding after every operator. The same happens natively, so both engines agree.
use tract_hir::internal::translator::Translate;
use tract_hir::internal::*;
use tract_hir::tract_core::floats::FloatPrecisionTranslator;

/// Which of the model's inputs and outputs are f16 while its plan takes and gives f32.
#[derive(Debug, Clone, Default)]
pub struct F16Io {
    inputs: Vec<bool>,
    outputs: Vec<bool>,
}

impl F16Io {
    /// The inputs as the plan takes them.
    pub fn widen(&self, inputs: Vec<Tensor>) -> TractResult<Vec<Tensor>> {
        inputs
            .into_iter()
            .enumerate()
            .map(|(ix, t)| {
                if self.inputs.get(ix).copied().unwrap_or(false) {
                    Ok(t.cast_to::<f32>()?.into_owned())
                } else {
                    Ok(t)
                }
            })
            .collect()
    }

    /// The outputs as the model gives them.
    pub fn narrow(&self, outputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        outputs
            .into_iter()
            .enumerate()
            .map(|(ix, v)| {
                if self.outputs.get(ix).copied().unwrap_or(false) {
                    Ok(v.cast_to::<f16>()?.into_owned().into_tvalue())
                } else {
                    Ok(v)
                }
            })
            .collect()
    }
}

/// The model translated to compute in f32, when it has any f16 value; `None` otherwise.
pub fn in_f32(model: &TypedModel) -> Option<TractResult<(TypedModel, F16Io)>> {
    let is_f16 = |f: &TypedFact| f.datum_type == f16::datum_type();
    let has_f16 = model
        .nodes()
        .iter()
        .any(|n| n.outputs.iter().any(|o| is_f16(&o.fact)));
    if !has_f16 {
        return None;
    }
    let io = |outlets: TractResult<&[OutletId]>| -> TractResult<Vec<bool>> {
        outlets?
            .iter()
            .map(|o| Ok(is_f16(model.outlet_fact(*o)?)))
            .collect()
    };
    Some((|| {
        let f16io = F16Io {
            inputs: io(model.input_outlets())?,
            outputs: io(model.output_outlets())?,
        };
        let wide = FloatPrecisionTranslator::new(f16::datum_type(), f32::datum_type())
            .translate_model(model)?;
        Ok((wide, f16io))
    })())
}
