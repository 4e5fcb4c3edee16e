//! Convolutions and pools, checked for a spatial axis before tract-onnx builds them. tract's
//! data-format code takes the input's axes after batch and channels as the spatial ones and,
//! given none (a rank-2 input), computes `hw_rank - 1` and reads a stride with `get_unchecked`
//! at that index: a panic where overflow is checked, an out-of-bounds read where it is not
//! (tests/fuzz-regressions/onnx-conv-rank2.onnx, onnx-maxpool-rank2.onnx). With a spatial axis,
//! the node is tract's own operator unchanged.
use tract_hir::internal::*;
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;

/// The operators whose first input is N x C x spatial... in tract-onnx.
const SPATIAL: [&str; 4] = ["Conv", "ConvInteger", "MaxPool", "AveragePool"];

pub fn register(reg: &mut OnnxOpRegister) {
    for op in SPATIAL {
        reg.insert(op, spatial);
    }
}

fn spatial(ctx: &ParsingContext, node: &NodeProto) -> super::Built {
    let (tract, extra) = super::tract_expansion(ctx, node)?;
    let op = NeedsSpatialAxis {
        op: node.op_type.clone(),
        node: node.name.clone(),
        tract,
    };
    Ok((expand(op), extra))
}

#[derive(Debug, Clone)]
struct NeedsSpatialAxis {
    op: String,
    node: String,
    tract: Box<dyn Expansion>,
}

impl NeedsSpatialAxis {
    fn check(&self, rank: usize) -> TractResult<()> {
        ensure!(
            rank >= 3,
            "{} node \"{}\": an input of rank {rank}; it needs a batch, a channel and at least one spatial axis",
            self.op,
            self.node
        );
        Ok(())
    }
}

impl Expansion for NeedsSpatialAxis {
    fn name(&self) -> StaticName {
        Expansion::name(&*self.tract)
    }

    fn validation(&self) -> Validation {
        Expansion::validation(&*self.tract)
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Expansion::info(&*self.tract)
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Expansion::nboutputs(&*self.tract)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        ensure!(!inputs.is_empty(), "{} needs an input", self.op);
        // Registered before tract's rules, so it runs first once the rank is known.
        s.given(&inputs[0].rank, move |_, rank| self.check(rank as usize))?;
        self.tract.rules(s, inputs, outputs)
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        self.check(model.outlet_fact(inputs[0])?.rank())?;
        self.tract.wire(prefix, model, inputs)
    }
}
