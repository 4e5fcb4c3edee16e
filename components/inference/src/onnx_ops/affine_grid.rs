//! `AffineGrid` (opset 20): the sampling grid of an affine transform, what spatial
//! transformer networks feed to `GridSample` (which tract has). tract-onnx lacks it.
use tract_hir::internal::*;
use tract_ndarray::{ArrayD, Dimension, IxDyn};
use tract_onnx::model::OnnxOpRegister;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("AffineGrid", |_, node| {
        let align = node.get_attr_opt::<i64>("align_corners")?.unwrap_or(0) != 0;
        Ok((
            expand(AffineGrid {
                align,
                size: vec![],
            }),
            vec![],
        ))
    });
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct AffineGrid {
    align: bool,
    /// The output size (N, C, [D,] H, W), from the constant `size` input once wired.
    size: Vec<usize>,
}

impl Expansion for AffineGrid {
    fn name(&self) -> StaticName {
        "AffineGrid".into()
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
        s.given(&inputs[1].value, move |s, size| {
            let size = size.cast_to::<i64>()?;
            let size = size.try_as_plain_ram()?.as_slice::<i64>()?.to_vec();
            ensure!(
                size.len() == 4 || size.len() == 5,
                "AffineGrid: size must have 4 or 5 values"
            );
            let mut out: TVec<TDim> = tvec![size[0].to_dim()];
            out.extend(size[2..].iter().map(|d| d.to_dim()));
            out.push(((size.len() - 2) as i64).to_dim());
            s.equals(&outputs[0].shape, out)
        })?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let size = model
            .outlet_fact(inputs[1])?
            .konst
            .clone()
            .context("AffineGrid: the size must be known before running")?
            .cast_to::<i64>()?
            .into_owned();
        let size = size.try_as_plain_ram()?.as_slice::<i64>()?.to_vec();
        ensure!(
            (size.len() == 4 || size.len() == 5) && size.iter().all(|&d| d > 0),
            "AffineGrid: bad size {size:?}"
        );
        let op = AffineGrid {
            align: self.align,
            size: size.iter().map(|&d| d as usize).collect(),
        };
        model.wire_node(prefix, op, &[inputs[0]])
    }
}

impl Op for AffineGrid {
    fn name(&self) -> StaticName {
        "AffineGrid".into()
    }

    op_as_typed_op!();
}

impl EvalOp for AffineGrid {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let theta = inputs[0]
            .cast_to::<f32>()?
            .to_plain_array_view::<f32>()?
            .to_owned();
        let spatial = &self.size[2..];
        let r = spatial.len();
        ensure!(
            theta.shape() == [self.size[0], r, r + 1],
            "AffineGrid: theta {:?} for size {:?}",
            theta.shape(),
            self.size
        );
        // Normalised coordinates along each axis, from -1 to 1.
        let axis = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    if self.align {
                        if n == 1 {
                            -1.0
                        } else {
                            -1.0 + 2.0 * i as f32 / (n - 1) as f32
                        }
                    } else {
                        -1.0 + (2 * i + 1) as f32 / n as f32
                    }
                })
                .collect()
        };
        let coords: Vec<Vec<f32>> = spatial.iter().map(|&n| axis(n)).collect();
        let mut shape = vec![self.size[0]];
        shape.extend_from_slice(spatial);
        shape.push(r);
        let mut grid = ArrayD::<f32>::zeros(IxDyn(&shape));
        for (ix, out) in grid.indexed_iter_mut() {
            let ix = ix.slice();
            let (n, pos, row) = (ix[0], &ix[1..=r], ix[r + 1]);
            // Homogeneous point (x, y[, z], 1): x is the last spatial axis.
            let mut v = theta[[n, row, r]];
            for c in 0..r {
                v += theta[[n, row, c]] * coords[r - 1 - c][pos[r - 1 - c]];
            }
            *out = v;
        }
        Ok(tvec!(Tensor::from(grid)
            .cast_to_dt(inputs[0].datum_type())?
            .into_owned()
            .into_tvalue()))
    }
}

impl TypedOp for AffineGrid {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape: TVec<usize> = tvec![self.size[0]];
        shape.extend(self.size[2..].iter().copied());
        shape.push(self.size.len() - 2);
        Ok(tvec!(inputs[0].datum_type.fact(shape)))
    }

    as_op!();
}
