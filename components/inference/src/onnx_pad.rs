//! ONNX `Pad`: tract's shape analysis, then a wiring that checks what tract's trusts.
//!
//! - Negative pads crop (ONNX since opset 11; onnx-asr's Kaldi front end shifts its signal by
//!   one sample with pads `[0, 1, 0, -1]`). tract casts them to `usize` and fails on the huge
//!   dimension that makes. Here the negative part is a slice, taken before the positive part is
//!   padded, as onnxruntime does.
//! - Reflect padding by `p` reads `p` values beyond the edge, so it needs an axis of at least
//!   `p + 1`. tract's kernel does not check and slices out of bounds: a panic, a trap in wasm.
//!   Silero VAD on a one-sample chunk does exactly that, while tract analyses the plan (the chunk
//!   is small enough to be folded in as a constant, so the Pad is evaluated early). Both ways to
//!   the kernel, evaluation during analysis and the typed Pad of a plan, are checked here first.
//! - Axes out of range and pads of the wrong length are refused (tract indexes by them).
//!
//! tract's own op still does the analysis (its rules handle negative pads); only the typed
//! wiring and the evaluation are ours. Registered through tract-onnx's operator register.
use tract_hir::internal::*;
use tract_hir::tract_core::ops::array::{Pad, PadMode, Slice};
use tract_onnx::model::{optional_inputs, OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;

type Builder = fn(&ParsingContext, &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

/// tract-onnx's own Pad builder: its op does the analysis.
static TRACT_PAD: std::sync::OnceLock<Builder> = std::sync::OnceLock::new();

pub fn register(reg: &mut OnnxOpRegister) {
    if let Some(tract_pad) = reg.0.get("Pad") {
        TRACT_PAD.get_or_init(|| *tract_pad);
        reg.insert("Pad", pad);
    }
}

fn pad(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let tract_pad = TRACT_PAD
        .get()
        .context("Pad: tract's builder is not registered")?;
    let (analysis, closures) = tract_pad(ctx, node)?;
    let mode = match node.get_attr_opt::<&str>("mode")? {
        None | Some("constant") => Mode::Constant,
        Some("reflect") => Mode::Reflect,
        Some("edge") => Mode::Edge,
        Some(other) => bail!("Pad mode \"{other}\" is not supported"),
    };
    let pads = if ctx.onnx_operator_set_version <= 10 {
        let pads: Vec<i64> = node.get_attr_tvec::<i64>("pads")?.into_iter().collect();
        ensure!(
            pads.iter().all(|p| *p >= 0),
            "Pad with negative pads before opset 11 is not supported"
        );
        let value: f32 = node.get_attr_opt("value")?.unwrap_or(0.0);
        Pads::Attribute { pads, value }
    } else {
        // Inputs: data, pads, then constant_value and axes, each optional.
        let mut optional = optional_inputs(node).skip(2);
        Pads::Input {
            constant: optional.next().flatten(),
            axes: optional.next().flatten(),
        }
    };
    let op = OnnxPad {
        analysis,
        mode,
        pads,
        node: node.name.clone(),
    };
    Ok((Box::new(op), closures))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Constant,
    Reflect,
    Edge,
}

#[derive(Debug, Clone)]
enum Pads {
    /// Opset up to 10: `pads` (begins, then ends) and `value` are attributes.
    Attribute { pads: Vec<i64>, value: f32 },
    /// Opset 11 and later: `pads` is input 1; the constant value and the axes the pads cover
    /// are optional inputs.
    Input {
        constant: Option<usize>,
        axes: Option<usize>,
    },
}

#[derive(Debug, Clone)]
struct OnnxPad {
    /// tract's Pad, for its shape and type rules.
    analysis: Box<dyn InferenceOp>,
    mode: Mode,
    pads: Pads,
    node: String,
}

// The wrapped op has no structural equality; no two are merged.
impl PartialEq for OnnxPad {
    fn eq(&self, _: &Self) -> bool {
        false
    }
}
impl Eq for OnnxPad {}

fn int_values(t: &Tensor) -> TractResult<Vec<i64>> {
    Ok(t.cast_to::<i64>()?
        .try_as_plain_ram()?
        .as_slice::<i64>()?
        .to_vec())
}

impl OnnxPad {
    /// `(before, after)` for every axis, negative to crop.
    fn per_axis(
        &self,
        rank: usize,
        konst: &dyn Fn(usize) -> TractResult<Arc<Tensor>>,
    ) -> TractResult<Vec<(i64, i64)>> {
        let (pads, axes) = match &self.pads {
            Pads::Attribute { pads, .. } => (pads.clone(), (0..rank as i64).collect::<Vec<_>>()),
            Pads::Input { axes, .. } => {
                let pads = int_values(&*konst(1)?)?;
                let axes = match axes {
                    Some(ix) => int_values(&*konst(*ix)?)?,
                    None => (0..rank as i64).collect(),
                };
                (pads, axes)
            }
        };
        ensure!(
            pads.len() == 2 * axes.len(),
            "Pad node \"{}\": {} pads for {} axes",
            self.node,
            pads.len(),
            axes.len()
        );
        let mut per_axis = vec![(0, 0); rank];
        for (ix, &axis) in axes.iter().enumerate() {
            let a = if axis < 0 { axis + rank as i64 } else { axis };
            ensure!(
                (0..rank as i64).contains(&a),
                "Pad node \"{}\": axis {axis} is out of range for rank {rank}",
                self.node
            );
            per_axis[a as usize] = (pads[ix], pads[ix + axes.len()]);
        }
        Ok(per_axis)
    }

    /// The typed Pad (and its crops) for input 0 of `inputs`; the other inputs must be constants.
    fn wire_typed(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let konst = |ix: usize| -> TractResult<Arc<Tensor>> {
            model
                .outlet_fact(*inputs.get(ix).context("Pad: missing input")?)?
                .konst
                .clone()
                .with_context(|| {
                    format!("Pad node \"{}\": input {ix} must be a constant", self.node)
                })
        };
        let fact = model.outlet_fact(inputs[0])?.clone();
        let per_axis = self.per_axis(fact.rank(), &konst)?;
        let mode = match (self.mode, &self.pads) {
            (Mode::Reflect, _) => PadMode::Reflect,
            (Mode::Edge, _) => PadMode::Edge,
            (Mode::Constant, Pads::Attribute { value, .. }) => PadMode::Constant(rctensor0(*value)),
            (
                Mode::Constant,
                Pads::Input {
                    constant: Some(c), ..
                },
            ) => PadMode::Constant(konst(*c)?),
            (Mode::Constant, Pads::Input { constant: None, .. }) => {
                PadMode::Constant(rctensor0(0f32))
            }
        };
        let mut wire = inputs[0];
        // Crops first, as onnxruntime does: reflect and edge then read the cropped tensor.
        for (axis, &(before, after)) in per_axis.iter().enumerate() {
            let (cut_before, cut_after) = ((-before).max(0), (-after).max(0));
            if cut_before == 0 && cut_after == 0 {
                continue;
            }
            let dim = fact.shape[axis].clone();
            if let Ok(d) = dim.to_i64() {
                ensure!(
                    cut_before + cut_after <= d,
                    "Pad node \"{}\": negative pads remove {} values of axis {axis}, which has {d}",
                    self.node,
                    cut_before + cut_after
                );
            }
            wire = model.wire_node(
                format!("{prefix}.crop_{axis}"),
                Slice::new(axis, cut_before.to_dim(), dim - cut_after.to_dim()),
                &[wire],
            )?[0];
        }
        let cropped = model.outlet_fact(wire)?.shape.clone();
        let grow: Vec<(usize, usize)> = per_axis
            .iter()
            .map(|&(b, a)| (b.max(0) as usize, a.max(0) as usize))
            .collect();
        if self.mode == Mode::Reflect {
            for (axis, &(before, after)) in grow.iter().enumerate() {
                let reach = before.max(after);
                match cropped[axis].to_usize() {
                    Ok(dim) if reach > 0 && reach >= dim => bail!(
                        "Pad node \"{}\": reflect padding by {reach} needs an axis of at least {} values, but axis {axis} has {dim}",
                        self.node,
                        reach + 1
                    ),
                    Ok(_) => {}
                    // Plans are made for concrete shapes; this only defers the check.
                    Err(_) => bail!(
                        "Pad node \"{}\": reflect padding needs the length of axis {axis} when planning",
                        self.node
                    ),
                }
            }
        }
        if grow.iter().any(|&(b, a)| b > 0 || a > 0) {
            wire = model.wire_node(format!("{prefix}.pad"), Pad { pads: grow, mode }, &[wire])?[0];
        } else if wire == inputs[0] {
            wire = model.wire_node(
                format!("{prefix}.pad"),
                tract_hir::ops::identity::Identity,
                &[wire],
            )?[0];
        }
        Ok(tvec!(wire))
    }
}

impl Op for OnnxPad {
    fn name(&self) -> StaticName {
        "Pad".into()
    }

    not_a_typed_op!();
}

impl EvalOp for OnnxPad {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        // The same wiring as a plan's, on constants: one path to tract's kernel, checked.
        let mut model = TypedModel::default();
        let wires = inputs
            .iter()
            .enumerate()
            .map(|(ix, t)| model.add_const(format!("input.{ix}"), t.clone().into_tensor()))
            .collect::<TractResult<TVec<_>>>()?;
        let outputs = self.wire_typed("pad", &mut model, &wires)?;
        model.select_output_outlets(&outputs)?;
        model.into_runnable()?.run(tvec!())
    }

    op_out_of_plan!();
}

impl InferenceOp for OnnxPad {
    fn infer_facts(
        &mut self,
        inputs: TVec<&InferenceFact>,
        outputs: TVec<&InferenceFact>,
        observed: TVec<&InferenceFact>,
    ) -> TractResult<(
        TVec<InferenceFact>,
        TVec<InferenceFact>,
        TVec<InferenceFact>,
    )> {
        self.analysis.infer_facts(inputs, outputs, observed)
    }

    fn to_typed(
        &self,
        _source: &InferenceModel,
        node: &InferenceNode,
        target: &mut TypedModel,
        mapping: &HashMap<OutletId, OutletId>,
    ) -> TractResult<TVec<OutletId>> {
        let inputs: TVec<OutletId> = node.inputs.iter().map(|o| mapping[o]).collect();
        self.wire_typed(&node.name, target, &inputs)
    }

    as_op!();
}
