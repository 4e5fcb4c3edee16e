//! com.microsoft `MatMulNBits` (what transformers.js ships as `q4`) with its scales kept exact.
//!
//! `Y = A @ dequant(B)^T (+ bias)`, with B in blocks of `block_size` codes of `bits` bits along
//! K, each block with its own scale and zero point: `w = (code - zero) * scale`. tract-onnx
//! keeps 4-bit blocks of 32 in its own Q4_0 format, which stores each scale as f16: logits move
//! by ~5e-3 against onnxruntime. Here the weight is dequantized once, at planning, to an f32
//! `[N, K]` constant with the scales as the model gives them, and multiplied by tract's f32
//! matmul, as onnxruntime's CPU kernel computes it (accuracy_level 0). The price is memory: 4
//! bytes per weight in the plan instead of about 0.56. Registered through tract-onnx's operator
//! register, replacing its MatMulNBits.
use crate::error::{NnError, NnResult};
use crate::limits::Limits;
use tract_hir::internal::*;
use tract_hir::ops::logic::wire_with_rank_broadcast;
use tract_hir::tract_core::ops::cast::cast;
use tract_hir::tract_core::ops::einsum::EinSum;
use tract_hir::tract_core::ops::math::add;
use tract_onnx::model::{optional_inputs, OnnxOpRegister, ParsingContext};
use tract_onnx::pb::{GraphProto, ModelProto, NodeProto};

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("MatMulNBits", matmul_nbits);
}

/// Refuses, before anything is allocated, a MatMulNBits whose f32 weight would pass the
/// tensor size limit (N and K are attributes: a model can claim any).
pub fn check(model: &ModelProto, limits: &Limits) -> NnResult<()> {
    fn in_graph(graph: &GraphProto, limits: &Limits) -> NnResult<()> {
        for node in &graph.node {
            if node.op_type == "MatMulNBits" {
                let attr = |name: &str| {
                    node.attribute
                        .iter()
                        .find(|a| a.name == name)
                        .map_or(0, |a| a.i)
                };
                let (n, k) = (attr("N"), attr("K"));
                let elements = (n.max(0) as u128) * (k.max(0) as u128);
                if elements > limits.max_tensor_elements as u128 {
                    return Err(NnError::too_large(format!(
                        "MatMulNBits node \"{}\": its weight, N {n} x K {k}, would be more than the limit of {} elements",
                        node.name, limits.max_tensor_elements
                    )));
                }
            }
            for attr in &node.attribute {
                for sub in attr.g.iter().chain(&attr.graphs) {
                    in_graph(sub, limits)?;
                }
            }
        }
        Ok(())
    }
    match &model.graph {
        Some(g) => in_graph(g, limits),
        None => Ok(()),
    }
}

