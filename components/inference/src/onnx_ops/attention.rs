//! ONNX `Attention` (opset 23/24) in the variants tract-onnx refuses: `softcap` (Gemma 2),
//! the `qk_matmul_output` output and its modes, `nonpad_kv_seqlen`, and boolean masks.
//! Everything tract accepts still goes to tract, which maps it to its fused SDPA kernel; this
//! is a direct f32 transcription of onnx's reference, for the rest.
use tract_hir::internal::*;
use tract_ndarray::{Array4, ArrayD, Axis, Ix4, IxDyn};
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("Attention", attention);
}

fn given(names: &[String], ix: usize) -> bool {
    names.get(ix).is_some_and(|s| !s.is_empty())
}

fn attention(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let outputs: Vec<bool> = (0..4).map(|i| given(&node.output, i)).collect();
    let bool_mask = given(&node.input, 3) && super::declared_type(ctx, &node.input[3]) == Some(9);
    if !outputs[3] && !bool_mask {
        if let Ok(op) = super::tract_builder(ctx, node) {
            return Ok(op);
        }
    }
    let inputs: Vec<bool> = (0..7).map(|i| given(&node.input, i)).collect();
    let op = Attention {
        scale: node.get_attr_opt::<f32>("scale")?.map(f32::to_bits),
        causal: node.get_attr_opt::<i64>("is_causal")?.unwrap_or(0) != 0,
        q_heads: node.get_attr_opt::<i64>("q_num_heads")?.map(|v| v as usize),
        kv_heads: node
            .get_attr_opt::<i64>("kv_num_heads")?
            .map(|v| v as usize),
        softcap: node
            .get_attr_opt::<f32>("softcap")?
            .unwrap_or(0.0)
            .to_bits(),
        qk_mode: node
            .get_attr_opt::<i64>("qk_matmul_output_mode")?
            .unwrap_or(0),
        inputs: [inputs[3], inputs[4], inputs[5], inputs[6]],
        outputs: [outputs[0], outputs[1], outputs[2], outputs[3]],
    };
    ensure!(
        (0..=3).contains(&op.qk_mode),
        "Attention: unknown qk_matmul_output_mode {}",
        op.qk_mode
    );
    ensure!(
        op.inputs[1] == op.inputs[2],
        "Attention: past_key and past_value go together"
    );
    Ok((expand(op), vec![]))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Attention {
    scale: Option<u32>,
    causal: bool,
    q_heads: Option<usize>,
    kv_heads: Option<usize>,
    softcap: u32,
    qk_mode: i64,
    /// attn_mask, past_key, past_value, nonpad_kv_seqlen: given or not.
    inputs: [bool; 4],
    /// Y, present_key, present_value, qk_matmul_output: asked for or not.
    outputs: [bool; 4],
}

impl Attention {
    /// Position among the node's given inputs of optional input `k` (0 = attn_mask).
    fn input(&self, k: usize) -> Option<usize> {
        self.inputs[k].then(|| 3 + self.inputs[..k].iter().filter(|&&g| g).count())
    }

    fn output(&self, k: usize) -> Option<usize> {
        self.outputs[k].then(|| self.outputs[..k].iter().filter(|&&g| g).count())
    }

    fn n_outputs(&self) -> usize {
        self.outputs.iter().filter(|&&g| g).count()
    }
}

impl Expansion for Attention {
    fn name(&self) -> StaticName {
        "Attention".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.n_outputs())
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 3 + self.inputs.iter().filter(|&&g| g).count())?;
        check_output_arity(outputs, self.n_outputs())?;
        for k in [0, 3] {
            if let Some(o) = self.output(k) {
                s.equals(&outputs[o].datum_type, &inputs[0].datum_type)?;
            }
        }
        for k in [1, 2] {
            if let Some(o) = self.output(k) {
                s.equals(&outputs[o].datum_type, &inputs[k].datum_type)?;
                s.equals(&outputs[o].rank, 4)?;
            }
        }
        if let Some(o) = self.output(0) {
            s.equals(&outputs[o].rank, &inputs[0].rank)?;
        }
        if let Some(o) = self.output(3) {
            s.equals(&outputs[o].rank, 4)?;
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

impl Op for Attention {
    fn name(&self) -> StaticName {
        "Attention".into()
    }

    op_as_typed_op!();
}

/// (B, S, H*D) to (B, H, S, D), or a 4-D tensor as it is.
fn heads(t: &TValue, heads: Option<usize>, what: &str) -> TractResult<Array4<f32>> {
    let a = t.cast_to::<f32>()?.to_plain_array_view::<f32>()?.to_owned();
    match a.ndim() {
        4 => Ok(a.into_dimensionality::<Ix4>()?),
        3 => {
            let h = heads
                .with_context(|| format!("Attention: 3-D {what} needs the number of heads"))?;
            let (b, s, hd) = (a.shape()[0], a.shape()[1], a.shape()[2]);
            ensure!(
                h > 0 && hd % h == 0,
                "Attention: {what} width {hd} is not a multiple of {h} heads"
            );
            let a = a.into_shape_with_order((b, s, h, hd / h))?;
            Ok(a.permuted_axes([0, 2, 1, 3])
                .as_standard_layout()
                .to_owned())
        }
        r => bail!("Attention: {what} has rank {r}, expected 3 or 4"),
    }
}

impl EvalOp for Attention {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let three_d = inputs[0].rank() == 3;
        let q = heads(&inputs[0], self.q_heads, "query")?;
        let mut k = heads(&inputs[1], self.kv_heads, "key")?;
        let mut v = heads(&inputs[2], self.kv_heads, "value")?;
        let past = match self.input(1) {
            Some(p) => {
                let pk = heads(&inputs[p], None, "past_key")?;
                let pv = heads(&inputs[p + 1], None, "past_value")?;
                k = tract_ndarray::concatenate(Axis(2), &[pk.view(), k.view()])?;
                v = tract_ndarray::concatenate(Axis(2), &[pv.view(), v.view()])?;
                pk.shape()[2]
            }
            None => 0,
        };
        let (b, hq, sq, dq) = q.dim();
        let (kb, hkv, skv, dk) = k.dim();
        let dv = v.shape()[3];
        ensure!(
            kb == b && dk == dq && v.shape()[..3] == [b, hkv, skv] && hkv > 0 && hq % hkv == 0,
            "Attention: query {:?}, key {:?} and value {:?} do not fit",
            q.shape(),
            k.shape(),
            v.shape()
        );
        // The additive bias, (B, Hq, Sq, Skv).
        let mut bias = Array4::<f32>::zeros((b, hq, sq, skv));
        if let Some(m) = self.input(0) {
            let mask = &inputs[m];
            let mask: ArrayD<f32> = if mask.datum_type() == DatumType::Bool {
                mask.to_plain_array_view::<bool>()?
                    .mapv(|keep| if keep { 0.0 } else { f32::NEG_INFINITY })
            } else {
                mask.cast_to::<f32>()?
                    .to_plain_array_view::<f32>()?
                    .to_owned()
            };
            ensure!(
                (2..=4).contains(&mask.ndim()),
                "Attention: mask has rank {}",
                mask.ndim()
            );
            // A mask shorter than the keys is padded with "masked out".
            let short = skv.saturating_sub(mask.shape()[mask.ndim() - 1]);
            let mask = if short > 0 {
                let mut shape = mask.shape().to_vec();
                *shape.last_mut().unwrap() = short;
                let pad = ArrayD::from_elem(IxDyn(&shape), f32::NEG_INFINITY);
                tract_ndarray::concatenate(Axis(mask.ndim() - 1), &[mask.view(), pad.view()])?
            } else {
                mask
            };
            let mask = mask.as_standard_layout().into_owned();
            let mut shape = vec![1; 4 - mask.ndim()];
            shape.extend_from_slice(mask.shape());
            let mask = mask.into_shape_with_order(IxDyn(&shape))?;
            let mask = mask.broadcast(IxDyn(&[b, hq, sq, skv])).with_context(|| {
                format!(
                    "Attention: mask {shape:?} does not broadcast to {:?}",
                    [b, hq, sq, skv]
                )
            })?;
            bias.zip_mut_with(&mask.into_dimensionality::<Ix4>()?, |x, &m| *x += m);
        }
        if self.causal {
            for ((_, _, i, j), x) in bias.indexed_iter_mut() {
                if j > i + past {
                    *x += f32::NEG_INFINITY;
                }
            }
        }
        if let Some(n) = self.input(3) {
            let lens = inputs[n]
                .cast_to::<i64>()?
                .try_as_plain_ram()?
                .as_slice::<i64>()?
                .to_vec();
            ensure!(
                lens.len() == b,
                "Attention: {} nonpad_kv_seqlen values for batch {b}",
                lens.len()
            );
            for ((bi, _, _, j), x) in bias.indexed_iter_mut() {
                if j as i64 >= lens[bi] {
                    *x += f32::NEG_INFINITY;
                }
            }
        }
        let scale = self
            .scale
            .map(f32::from_bits)
            .unwrap_or(1.0 / (dq as f32).sqrt())
            .sqrt();
        let softcap = f32::from_bits(self.softcap);
        let group = hq / hkv;
        let mut y = Array4::<f32>::zeros((b, hq, sq, dv));
        let mut qk_out = Array4::<f32>::zeros((b, hq, sq, skv));
        let mut row = vec![0f32; skv];
        for bi in 0..b {
            for h in 0..hq {
                let kh = h / group;
                for i in 0..sq {
                    for (j, r) in row.iter_mut().enumerate() {
                        let mut dot = 0f32;
                        for d in 0..dq {
                            dot += (q[[bi, h, i, d]] * scale) * (k[[bi, kh, j, d]] * scale);
                        }
                        if softcap > 0.0 {
                            dot = (dot / softcap).tanh() * softcap;
                        }
                        *r = dot;
                    }
                    for (j, &r) in row.iter().enumerate() {
                        qk_out[[bi, h, i, j]] = r;
                    }
                    for (j, r) in row.iter_mut().enumerate() {
                        *r += bias[[bi, h, i, j]];
                    }
                    if self.qk_mode == 2 {
                        for (j, &r) in row.iter().enumerate() {
                            qk_out[[bi, h, i, j]] = r;
                        }
                    }
                    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                    let mut sum = 0f32;
                    for r in row.iter_mut() {
                        *r = (*r - max).exp();
                        sum += *r;
                    }
                    for (j, r) in row.iter_mut().enumerate() {
                        *r /= sum;
                        if self.qk_mode == 3 {
                            qk_out[[bi, h, i, j]] = *r;
                        }
                    }
                    for d in 0..dv {
                        y[[bi, h, i, d]] = row
                            .iter()
                            .enumerate()
                            .map(|(j, p)| p * v[[bi, kh, j, d]])
                            .sum();
                    }
                }
            }
        }
        let y: ArrayD<f32> = if three_d {
            y.permuted_axes([0, 2, 1, 3])
                .as_standard_layout()
                .to_owned()
                .into_shape_with_order(IxDyn(&[b, sq, hq * dv]))?
        } else {
            y.into_dyn()
        };
        let qdt = inputs[0].datum_type();
        let kdt = inputs[1].datum_type();
        let all = [
            (y, qdt),
            (k.into_dyn(), kdt),
            (v.into_dyn(), inputs[2].datum_type()),
            (qk_out.into_dyn(), qdt),
        ];
        let mut out = tvec![];
        for (ix, (a, dt)) in all.into_iter().enumerate() {
            if self.outputs[ix] {
                out.push(Tensor::from(a).cast_to_dt(dt)?.into_owned().into_tvalue());
            }
        }
        Ok(out)
    }
}

impl TypedOp for Attention {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let (q, k, v) = (&inputs[0].shape, &inputs[1].shape, &inputs[2].shape);
        ensure!(
            q.rank() == k.rank() && k.rank() == v.rank() && (q.rank() == 3 || q.rank() == 4),
            "Attention: query, key and value must all have rank 3 or 4"
        );
        let four = |s: &ShapeFact, h: Option<usize>| -> TractResult<TVec<TDim>> {
            if s.rank() == 4 {
                return Ok(s.iter().cloned().collect());
            }
            let h = h.context("Attention: 3-D inputs need the number of heads")? as u64;
            ensure!(h > 0, "Attention: the number of heads must be positive");
            Ok(tvec![
                s[0].clone(),
                h.to_dim(),
                s[1].clone(),
                s[2].clone() / h
            ])
        };
        let (q4, mut k4, mut v4) = (
            four(q, self.q_heads)?,
            four(k, self.kv_heads)?,
            four(v, self.kv_heads)?,
        );
        if let Some(p) = self.input(1) {
            k4[2] = k4[2].clone() + inputs[p].shape[2].clone();
            v4[2] = v4[2].clone() + inputs[p + 1].shape[2].clone();
        }
        let y = if q.rank() == 3 {
            tvec![q[0].clone(), q[1].clone(), q4[1].clone() * v4[3].clone()]
        } else {
            tvec![q4[0].clone(), q4[1].clone(), q4[2].clone(), v4[3].clone()]
        };
        let qk = tvec![q4[0].clone(), q4[1].clone(), q4[2].clone(), k4[2].clone()];
        let facts = [
            inputs[0].datum_type.fact(y),
            inputs[1].datum_type.fact(k4),
            inputs[2].datum_type.fact(v4),
            inputs[0].datum_type.fact(qk),
        ];
        Ok(facts
            .into_iter()
            .enumerate()
            .filter(|(ix, _)| self.outputs[*ix])
            .map(|(_, f)| f)
            .collect())
    }

    as_op!();
}
