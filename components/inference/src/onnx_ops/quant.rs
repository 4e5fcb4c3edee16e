//! `QuantizeLinear` and `DequantizeLinear` as ONNX defines them today: scalar, per-axis and
//! blocked scales (`block_size`, how 4-bit weights are stored), scales and zero points given as
//! inputs rather than constants, float16 scales, `output_dtype`, and the narrow types (int4,
//! uint4, int2, uint2, float8; see `narrow.rs`).
//!
//! tract-onnx's own versions take a constant f32 scale and an 8-bit zero point only. That
//! common case is still wired to tract's quantization ops, which its optimizer fuses into
//! quantized kernels; everything else is computed here, element by element.
use super::narrow::Narrow;
use tract_hir::internal::*;
use tract_hir::tract_core::ops::quant::{
    quantize_linear_i8, quantize_linear_u8, DequantizeLinearF32,
};
use tract_ndarray::{ArrayD, ArrayViewD, Axis, IxDyn};
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("QuantizeLinear", quantize_linear);
    reg.insert("DequantizeLinear", dequantize_linear);
}

/// A result element type: one of tract's, or a narrow type in its held form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Elem {
    Plain(DatumType),
    Narrow(Narrow),
}

impl Elem {
    fn from_onnx(code: i64) -> TractResult<Elem> {
        if let Some(n) = Narrow::from_onnx(code as i32) {
            return Ok(Elem::Narrow(n));
        }
        let dt = tract_onnx::pb::tensor_proto::DataType::try_from(code as i32)
            .map_err(|_| format_err!("unknown ONNX data type {code}"))?;
        Ok(Elem::Plain(DatumType::try_from(dt)?))
    }

    fn held(self) -> DatumType {
        match self {
            Elem::Plain(dt) => dt,
            Elem::Narrow(n) => n.held(),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Params {
    axis: i64,
    block: usize,
    /// `output_dtype`, when the node sets it.
    out: Option<Elem>,
    saturate: bool,
    zero_point: bool,
}

fn params(node: &NodeProto) -> TractResult<Params> {
    let out = node
        .get_attr_opt::<i64>("output_dtype")?
        .filter(|&t| t != 0);
    let block = node.get_attr_opt::<i64>("block_size")?.unwrap_or(0);
    ensure!(block >= 0, "{}: negative block_size", node.op_type);
    Ok(Params {
        axis: node.get_attr_opt("axis")?.unwrap_or(1),
        block: block as usize,
        out: out.map(Elem::from_onnx).transpose()?,
        saturate: node.get_attr_opt::<i64>("saturate")?.unwrap_or(1) != 0,
        zero_point: node.input.get(2).is_some_and(|s| !s.is_empty()),
    })
}

fn quantize_linear(
    _: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(Quantize(params(node)?)), vec![]))
}

fn dequantize_linear(
    _: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(Dequantize(params(node)?)), vec![]))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Quantize(Params);

