//! ONNX `STFT`, also on a real signal given as `[batch, length]`.
//!
//! The ONNX spec writes the signal as `[batch, length, 1]` (real) or `[batch, length, 2]`
//! (complex); onnxruntime also takes `[batch, length]` as a real signal, and audio front ends
//! exported with it (onnx-asr's log-mel preprocessors) rely on that. tract-onnx's STFT asks for
//! rank 3. This one takes either, checks what tract's kernel would otherwise trust (a frame
//! longer than the signal, a zero step), and runs tract-core's `Stft`. Registered through
//! tract-onnx's operator register, replacing its STFT.
use tract_hir::infer::rules::expr::Exp;
use tract_hir::internal::*;
use tract_hir::tract_core::ops::array::{Pad, PadMode, Slice};
use tract_hir::tract_core::ops::fft::Stft as StftKernel;
use tract_onnx::model::{optional_inputs, OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("STFT", stft);
}

fn stft(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let onesided = node.get_attr_opt("onesided")?.unwrap_or(1i64) != 0;
    // Inputs: signal, frame_step, then window and frame_length, each optional.
    let mut optional = optional_inputs(node).skip(2);
    let window = optional.next().flatten();
    let frame_length = optional.next().flatten();
    Ok((
        expand(Stft {
            onesided,
            window,
            frame_length,
        }),
        vec![],
    ))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Stft {
    onesided: bool,
    /// Index of the window input, when given.
    window: Option<usize>,
    /// Index of the frame_length input, when given.
    frame_length: Option<usize>,
}

impl Stft {
    /// The frame length, as the solver sees it: frame_length when given, else the window's.
    fn frame(&self, inputs: &[TensorProxy]) -> TractResult<Exp<DimFact>> {
        match (self.frame_length, self.window) {
            (Some(l), _) => Ok(inputs[l].value[0].bex().to_dim()),
            (None, Some(w)) => Ok(inputs[w].shape[0].bex()),
            (None, None) => bail!("STFT needs a window or a frame_length input"),
        }
    }
}

impl Expansion for Stft {
    fn name(&self) -> StaticName {
        "STFT".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(
            inputs,
            2 + self.window.is_some() as usize + self.frame_length.is_some() as usize,
        )?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[0].rank, 4)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[3], 2.to_dim())?;
        s.given(&inputs[0].rank, |_, rank| {
            ensure!(
                rank == 2 || rank == 3,
                "STFT: the signal must be [batch, length] or [batch, length, 1|2], got rank {rank}"
            );
            Ok(())
        })?;
        if let Some(w) = self.window {
            s.equals(&inputs[w].rank, 1)?;
        }
        s.given_3(
            &inputs[0].shape[1],
            self.frame(inputs)?,
            &inputs[1].value[0],
            |s, length, frame, step| {
                ensure!(step > 0, "STFT: frame_step must be positive, got {step}");
                if let (Ok(length), Ok(frame)) = (length.to_i64(), frame.to_i64()) {
                    ensure!(
                        frame > 0 && frame <= length,
                        "STFT: a frame of {frame} samples does not fit a signal of {length}"
                    );
                }
                s.equals(&outputs[0].shape[1], (length - frame) / step + 1)
            },
        )?;
        let onesided = self.onesided;
        s.given(self.frame(inputs)?, move |s, frame| {
            let bins = if onesided { frame / 2 + 1 } else { frame };
            s.equals(&outputs[0].shape[2], bins)
        })?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let fact = model.outlet_fact(inputs[0])?.clone();
        let konst = |ix: usize, what: &str| -> TractResult<Arc<Tensor>> {
            model
                .outlet_fact(inputs[ix])?
                .konst
                .clone()
                .with_context(|| format!("STFT: the {what} must be a constant"))
        };
        let step = konst(1, "frame_step")?.cast_to_scalar::<i64>()?;
        let window = self.window.map(|w| konst(w, "window")).transpose()?;
        let frame = match (self.frame_length, &window) {
            (Some(l), _) => konst(l, "frame_length")?.cast_to_scalar::<i64>()?,
            (None, Some(w)) => w.len() as i64,
            (None, None) => bail!("STFT needs a window or a frame_length input"),
        };
        let length = fact.shape[1]
            .to_i64()
            .context("STFT: the signal length must be known when planning")?;
        ensure!(step > 0, "STFT: frame_step must be positive, got {step}");
        ensure!(
            frame > 0 && frame <= length,
            "STFT: a frame of {frame} samples does not fit a signal of {length}"
        );
        if let Some(w) = &window {
            ensure!(
                w.rank() == 1 && w.len() as i64 <= frame,
                "STFT: the window ({:?}) must be one-dimensional and no longer than the frame ({frame})",
                w.shape()
            );
        }
        let mut wire = inputs[0];
        if fact.rank() == 2 {
            wire = model.wire_node(format!("{prefix}.real_signal"), AxisOp::Add(2), &[wire])?[0];
        }
        let parts = model.outlet_fact(wire)?.shape[2].clone();
        if parts == 1.to_dim() {
            wire = model.wire_node(
                format!("{prefix}.imaginary"),
                Pad::new(
                    vec![(0, 0), (0, 0), (0, 1)],
                    PadMode::Constant(rctensor0(0f32)),
                ),
                &[wire],
            )?[0];
        } else {
            ensure!(
                parts == 2.to_dim(),
                "STFT: the signal's last dimension must be 1 (real) or 2 (complex), got {parts}"
            );
        }
        // tract's kernel computes an f16 signal in f32, and reads the window in the type it computes in.
        let computes_in = if fact.datum_type == f16::datum_type() {
            f32::datum_type()
        } else {
            fact.datum_type
        };
        let window = window
            .map(|w| {
                w.cast_to_dt(computes_in)
                    .map(|t| t.into_owned().into_arc_tensor())
            })
            .transpose()?;
        let frame = frame as usize;
        wire = model.wire_node(
            format!("{prefix}.stft"),
            StftKernel {
                axis: 1,
                frame,
                stride: step as usize,
                window,
            },
            &[wire],
        )?[0];
        if self.onesided {
            wire = model.wire_node(
                format!("{prefix}.onesided"),
                Slice::new(2, 0, frame / 2 + 1),
                &[wire],
            )?[0];
        }
        Ok(tvec!(wire))
    }
}
