//! `LpPool`: the p-norm over each window, `(Σ|x|^p)^(1/p)`. tract-onnx lacks it; it is tract's
//! sum pooling between two powers, so windows, pads, strides and dilations are tract's own.
use tract_hir::internal::*;
use tract_hir::ops::cnn::{HirSumPool, PaddingSpec, PoolSpec};
use tract_hir::ops::nn::DataFormat;
use tract_hir::tract_core::ops::math::{abs, pow};
use tract_onnx::model::OnnxOpRegister;
use tract_onnx::pb::NodeProto;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("LpPool", |_, node| Ok((expand(lp_pool(node)?), vec![])));
}

fn lp_pool(node: &NodeProto) -> TractResult<LpPool> {
    let kernel: TVec<usize> = node.get_attr_tvec("kernel_shape")?;
    let n = kernel.len();
    let ceil = node.get_attr_opt::<i64>("ceil_mode")?.unwrap_or(0) == 1;
    let padding = if let Some(pads) = node.get_attr_opt_tvec::<usize>("pads")? {
        ensure!(
            pads.len() == 2 * n,
            "LpPool: {} pads for {n} spatial axes",
            pads.len()
        );
        PaddingSpec::ExplicitOnnxPool(pads[..n].into(), pads[n..].into(), ceil)
    } else {
        match node.get_attr_opt::<&str>("auto_pad")?.unwrap_or("NOTSET") {
            "NOTSET" => PaddingSpec::ExplicitOnnxPool(tvec![0; n], tvec![0; n], ceil),
            "VALID" => PaddingSpec::Valid,
            "SAME_UPPER" => PaddingSpec::SameUpper,
            "SAME_LOWER" => PaddingSpec::SameLower,
            other => bail!("LpPool: unknown auto_pad {other:?}"),
        }
    };
    let strides = node.get_attr_opt_tvec::<usize>("strides")?;
    let dilations = node.get_attr_opt_tvec::<usize>("dilations")?;
    let spec = PoolSpec::new(DataFormat::NCHW, kernel, padding, dilations, strides, 0, 0);
    let p = node.get_attr_opt::<i64>("p")?.unwrap_or(2);
    ensure!(p > 0, "LpPool: p must be positive, got {p}");
    Ok(LpPool {
        sum: HirSumPool::new(spec, false, false),
        p,
    })
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct LpPool {
    sum: HirSumPool,
    p: i64,
}

impl Expansion for LpPool {
    fn name(&self) -> StaticName {
        "LpPool".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        self.sum.rules(s, inputs, outputs)
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let fact = model.outlet_fact(inputs[0])?.clone();
        let power =
            |model: &mut TypedModel, name: &str, wire: OutletId, e: f64| -> TractResult<OutletId> {
                let e = tensor0(e)
                    .cast_to_dt(fact.datum_type)?
                    .into_owned()
                    .broadcast_into_rank(fact.rank())?;
                let e = model.add_const(format!("{prefix}.{name}.exponent"), e)?;
                Ok(model.wire_node(format!("{prefix}.{name}"), pow(), &[wire, e])?[0])
            };
        let wire = model.wire_node(format!("{prefix}.abs"), abs(), &[inputs[0]])?[0];
        let wire = power(model, "pow", wire, self.p as f64)?;
        let wire = self.sum.wire(&format!("{prefix}.sum"), model, &[wire])?[0];
        Ok(tvec!(power(model, "root", wire, 1.0 / self.p as f64)?))
    }
}
