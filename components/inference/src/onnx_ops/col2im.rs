//! `Col2Im` (opset 18): sums sliding blocks back into an image, the inverse of an unfold
//! (`torch.nn.Fold`). tract-onnx lacks it. N-dimensional, as onnx defines it.
use tract_hir::internal::*;
use tract_ndarray::{ArrayD, IxDyn};
use tract_onnx::model::OnnxOpRegister;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("Col2Im", |_, node| {
        let op = Col2Im {
            dilations: node.get_attr_opt_vec::<i64>("dilations")?,
            pads: node.get_attr_opt_vec::<i64>("pads")?,
            strides: node.get_attr_opt_vec::<i64>("strides")?,
            image: vec![],
            block: vec![],
        };
        Ok((expand(op), vec![]))
    });
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Col2Im {
    dilations: Option<Vec<i64>>,
    pads: Option<Vec<i64>>,
    strides: Option<Vec<i64>>,
    /// From the constant `image_shape` and `block_shape` inputs, once wired.
    image: Vec<usize>,
    block: Vec<usize>,
}

fn konst_dims(model: &TypedModel, outlet: OutletId, what: &str) -> TractResult<Vec<usize>> {
    let t = model
        .outlet_fact(outlet)?
        .konst
        .clone()
        .with_context(|| format!("Col2Im: {what} must be known before running"))?
        .cast_to::<i64>()?
        .into_owned();
    t.try_as_plain_ram()?
        .as_slice::<i64>()?
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format_err!("Col2Im: negative {what} {d}")))
        .collect()
}

impl Expansion for Col2Im {
    fn name(&self) -> StaticName {
        "Col2Im".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 3)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let image = konst_dims(model, inputs[1], "image_shape")?;
        let block = konst_dims(model, inputs[2], "block_shape")?;
        ensure!(
            image.len() == block.len() && !image.is_empty(),
            "Col2Im: image_shape and block_shape differ in length"
        );
        let op = Col2Im {
            image,
            block,
            ..self.clone()
        };
        model.wire_node(prefix, op, &[inputs[0]])
    }
}

impl Op for Col2Im {
    fn name(&self) -> StaticName {
        "Col2Im".into()
    }

    op_as_typed_op!();
}

impl Col2Im {
    fn attr(v: &Option<Vec<i64>>, i: usize, default: i64) -> i64 {
        v.as_ref()
            .and_then(|v| v.get(i).copied())
            .unwrap_or(default)
    }
}

impl EvalOp for Col2Im {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = inputs[0]
            .cast_to::<f64>()?
            .to_plain_array_view::<f64>()?
            .to_owned();
        ensure!(x.ndim() == 3, "Col2Im: input must be (N, C*prod(block), L)");
        let r = self.image.len();
        let kernel: usize = self.block.iter().product();
        let (n, ck, l) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        ensure!(
            kernel > 0 && ck % kernel == 0,
            "Col2Im: {ck} is not a multiple of the block size {kernel}"
        );
        let c = ck / kernel;
        let (dil, stride) = (
            |i| Self::attr(&self.dilations, i, 1),
            |i| Self::attr(&self.strides, i, 1),
        );
        ensure!(
            (0..r).all(|i| dil(i) > 0 && stride(i) > 0),
            "Col2Im: dilations and strides must be positive"
        );
        let (pad_begin, pad_end) = (
            |i| Self::attr(&self.pads, i, 0),
            |i| Self::attr(&self.pads, i + r, 0),
        );
        let blocks: Vec<i64> = (0..r)
            .map(|i| {
                (self.image[i] as i64 + pad_begin(i) + pad_end(i)
                    - dil(i) * (self.block[i] as i64 - 1)
                    - 1)
                    / stride(i)
                    + 1
            })
            .collect();
        ensure!(
            blocks.iter().all(|&b| b >= 1) && blocks.iter().product::<i64>() == l as i64,
            "Col2Im: {l} blocks given, the shapes make {blocks:?}"
        );
        let mut shape = vec![n, c];
        shape.extend_from_slice(&self.image);
        let mut out = ArrayD::<f64>::zeros(IxDyn(&shape));
        let unravel = |mut i: usize, dims: &[usize]| -> Vec<usize> {
            let mut v = vec![0; dims.len()];
            for d in (0..dims.len()).rev() {
                v[d] = i % dims[d];
                i /= dims[d];
            }
            v
        };
        let block_dims: Vec<usize> = blocks.iter().map(|&b| b as usize).collect();
        let mut pos = vec![0usize; r + 2];
        for b in 0..n {
            for row in 0..ck {
                let (ch, koff) = (row / kernel, unravel(row % kernel, &self.block));
                for col in 0..l {
                    let bpos = unravel(col, &block_dims);
                    let mut inside = true;
                    for i in 0..r {
                        let p = bpos[i] as i64 * stride(i) - pad_begin(i) + koff[i] as i64 * dil(i);
                        inside &= (0..self.image[i] as i64).contains(&p);
                        pos[i + 2] = p.max(0) as usize;
                    }
                    if inside {
                        pos[0] = b;
                        pos[1] = ch;
                        out[IxDyn(&pos)] += x[[b, row, col]];
                    }
                }
            }
        }
        Ok(tvec!(Tensor::from(out)
            .cast_to_dt(inputs[0].datum_type())?
            .into_owned()
            .into_tvalue()))
    }
}

impl TypedOp for Col2Im {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let x = &inputs[0].shape;
        ensure!(x.rank() == 3, "Col2Im: input must have rank 3");
        let kernel: usize = self.block.iter().product();
        let mut shape: TVec<TDim> = tvec![x[0].clone(), x[1].clone() / kernel.max(1) as u64];
        shape.extend(self.image.iter().map(|d| d.to_dim()));
        Ok(tvec!(inputs[0].datum_type.fact(shape)))
    }

    as_op!();
}
