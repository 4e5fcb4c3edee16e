//! `ConvTranspose`, checked before tract-onnx builds it. tract computes the output geometry in
//! unsigned arithmetic from the attributes and the input shapes, trusting both: an
//! `output_shape` smaller than the strides allow, pads wider than the output, a zero-sized
//! axis or attribute lists of the wrong length make it underflow or index out of bounds (a
//! panic, which is a trap in wasm; fuzzer finding
//! tests/fuzz-regressions/onnx-conv-transpose-output-shape-too-small.onnx). Consistent
//! geometries go to tract's own operator unchanged.
use tract_hir::internal::*;
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("ConvTranspose", conv_transpose);
}

fn conv_transpose(ctx: &ParsingContext, node: &NodeProto) -> super::Built {
    let geometry = Geometry::parse(node)?;
    let (tract, extra) = super::tract_expansion(ctx, node)?;
    Ok((expand(Checked { geometry, tract }), extra))
}

/// How tract reads the padding (tract-onnx's `pad`): `pads` wins over `auto_pad`; without
/// either, explicit zeros if `kernel_shape` is given, else valid.
#[derive(Debug, Clone, PartialEq)]
enum Padding {
    Explicit(Vec<usize>),
    Valid,
    Same,
}

/// The attributes tract's geometry arithmetic reads, checked for sign when parsed and against
/// the shapes when those are known.
#[derive(Debug, Clone)]
struct Geometry {
    node: String,
    strides: Option<Vec<usize>>,
    dilations: Option<Vec<usize>>,
    kernel_shape: Option<Vec<usize>>,
    output_padding: Option<Vec<usize>>,
    output_shape: Option<Vec<usize>>,
    padding: Padding,
    group: usize,
}

fn non_negative(node: &NodeProto, name: &str, min: i64) -> TractResult<Option<Vec<usize>>> {
    let Some(values) = node.get_attr_opt_vec::<i64>(name)? else {
        return Ok(None);
    };
    if let Some(v) = values.iter().find(|&&v| v < min) {
        bail!(
            "ConvTranspose node \"{}\": {name} {values:?} has {v}, below {min}",
            node.name
        );
    }
    Ok(Some(values.iter().map(|&v| v as usize).collect()))
}

impl Geometry {
    fn parse(node: &NodeProto) -> TractResult<Geometry> {
        let kernel_shape = non_negative(node, "kernel_shape", 1)?;
        let padding = match non_negative(node, "pads", 0)? {
            Some(pads) => {
                ensure!(
                    pads.len().is_multiple_of(2),
                    "ConvTranspose node \"{}\": {} pads, not a begin and an end per axis",
                    node.name,
                    pads.len()
                );
                Padding::Explicit(pads)
            }
            None => match node.get_attr_opt::<&str>("auto_pad")?.unwrap_or("NOTSET") {
                "NOTSET" => match &kernel_shape {
                    Some(k) => Padding::Explicit(vec![0; 2 * k.len()]),
                    None => Padding::Valid,
                },
                "VALID" => Padding::Valid,
                "SAME_UPPER" | "SAME_LOWER" => Padding::Same,
                other => bail!(
                    "ConvTranspose node \"{}\": unknown auto_pad {other:?}",
                    node.name
                ),
            },
        };
        let group = node.get_attr_opt::<i64>("group")?.unwrap_or(1);
        ensure!(
            group >= 1,
            "ConvTranspose node \"{}\": group {group} is not positive",
            node.name
        );
        Ok(Geometry {
            node: node.name.clone(),
            strides: non_negative(node, "strides", 1)?,
            dilations: non_negative(node, "dilations", 1)?,
            kernel_shape,
            output_padding: non_negative(node, "output_padding", 0)?,
            output_shape: non_negative(node, "output_shape", 1)?,
            padding,
            group: group as usize,
        })
    }