impl Expansion for Quantize {
    fn name(&self) -> StaticName {
        "QuantizeLinear".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2 + self.0.zero_point as usize)?;
        check_output_arity(outputs, 1)?;
        match self.0.out {
            Some(e) => s.equals(&outputs[0].datum_type, e.held())?,
            None if self.0.zero_point => s.equals(&outputs[0].datum_type, &inputs[2].datum_type)?,
            None => s.equals(&outputs[0].datum_type, DatumType::U8)?,
        }
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let p = &self.0;
        let out = match p.out {
            Some(e) => e,
            None if p.zero_point => Elem::Plain(model.outlet_fact(inputs[2])?.datum_type),
            None => Elem::Plain(DatumType::U8),
        };
        // tract's own op: one constant f32 scale and 8-bit zero point, f32 in.
        if let (Some(scale), Some(zp)) =
            (scalar_f32(model, inputs[1])?, scalar_zp(model, inputs, p)?)
        {
            if model.outlet_fact(inputs[0])?.datum_type == DatumType::F32 && p.block == 0 {
                let op: Option<Box<dyn TypedOp>> = match out {
                    Elem::Plain(DatumType::U8) => {
                        Some(Box::new(quantize_linear_u8(scale.recip(), zp as u8)))
                    }
                    Elem::Plain(DatumType::I8) => {
                        Some(Box::new(quantize_linear_i8(scale.recip(), zp as i8)))
                    }
                    _ => None,
                };
                if let Some(op) = op {
                    return model.wire_node(prefix, op, &[inputs[0]]);
                }
            }
        }
        let op = QuantOp {
            quantize: true,
            axis: p.axis,
            block: p.block,
            out,
            saturate: p.saturate,
        };
        model.wire_node(prefix, op, inputs)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Dequantize(Params);

impl Expansion for Dequantize {
    fn name(&self) -> StaticName {
        "DequantizeLinear".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2 + self.0.zero_point as usize)?;
        check_output_arity(outputs, 1)?;
        match self.0.out {
            Some(e) => s.equals(&outputs[0].datum_type, e.held())?,
            None => s.equals(&outputs[0].datum_type, &inputs[1].datum_type)?,
        }
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let p = &self.0;
        let out = match p.out {
            Some(e) => e,
            None => Elem::Plain(model.outlet_fact(inputs[1])?.datum_type),
        };
        let x = model.outlet_fact(inputs[0])?.datum_type;
        if let (Some(scale), Some(zp)) =
            (scalar_f32(model, inputs[1])?, scalar_zp(model, inputs, p)?)
        {
            if matches!(x, DatumType::U8 | DatumType::I8 | DatumType::I32)
                && out == Elem::Plain(DatumType::F32)
                && p.block == 0
            {
                return model.wire_node(prefix, DequantizeLinearF32::new(scale, zp), &[inputs[0]]);
            }
        }
        let op = QuantOp {
            quantize: false,
            axis: p.axis,
            block: p.block,
            out,
            saturate: p.saturate,
        };
        model.wire_node(prefix, op, inputs)
    }
}

/// A constant single-valued f32 scale.
fn scalar_f32(model: &TypedModel, outlet: OutletId) -> TractResult<Option<f32>> {
    let fact = model.outlet_fact(outlet)?;
    Ok(match &fact.konst {
        Some(k) if k.len() == 1 && k.datum_type() == DatumType::F32 => {
            Some(k.cast_to_scalar::<f32>()?)
        }
        _ => None,
    })
}

/// A constant single-valued 8-bit (or absent) zero point.
fn scalar_zp(model: &TypedModel, inputs: &[OutletId], p: &Params) -> TractResult<Option<i32>> {
    if !p.zero_point {
        return Ok(Some(0));
    }
    let fact = model.outlet_fact(inputs[2])?;
    Ok(match &fact.konst {
        Some(k)
            if k.len() == 1
                && matches!(
                    k.datum_type(),
                    DatumType::U8 | DatumType::I8 | DatumType::I32
                ) =>
        {
            Some(k.cast_to_scalar::<i32>()?)
        }
        _ => None,
    })
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct QuantOp {
    quantize: bool,
    axis: i64,
    block: usize,
    out: Elem,
    saturate: bool,
}

impl Op for QuantOp {
    fn name(&self) -> StaticName {
        if self.quantize {
            "QuantizeLinear"
        } else {
            "DequantizeLinear"
        }
        .into()
    }

    op_as_typed_op!();
}

impl EvalOp for QuantOp {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = inputs[0].cast_to::<f32>()?;
        let x = x.to_plain_array_view::<f32>()?;
        let shape = x.shape().to_vec();
        let axis = if self.axis < 0 {
            self.axis + shape.len() as i64
        } else {
            self.axis
        };
        let spread = |t: &TValue| -> TractResult<ArrayD<f32>> {
            let t = t.cast_to::<f32>()?;
            spread(&t.to_plain_array_view::<f32>()?, &shape, axis, self.block)
        };
        let scale = spread(&inputs[1])?;
        let zp = match inputs.get(2) {
            Some(z) => spread(z)?,
            None => ArrayD::zeros(IxDyn(&shape)),
        };
        let held = self.out.held();
        let y: Tensor = if self.quantize {
            let mut v = ArrayD::<f32>::zeros(IxDyn(&shape));
            tract_ndarray::Zip::from(&mut v)
                .and(&x)
                .and(&scale)
                .and(&zp)
                .for_each(|y, &x, &s, &z| *y = self.quantize_one(x / s, z));
            v.into()
        } else {
            // In f64: (x - zero point) is exact there for every integer input.
            let mut v = ArrayD::<f32>::zeros(IxDyn(&shape));
            let x64 = inputs[0].cast_to::<f64>()?;
            let x64 = x64.to_plain_array_view::<f64>()?;
            tract_ndarray::Zip::from(&mut v)
                .and(&x64)
                .and(&scale)
                .and(&zp)
                .for_each(|y, &x, &s, &z| *y = ((x - z as f64) * s as f64) as f32);
            match self.out {
                Elem::Narrow(n) => v.mapv(|y| n.round(y, true)).into(),
                Elem::Plain(_) => v.into(),
            }
        };
        Ok(tvec!(y.cast_to_dt(held)?.into_owned().into_tvalue()))
    }
}

