//! `LinearAttention` and `CausalConvWithState` (ONNX opset 27): the recurrent blocks of
//! linear-attention and state-space language models (Gated DeltaNet in Qwen3.5, Mamba), with
//! their state in and out for step-by-step decoding. tract-onnx has neither. Both follow
//! onnx's reference: sequential over time, accumulated in f32, results in the input's type.
use tract_hir::internal::*;
use tract_ndarray::{Array3, Array4, ArrayView3, Axis};
use tract_onnx::model::OnnxOpRegister;
use tract_onnx::pb::NodeProto;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("LinearAttention", |_, node| {
        Ok((expand(linear_attention(node)?), vec![]))
    });
    reg.insert("CausalConvWithState", |_, node| {
        Ok((expand(causal_conv(node)?), vec![]))
    });
}

fn present(node: &NodeProto, ix: usize) -> bool {
    node.input.get(ix).is_some_and(|s| !s.is_empty())
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum Rule {
    Linear,
    Gated,
    Delta,
    GatedDelta,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct LinearAttention {
    q_heads: usize,
    kv_heads: usize,
    /// f32 bits; 0 for 1/sqrt(d_k).
    scale: u32,
    rule: Rule,
    /// Which optional inputs (past_state, decay, beta) are given.
    past: bool,
    decay: bool,
    beta: bool,
}

fn linear_attention(node: &NodeProto) -> TractResult<LinearAttention> {
    let rule = match node
        .get_attr_opt::<&str>("update_rule")?
        .unwrap_or("gated_delta")
    {
        "linear" => Rule::Linear,
        "gated" => Rule::Gated,
        "delta" => Rule::Delta,
        "gated_delta" => Rule::GatedDelta,
        other => bail!("LinearAttention: unknown update_rule {other:?}"),
    };
    let q_heads: i64 = node.get_attr("q_num_heads")?;
    let kv_heads: i64 = node.get_attr("kv_num_heads")?;
    ensure!(
        q_heads > 0 && kv_heads > 0 && q_heads % kv_heads == 0,
        "LinearAttention: q_num_heads ({q_heads}) must be a positive multiple of kv_num_heads ({kv_heads})"
    );
    let op = LinearAttention {
        q_heads: q_heads as usize,
        kv_heads: kv_heads as usize,
        scale: node.get_attr_opt::<f32>("scale")?.unwrap_or(0.0).to_bits(),
        rule,
        past: present(node, 3),
        decay: present(node, 4),
        beta: present(node, 5),
    };
    let gated = matches!(rule, Rule::Gated | Rule::GatedDelta);
    let delta = matches!(rule, Rule::Delta | Rule::GatedDelta);
    ensure!(
        op.decay == gated,
        "LinearAttention: decay is required by, and only by, the gated rules"
    );
    ensure!(
        op.beta == delta,
        "LinearAttention: beta is required by, and only by, the delta rules"
    );
    Ok(op)
}

impl LinearAttention {
    /// Positions of the given inputs: query, key, value, then the optional ones present.
    fn slots(&self) -> (Option<usize>, Option<usize>, Option<usize>) {
        let mut next = 3;
        let mut take = |given: bool| {
            given.then(|| {
                next += 1;
                next - 1
            })
        };
        (take(self.past), take(self.decay), take(self.beta))
    }
}

impl Expansion for LinearAttention {
    fn name(&self) -> StaticName {
        "LinearAttention".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(
            inputs,
            3 + self.past as usize + self.decay as usize + self.beta as usize,
        )?;
        check_output_arity(outputs, 2)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[0].rank, 3)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], &inputs[0].shape[1])?;
        s.equals(&outputs[1].rank, 4)?;
        match self.slots().0 {
            Some(p) => {
                s.equals(&outputs[1].datum_type, &inputs[p].datum_type)?;
                s.equals(&outputs[1].shape, &inputs[p].shape)?;
            }
            None => s.equals(&outputs[1].datum_type, &inputs[0].datum_type)?,
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

impl Op for LinearAttention {
    fn name(&self) -> StaticName {
        "LinearAttention".into()
    }

    op_as_typed_op!();
}

fn f32_array3(t: &TValue, what: &str) -> TractResult<Array3<f32>> {
    let a = t.cast_to::<f32>()?.to_plain_array_view::<f32>()?.to_owned();
    ensure!(
        a.ndim() == 3,
        "{what} must have rank 3, has shape {:?}",
        a.shape()
    );
    Ok(a.into_dimensionality()?)
}

impl EvalOp for LinearAttention {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (q, k, v) = (
            f32_array3(&inputs[0], "query")?,
            f32_array3(&inputs[1], "key")?,
            f32_array3(&inputs[2], "value")?,
        );
        let (b, t) = (q.shape()[0], q.shape()[1]);
        let (hq, hkv) = (self.q_heads, self.kv_heads);
        ensure!(
            q.shape()[2] % hq == 0 && v.shape()[2] % hkv == 0,
            "LinearAttention: head sizes do not divide"
        );
        let (dk, dv) = (q.shape()[2] / hq, v.shape()[2] / hkv);
        ensure!(
            k.shape() == [b, t, hkv * dk] && v.shape()[..2] == [b, t],
            "LinearAttention: key {:?} / value {:?} do not fit query {:?}",
            k.shape(),
            v.shape(),
            q.shape()
        );
        let (past, decay, beta) = self.slots();
        let mut state = match past {
            Some(p) => {
                let s = inputs[p]
                    .cast_to::<f32>()?
                    .to_plain_array_view::<f32>()?
                    .to_owned();
                ensure!(
                    s.shape() == [b, hkv, dk, dv],
                    "LinearAttention: past_state shape {:?}",
                    s.shape()
                );
                s.into_dimensionality()?
            }
            None => Array4::<f32>::zeros((b, hkv, dk, dv)),
        };
        let decay = decay.map(|d| f32_array3(&inputs[d], "decay")).transpose()?;
        if let Some(d) = &decay {
            ensure!(
                d.shape()[..2] == [b, t] && (d.shape()[2] == hkv || d.shape()[2] == hkv * dk),
                "LinearAttention: decay shape {:?}",
                d.shape()
            );
        }
        let beta = beta.map(|x| f32_array3(&inputs[x], "beta")).transpose()?;
        if let Some(x) = &beta {
            ensure!(
                x.shape()[..2] == [b, t] && (x.shape()[2] == hkv || x.shape()[2] == 1),
                "LinearAttention: beta shape {:?}",
                x.shape()
            );
        }
        let scale = f32::from_bits(self.scale);
        let scale = if scale == 0.0 {
            1.0 / (dk as f32).sqrt()
        } else {
            scale
        };
        let group = hq / hkv;
        let mut out = Array3::<f32>::zeros((b, t, hq * dv));
        let mut retrieved = vec![0f32; dv];
        for bi in 0..b {
            for ti in 0..t {
                for h in 0..hkv {
                    let mut s = state.slice_mut(tract_ndarray::s![bi, h, .., ..]);
                    if let Some(d) = &decay {
                        for i in 0..dk {
                            let g = if d.shape()[2] == hkv {
                                d[[bi, ti, h]]
                            } else {
                                d[[bi, ti, h * dk + i]]
                            };
                            s.row_mut(i).mapv_inplace(|x| x * g.exp());
                        }
                    }
                    let key = |i: usize| k[[bi, ti, h * dk + i]];
                    let mut val: Vec<f32> = (0..dv).map(|j| v[[bi, ti, h * dv + j]]).collect();
                    if let Some(x) = &beta {
                        let bt = x[[bi, ti, if x.shape()[2] == 1 { 0 } else { h }]];
                        for (j, r) in retrieved.iter_mut().enumerate() {
                            *r = (0..dk).map(|i| s[[i, j]] * key(i)).sum();
                        }
                        for (vj, r) in val.iter_mut().zip(&retrieved) {
                            *vj = bt * (*vj - r);
                        }
                    }
                    for i in 0..dk {
                        let ki = key(i);
                        for (j, vj) in val.iter().enumerate() {
                            s[[i, j]] += ki * vj;
                        }
                    }
                    for qh in h * group..(h + 1) * group {
                        for j in 0..dv {
                            let dot: f32 =
                                (0..dk).map(|i| q[[bi, ti, qh * dk + i]] * s[[i, j]]).sum();
                            out[[bi, ti, qh * dv + j]] = scale * dot;
                        }
                    }
                }
            }
        }
        let state_dt = past.map_or(inputs[0].datum_type(), |p| inputs[p].datum_type());
        Ok(tvec!(
            Tensor::from(out)
                .cast_to_dt(inputs[0].datum_type())?
                .into_owned()
                .into_tvalue(),
            Tensor::from(state)
                .cast_to_dt(state_dt)?
                .into_owned()
                .into_tvalue(),
        ))
    }
}

impl TypedOp for LinearAttention {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let (q, v) = (&inputs[0].shape, &inputs[2].shape);
        ensure!(
            q.rank() == 3 && v.rank() == 3,
            "LinearAttention: query and value must have rank 3"
        );
        let dk = q[2].clone() / self.q_heads as u64;
        let dv = v[2].clone() / self.kv_heads as u64;
        let out = inputs[0].datum_type.fact(tvec![
            q[0].clone(),
            q[1].clone(),
            dv.clone() * self.q_heads as u64
        ]);
        let state_dt = self
            .slots()
            .0
            .map_or(inputs[0].datum_type, |p| inputs[p].datum_type);
        let state = state_dt.fact(tvec![q[0].clone(), (self.kv_heads as u64).to_dim(), dk, dv]);
        Ok(tvec!(out, state))
    }

    as_op!();
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct CausalConv {
    silu: bool,
    bias: bool,
    past: bool,
}

fn causal_conv(node: &NodeProto) -> TractResult<CausalConv> {
    let silu = match node.get_attr_opt::<&str>("activation")?.unwrap_or("none") {
        "none" => false,
        "silu" | "swish" => true,
        other => bail!("CausalConvWithState: unknown activation {other:?}"),
    };
    Ok(CausalConv {
        silu,
        bias: present(node, 2),
        past: present(node, 3),
    })
}

impl Expansion for CausalConv {
    fn name(&self) -> StaticName {
        "CausalConvWithState".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2 + self.bias as usize + self.past as usize)?;
        check_output_arity(outputs, 2)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        s.equals(&outputs[1].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[1].rank, 3)?;
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

impl Op for CausalConv {
    fn name(&self) -> StaticName {
        "CausalConvWithState".into()
    }

    op_as_typed_op!();
}

impl EvalOp for CausalConv {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = f32_array3(&inputs[0], "input")?;
        let w = f32_array3(&inputs[1], "weight")?;
        let (b, c, l) = x.dim();
        let k = w.shape()[2];
        ensure!(
            k >= 1 && w.shape()[..2] == [c, 1],
            "CausalConvWithState: weight {:?} for {c} channels",
            w.shape()
        );
        let mut next = 2;
        let bias = if self.bias {
            next += 1;
            let v = inputs[2]
                .cast_to::<f32>()?
                .to_plain_array_view::<f32>()?
                .iter()
                .copied()
                .collect::<Vec<_>>();
            ensure!(
                v.len() == c,
                "CausalConvWithState: {} bias values for {c} channels",
                v.len()
            );
            v
        } else {
            vec![0.0; c]
        };
        let pad = if self.past {
            let p = f32_array3(&inputs[next], "past_state")?;
            ensure!(
                p.dim() == (b, c, k - 1),
                "CausalConvWithState: past_state {:?}",
                p.shape()
            );
            p
        } else {
            Array3::zeros((b, c, k - 1))
        };
        let padded = tract_ndarray::concatenate(Axis(2), &[pad.view(), x.view()])?;
        let mut y = Array3::<f32>::zeros((b, c, l));
        for ((bi, ci, t), out) in y.indexed_iter_mut() {
            let acc: f32 = (0..k)
                .map(|j| w[[ci, 0, j]] * padded[[bi, ci, t + j]])
                .sum::<f32>()
                + bias[ci];
            *out = if self.silu {
                acc / (1.0 + (-acc).exp())
            } else {
                acc
            };
        }
        let state: ArrayView3<f32> = padded.slice(tract_ndarray::s![.., .., l..]);
        let dt = inputs[0].datum_type();
        // The padded window is made of given values only: exact in the input's own type.
        Ok(tvec!(
            Tensor::from(y).cast_to_dt(dt)?.into_owned().into_tvalue(),
            Tensor::from(state.to_owned())
                .cast_to_dt(dt)?
                .into_owned()
                .into_tvalue(),
        ))
    }
}

impl TypedOp for CausalConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let (x, w) = (&inputs[0].shape, &inputs[1].shape);
        ensure!(
            x.rank() == 3 && w.rank() == 3,
            "CausalConvWithState: input and weight must have rank 3"
        );
        let state = tvec![x[0].clone(), x[1].clone(), w[2].clone() - 1];
        Ok(tvec!(
            inputs[0].datum_type.fact(x.clone()),
            inputs[0].datum_type.fact(state)
        ))
    }

    as_op!();
}