fn matmul_nbits(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let k: i64 = node.get_attr("K")?;
    let n: i64 = node.get_attr("N")?;
    let bits: i64 = node.get_attr_opt("bits")?.unwrap_or(4);
    let block_size: i64 = node.get_attr("block_size")?;
    ensure!(
        matches!(bits, 2 | 4 | 8),
        "MatMulNBits with bits = {bits} is not supported (2, 4 and 8 are)"
    );
    ensure!(
        k > 0 && n > 0,
        "MatMulNBits: K ({k}) and N ({n}) must be positive"
    );
    ensure!(
        block_size > 0 && (block_size * bits) % 8 == 0,
        "MatMulNBits: block_size {block_size} does not fill whole bytes of {bits}-bit codes"
    );
    // Inputs: A, B, scales, then zero_points, g_idx and bias, each optional.
    let mut optional = optional_inputs(node).skip(3);
    let zero_points = optional.next().flatten();
    let g_idx = optional.next().flatten();
    let bias = optional.next().flatten();
    ensure!(
        g_idx.is_none(),
        "MatMulNBits with g_idx (act-order) is not supported"
    );
    Ok((
        expand(MatMulNBits {
            k: k as usize,
            n: n as usize,
            bits: bits as usize,
            block_size: block_size as usize,
            zero_points,
            bias,
        }),
        vec![],
    ))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct MatMulNBits {
    k: usize,
    n: usize,
    bits: usize,
    block_size: usize,
    zero_points: Option<usize>,
    bias: Option<usize>,
}

impl MatMulNBits {
    /// The weight `[N, K]` in f32: `(code - zero) * scale`, codes little end first in each byte.
    fn dequantize(
        &self,
        b: &Tensor,
        scales: &Tensor,
        zeros: Option<&Tensor>,
    ) -> TractResult<Tensor> {
        let (k, n, bits, block) = (self.k, self.n, self.bits, self.block_size);
        let blocks = k.div_ceil(block);
        let per_byte = 8 / bits;
        let blob = block / per_byte;
        let mask = ((1u16 << bits) - 1) as u8;
        let code = |bytes: &[u8], i: usize| (bytes[i / per_byte] >> (bits * (i % per_byte))) & mask;

        ensure!(
            b.datum_type() == u8::datum_type() && b.len() == n * blocks * blob,
            "MatMulNBits: B must be u8 [N {n}, blocks {blocks}, {blob}], got {:?} {:?}",
            b.datum_type(),
            b.shape()
        );
        let b = b.try_as_plain_ram()?;
        let b = b.as_slice::<u8>()?;
        ensure!(
            scales.len() == n * blocks,
            "MatMulNBits: scales must have N x blocks = {} values, got {}",
            n * blocks,
            scales.len()
        );
        let scales = scales.cast_to::<f32>()?;
        let scales = scales.try_as_plain_ram()?;
        let scales = scales.as_slice::<f32>()?;
        // Zero points: packed like B, each column starting on a byte; absent, the middle code.
        let zero_bytes = blocks.div_ceil(per_byte);
        let zeros = match zeros {
            None => None,
            Some(z) if z.datum_type() == u8::datum_type() => {
                ensure!(
                    z.len() == n * zero_bytes,
                    "MatMulNBits: zero_points must have {} bytes, got {}",
                    n * zero_bytes,
                    z.len()
                );
                Some(z.try_as_plain_ram()?)
            }
            Some(z) => bail!(
                "MatMulNBits with {:?} zero points is not supported (u8 zero points are)",
                z.datum_type()
            ),
        };
        let zeros = zeros.as_ref().map(|z| z.as_slice::<u8>()).transpose()?;
        let middle = (1u16 << (bits - 1)) as f32;

        let mut w = vec![0f32; n * k];
        for (col, row) in w.chunks_exact_mut(k).enumerate() {
            let codes = &b[col * blocks * blob..(col + 1) * blocks * blob];
            for (blk, values) in row.chunks_mut(block).enumerate() {
                let scale = scales[col * blocks + blk];
                let zero = match zeros {
                    Some(z) => code(&z[col * zero_bytes..(col + 1) * zero_bytes], blk) as f32,
                    None => middle,
                };
                let block_codes = &codes[blk * blob..(blk + 1) * blob];
                for (i, v) in values.iter_mut().enumerate() {
                    *v = (code(block_codes, i) as f32 - zero) * scale;
                }
            }
        }
        Tensor::from_shape(&[n, k], &w)
    }
}

impl Expansion for MatMulNBits {
    fn name(&self) -> StaticName {
        "MatMulNBits".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(
            inputs,
            3 + self.zero_points.is_some() as usize + self.bias.is_some() as usize,
        )?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[0].rank, &inputs[0].rank)?;
        let (k, n) = (self.k.to_dim(), self.n.to_dim());
        s.given(&inputs[0].rank, move |s, rank| {
            ensure!(rank >= 1, "MatMulNBits: A must have at least one dimension");
            let last = rank as usize - 1;
            for ax in 0..last {
                s.equals(&outputs[0].shape[ax], &inputs[0].shape[ax])?;
            }
            s.equals(&inputs[0].shape[last], k.clone())?;
            s.equals(&outputs[0].shape[last], n.clone())
        })?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let konst = |ix: usize, what: &str| -> TractResult<Arc<Tensor>> {
            model
                .outlet_fact(inputs[ix])?
                .konst
                .clone()
                .with_context(|| format!("MatMulNBits: {what} must be a constant"))
        };
        let b = konst(1, "the quantized weight B")?;
        let scales = konst(2, "the scales")?;
        let zeros = self
            .zero_points
            .map(|z| konst(z, "the zero points"))
            .transpose()?;
        let weight = self.dequantize(&b, &scales, zeros.as_deref())?;
        let weight = model.add_const(format!("{prefix}.weight"), weight)?;

        let a_fact = model.outlet_fact(inputs[0])?.clone();
        let rank = a_fact.rank();
        ensure!(rank <= 8, "MatMulNBits: A has rank {rank}, more than 8");
        let mut a = inputs[0];
        if a_fact.datum_type != f32::datum_type() {
            a = model.wire_node(format!("{prefix}.a_f32"), cast(f32::datum_type()), &[a])?[0];
        }
        let lead: String = "abcdefgh".chars().take(rank - 1).collect();
        let axes = AxesMapping::from_strs(
            &[format!("{lead}k"), "nk".to_string()],
            &[format!("{lead}n")],
        )?;
        let mut y = model.wire_node(
            format!("{prefix}.matmul"),
            EinSum::new(axes, f32::datum_type()),
            &[a, weight],
        )?[0];
        if a_fact.datum_type != f32::datum_type() {
            y = model.wire_node(format!("{prefix}.y"), cast(a_fact.datum_type), &[y])?[0];
        }
        if let Some(bias) = self.bias {
            y = wire_with_rank_broadcast(
                format!("{prefix}.bias"),
                model,
                add(),
                &[y, inputs[bias]],
            )?[0];
        }
        Ok(tvec!(y))
    }
}
