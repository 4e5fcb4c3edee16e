//! Ops that only move elements, done on raw bytes so any (non-string) element type works:
//! `TensorScatter` (opset 24, the KV-cache update of attention decoders) and
//! `ReverseSequence` (bidirectional RNN exports). tract-onnx lacks both.
use tract_hir::internal::*;
use tract_onnx::model::OnnxOpRegister;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("TensorScatter", |_, node| {
        let circular = match node.get_attr_opt::<&str>("mode")?.unwrap_or("linear") {
            "linear" => false,
            "circular" => true,
            other => bail!("TensorScatter: unknown mode {other:?}"),
        };
        let op = TensorScatter {
            axis: node.get_attr_opt("axis")?.unwrap_or(-2),
            circular,
            indices: node.input.get(2).is_some_and(|s| !s.is_empty()),
        };
        Ok((expand(op), vec![]))
    });
    reg.insert("ReverseSequence", |_, node| {
        let op = ReverseSequence {
            batch_axis: node.get_attr_opt("batch_axis")?.unwrap_or(1),
            time_axis: node.get_attr_opt("time_axis")?.unwrap_or(0),
        };
        ensure!(
            matches!((op.batch_axis, op.time_axis), (0, 1) | (1, 0)),
            "ReverseSequence: batch_axis and time_axis must be 0 and 1"
        );
        Ok((expand(op), vec![]))
    });
}

fn plain_bytes(t: &Tensor) -> TractResult<&[u8]> {
    ensure!(
        t.datum_type() != DatumType::String && t.datum_type() != DatumType::TDim,
        "cannot move {:?} elements",
        t.datum_type()
    );
    Ok(t.try_as_plain_ram()?.as_bytes())
}

fn i64s(t: &Tensor) -> TractResult<Vec<i64>> {
    Ok(t.cast_to::<i64>()?
        .try_as_plain_ram()?
        .as_slice::<i64>()?
        .to_vec())
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct TensorScatter {
    axis: i64,
    circular: bool,
    indices: bool,
}

impl Expansion for TensorScatter {
    fn name(&self) -> StaticName {
        "TensorScatter".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2 + self.indices as usize)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&inputs[1].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
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

impl Op for TensorScatter {
    fn name(&self) -> StaticName {
        "TensorScatter".into()
    }

    op_as_typed_op!();
}

impl EvalOp for TensorScatter {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (past, update) = (&inputs[0], &inputs[1]);
        let shape = past.shape();
        let rank = shape.len() as i64;
        let axis = if self.axis < 0 {
            self.axis + rank
        } else {
            self.axis
        };
        ensure!(
            (1..rank).contains(&axis),
            "TensorScatter: axis {axis} must be a non-batch axis of rank {rank}"
        );
        let axis = axis as usize;
        let u = update.shape();
        ensure!(
            u.len() == shape.len()
                && (0..shape.len()).all(|a| a == axis || u[a] == shape[a])
                && u[axis] <= shape[axis],
            "TensorScatter: update {u:?} does not fit the cache {shape:?}"
        );
        let writes = if self.indices {
            i64s(&inputs[2])?
        } else {
            vec![0; shape[0]]
        };
        ensure!(
            writes.len() == shape[0],
            "TensorScatter: {} write indices for batch {}",
            writes.len(),
            shape[0]
        );
        let size = past.datum_type().size_of();
        let inner: usize = shape[axis + 1..].iter().product::<usize>() * size;
        let (max, len) = (shape[axis], u[axis]);
        let outer: usize = shape[..axis].iter().product();
        let per_batch = outer / shape[0].max(1);
        let mut out = plain_bytes(past)?.to_vec();
        let src = plain_bytes(update)?;
        for o in 0..outer {
            let w = writes[o / per_batch.max(1)];
            for s in 0..len {
                let mut at = w + s as i64;
                if self.circular {
                    at = at.rem_euclid(max as i64);
                }
                ensure!(
                    (0..max as i64).contains(&at),
                    "TensorScatter: write position {at} outside 0..{max}"
                );
                let to = (o * max + at as usize) * inner;
                let from = (o * len + s) * inner;
                out[to..to + inner].copy_from_slice(&src[from..from + inner]);
            }
        }
        // Safety: the bytes of a tensor of this type and shape (the cache's, rewritten).
        let t = unsafe { Tensor::from_raw_dt(past.datum_type(), shape, &out)? };
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for TensorScatter {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].without_value()))
    }

    as_op!();
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct ReverseSequence {
    batch_axis: i64,
    time_axis: i64,
}

impl Expansion for ReverseSequence {
    fn name(&self) -> StaticName {
        "ReverseSequence".into()
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
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
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

impl Op for ReverseSequence {
    fn name(&self) -> StaticName {
        "ReverseSequence".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ReverseSequence {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let shape = x.shape();
        ensure!(shape.len() >= 2, "ReverseSequence: rank must be at least 2");
        let lens = i64s(&inputs[1])?;
        let (b_axis, t_axis) = (self.batch_axis as usize, self.time_axis as usize);
        ensure!(
            lens.len() == shape[b_axis],
            "ReverseSequence: {} lengths for batch {}",
            lens.len(),
            shape[b_axis]
        );
        let size = x.datum_type().size_of();
        let inner: usize = shape[2..].iter().product::<usize>() * size;
        let src = plain_bytes(x)?;
        let mut out = src.to_vec();
        for i in 0..shape[0] {
            for j in 0..shape[1] {
                let (b, t) = if b_axis == 0 { (i, j) } else { (j, i) };
                let len = lens[b];
                ensure!(
                    (0..=shape[t_axis] as i64).contains(&len),
                    "ReverseSequence: length {len} outside 0..={}",
                    shape[t_axis]
                );
                if (t as i64) < len {
                    let from_t = len as usize - 1 - t;
                    let (fi, fj) = if b_axis == 0 {
                        (b, from_t)
                    } else {
                        (from_t, b)
                    };
                    let to = (i * shape[1] + j) * inner;
                    let from = (fi * shape[1] + fj) * inner;
                    out[to..to + inner].copy_from_slice(&src[from..from + inner]);
                }
            }
        }
        // Safety: a permutation of the input's own elements, same type and shape.
        let t = unsafe { Tensor::from_raw_dt(x.datum_type(), shape, &out)? };
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for ReverseSequence {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].without_value()))
    }

    as_op!();
}