impl QuantOp {
    /// One quantized value, in f32 (exact for every integer type up to 24 bits).
    fn quantize_one(&self, scaled: f32, zp: f32) -> f32 {
        let (lo, hi) = match self.out {
            Elem::Narrow(n) if n.is_float() => return n.round(scaled + zp, self.saturate),
            Elem::Narrow(n) => {
                let (lo, hi) = n.int_range();
                (lo as f32, hi as f32)
            }
            Elem::Plain(DatumType::U8) => (0.0, 255.0),
            Elem::Plain(DatumType::I8) => (-128.0, 127.0),
            Elem::Plain(DatumType::U16) => (0.0, 65535.0),
            Elem::Plain(DatumType::I16) => (-32768.0, 32767.0),
            Elem::Plain(DatumType::I32) => (i32::MIN as f32, i32::MAX as f32),
            Elem::Plain(_) => return scaled + zp,
        };
        (scaled.round_ties_even() + zp).clamp(lo, hi)
    }
}

/// A scale or zero point laid out like `x`: one value, one per index of `axis`, or one per
/// block of `block` consecutive indices of `axis` (then it has x's rank).
fn spread(
    p: &ArrayViewD<f32>,
    shape: &[usize],
    axis: i64,
    block: usize,
) -> TractResult<ArrayD<f32>> {
    if p.len() == 1 && block == 0 {
        return Ok(ArrayD::from_elem(
            IxDyn(shape),
            p.iter().next().copied().unwrap_or(0.0),
        ));
    }
    ensure!(
        (0..shape.len() as i64).contains(&axis),
        "quantization axis {axis} out of range for rank {}",
        shape.len()
    );
    let axis = axis as usize;
    if block == 0 {
        ensure!(
            p.ndim() <= 1 && p.len() == shape[axis],
            "per-axis scale of {} values for axis {axis} of {shape:?}",
            p.len()
        );
        let mut s = vec![1; shape.len()];
        s[axis] = p.len();
        let p = p.to_shape(IxDyn(&s))?;
        return Ok(p
            .broadcast(IxDyn(shape))
            .context("broadcasting a scale")?
            .to_owned());
    }
    ensure!(
        p.ndim() == shape.len()
            && p.shape()[axis] == shape[axis].div_ceil(block)
            && (0..shape.len()).all(|a| a == axis || p.shape()[a] == shape[a]),
        "blocked scale {:?} does not fit {shape:?} in blocks of {block} along axis {axis}",
        p.shape()
    );
    // Repeat each block's value `block` times along the axis, then cut to the axis' length.
    let mut wide = p.shape().to_vec();
    wide.insert(axis + 1, block);
    let repeated = p.view().insert_axis(Axis(axis + 1));
    let repeated = repeated
        .broadcast(IxDyn(&wide))
        .context("broadcasting blocks")?;
    let mut merged = p.shape().to_vec();
    merged[axis] *= block;
    let full = repeated.to_owned().into_shape_with_order(IxDyn(&merged))?;
    Ok(full
        .slice_axis(Axis(axis), (0..shape[axis]).into())
        .to_owned())
}

impl TypedOp for QuantOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(self.out.held().fact(inputs[0].shape.clone())))
    }

    as_op!();
}