    /// Whether tract can build this node for an input of rank `x_rank` with spatial axes `xs`
    /// and weights `w` (C x M/group x kernel): every step of its arithmetic stays in range.
    /// Besides those, the spec's own rules tract does not check (positive strides, dilations
    /// and group; channels divisible by the group).
    fn check(&self, x_rank: usize, xs: &[usize], w: &[usize]) -> TractResult<()> {
        let name = &self.node;
        ensure!(
            x_rank >= 3 && x_rank == w.len(),
            "ConvTranspose node \"{name}\": input of rank {x_rank} and weights of rank {}; both need a batch, a channel and at least one spatial axis",
            w.len()
        );
        let rank = x_rank - 2;
        let ks = &w[2..];
        let lists = [
            ("strides", &self.strides),
            ("dilations", &self.dilations),
            ("kernel_shape", &self.kernel_shape),
            ("output_padding", &self.output_padding),
            ("output_shape", &self.output_shape),
        ];
        for (attr, list) in lists {
            if let Some(list) = list {
                ensure!(
                    list.len() == rank,
                    "ConvTranspose node \"{name}\": {attr} {list:?} for {rank} spatial axes"
                );
            }
        }
        if let Padding::Explicit(pads) = &self.padding {
            ensure!(
                pads.len() == 2 * rank,
                "ConvTranspose node \"{name}\": {} pads for {rank} spatial axes",
                pads.len()
            );
        }
        if let Some(k) = &self.kernel_shape {
            ensure!(
                k.as_slice() == ks,
                "ConvTranspose node \"{name}\": kernel_shape {k:?}, but the weights are {w:?}"
            );
        }
        ensure!(
            xs.iter().chain(ks).all(|&d| d >= 1),
            "ConvTranspose node \"{name}\": input spatial axes {xs:?} or weights {w:?} has an empty spatial axis"
        );
        ensure!(
            w[0].is_multiple_of(self.group),
            "ConvTranspose node \"{name}\": {} input channels in {} groups",
            w[0],
            self.group
        );
        let at = |list: &Option<Vec<usize>>, i: usize, default: usize| {
            list.as_ref().map_or(default, |l| l[i])
        };
        for i in 0..rank {
            let (s, d) = (at(&self.strides, i, 1), at(&self.dilations, i, 1));
            // The output the input, kernel and strides span before padding: s(x-1) + d(k-1) + 1.
            let natural = s
                .checked_mul(xs[i] - 1)
                .zip(d.checked_mul(ks[i] - 1))
                .and_then(|(a, b)| a.checked_add(b)?.checked_add(1))
                .with_context(|| {
                    format!("ConvTranspose node \"{name}\": axis {i} overflows ({s}, {d}, {xs:?}, {w:?})")
                })?;
            let (before, after) = match &self.padding {
                Padding::Explicit(p) => (p[i], p[rank + i]),
                _ => (0, 0),
            };
            let pads = before.saturating_add(after);
            if let Some(y) = &self.output_shape {
                // tract keeps the given pads and adds the difference at the end.
                ensure!(
                    self.padding != Padding::Same,
                    "ConvTranspose node \"{name}\": output_shape with SAME auto_pad is not supported"
                );
                ensure!(
                    y[i].saturating_add(pads) >= natural,
                    "ConvTranspose node \"{name}\": output_shape {y:?} is smaller on axis {i} than input spatial axes {xs:?}, weights {w:?}, strides and pads give ({natural}); padding to fit an output_shape is not supported"
                );
            } else {
                let adjustment = at(&self.output_padding, i, 0);
                match self.padding {
                    Padding::Explicit(_) => ensure!(
                        natural > pads,
                        "ConvTranspose node \"{name}\": pads {before} + {after} on axis {i} leave no output of {natural}"
                    ),
                    Padding::Same => ensure!(
                        adjustment < xs[i].saturating_mul(s),
                        "ConvTranspose node \"{name}\": output_padding {adjustment} on axis {i} is wider than the output"
                    ),
                    Padding::Valid => {}
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Checked {
    geometry: Geometry,
    tract: Box<dyn Expansion>,
}

fn concrete(shape: &[TDim]) -> Option<Vec<usize>> {
    shape.iter().map(|d| d.to_usize().ok()).collect()
}

impl Checked {
    /// Checks the geometry where the input's spatial axes and the weights are known numbers
    /// (tract's arithmetic on symbols cannot underflow; batch and channels play no part).
    fn check(&self, x: &[TDim], w: &[TDim]) -> TractResult<()> {
        match (concrete(x.get(2..).unwrap_or_default()), concrete(w)) {
            (Some(xs), Some(w)) => self.geometry.check(x.len(), &xs, &w),
            _ => Ok(()),
        }
    }
}

impl Expansion for Checked {
    fn name(&self) -> StaticName {
        "ConvTranspose".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        ensure!(
            inputs.len() >= 2,
            "ConvTranspose needs an input and weights"
        );
        // Registered before tract's rules, so it runs first once both shapes are known.
        s.given_2(&inputs[0].shape, &inputs[1].shape, move |_, x, w| {
            self.check(&x, &w)
        })?;
        self.tract.rules(s, inputs, outputs)
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let x = model.outlet_fact(inputs[0])?.shape.to_tvec();
        let w = model.outlet_fact(inputs[1])?.shape.to_tvec();
        self.check(&x, &w)?;
        self.tract.wire(prefix, model, inputs)
    }
}
