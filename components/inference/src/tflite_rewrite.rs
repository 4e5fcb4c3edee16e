//! Load-time rewrite of a TFLite flatbuffer into one tract-tflite can import.
//!
//! Real models (MediaPipe's among them) use operators tract-tflite lacks: `DEQUANTIZE` of fp16
//! weights, `DENSIFY` of sparse weights, `PRELU`, `DEPTH_TO_SPACE`, binary ops without their
//! options table, and MediaPipe's custom `Convolution2DTransposeBias`. Each is replaced here by
//! constants or by builtins tract-tflite has, so tract's own sources stay untouched.
//!
//! The rewrite never copies the original model: flatbuffer offsets only point forward, so the
//! new root tables (model, subgraph, the vectors that changed, new tensors, operators and
//! buffers) go in a prefix placed before the original bytes, and refer to its unchanged tables
//! (tensors, operators, buffers) where they are.
use crate::error::{NnError, NnResult};
use std::collections::HashMap;
use tract_onnx::prelude::f16;
use tract_tflite::tflite::{self, BuiltinOperator, BuiltinOptions, Model, SubGraph, TensorType};

/// Bound on the dims the rewrite computes with, so that products of a few stay in i32.
const MAX_DIM: i32 = 1 << 14;

/// The MediaPipe custom operator that is a transposed convolution with a bias.
const TRANSPOSE_CONV_BIAS: &str = "Convolution2DTransposeBias";

fn invalid(msg: impl std::fmt::Display) -> NnError {
    NnError::invalid(format!("not a valid TFLite model: {msg}"))
}

/// Checks the flatbuffer and the indices tract-tflite follows without checking (an index out of
/// range there is a panic, a trap in wasm); rewrites the model when it needs it.
/// `Ok(None)`: the model is fine as it is.
pub fn rewrite(bytes: &[u8]) -> NnResult<Option<Vec<u8>>> {
    let model = tflite::root_as_model(bytes).map_err(invalid)?;
    let sg = validate(&model)?;
    let mut rw = Rewriter::new(model, sg)?;
    if !rw.run()? {
        return Ok(None);
    }
    rw.write(bytes).map(Some)
}

/// The names of the first subgraph's outputs, in order (a model `rewrite` has accepted).
pub fn output_names(bytes: &[u8]) -> NnResult<Vec<String>> {
    let model = tflite::root_as_model(bytes).map_err(invalid)?;
    let sg = validate(&model)?;
    let tensors = sg.tensors();
    Ok(sg
        .outputs()
        .iter()
        .flatten()
        .map(|ix| {
            let name = tensors.as_ref().and_then(|t| t.get(ix as usize).name());
            name.unwrap_or_default().to_string()
        })
        .collect())
}

/// Indices that must be in range: the subgraph's, its operators' and its tensors' buffers.
fn validate<'a>(model: &Model<'a>) -> NnResult<SubGraph<'a>> {
    let subgraphs = model
        .subgraphs()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("it has no subgraph"))?;
    let sg = subgraphs.get(0);
    let n_tensors = sg.tensors().map_or(0, |t| t.len());
    let n_buffers = model.buffers().map_or(0, |b| b.len());
    let n_codes = model.operator_codes().map_or(0, |c| c.len());
    let tensor_ok = |ix: i32, what: &str| -> NnResult<()> {
        if ix < 0 || ix as usize >= n_tensors {
            return Err(invalid(format!(
                "{what} refers to tensor {ix}, but the subgraph has {n_tensors} tensors"
            )));
        }
        Ok(())
    };
    for ix in sg.inputs().iter().flatten() {
        tensor_ok(ix, "a subgraph input")?;
    }
    for ix in sg.outputs().iter().flatten() {
        tensor_ok(ix, "a subgraph output")?;
    }
    if let Some(tensors) = sg.tensors() {
        for (i, t) in tensors.iter().enumerate() {
            if t.buffer() as usize >= n_buffers.max(1) && t.buffer() != 0 {
                return Err(invalid(format!(
                    "tensor {i} refers to buffer {}, but the model has {n_buffers} buffers",
                    t.buffer()
                )));
            }
            let has_data = model
                .buffers()
                .filter(|b| t.buffer() != 0 && (t.buffer() as usize) < b.len())
                .and_then(|b| b.get(t.buffer() as usize).data())
                .is_some_and(|d| !d.is_empty());
            if has_data && elem_size(t.type_()).is_none() {
                return Err(invalid(format!(
                    "tensor {i} holds constant data of type {:?}, which this engine cannot read",
                    t.type_()
                )));
            }
            if t.shape().is_none() {
                return Err(invalid(format!("tensor {i} has no shape")));
            }
            if t.name().is_none() {
                return Err(invalid(format!("tensor {i} has no name")));
            }
        }
    }
    for (k, op) in sg.operators().iter().flatten().enumerate() {
        if op.opcode_index() as usize >= n_codes {
            return Err(invalid(format!(
                "operator {k} has opcode index {}, but the model has {n_codes} operator codes",
                op.opcode_index()
            )));
        }
        let what = format!("operator {k}");
        // -1 marks an omitted optional input.
        for ix in op.inputs().iter().flatten().filter(|&ix| ix != -1) {
            tensor_ok(ix, &what)?;
        }
        let outputs = op.outputs().filter(|o| !o.is_empty());
        let outputs = outputs.ok_or_else(|| invalid(format!("{what} has no output")))?;
        for ix in outputs {
            tensor_ok(ix, &what)?;
        }
        if op.inputs().is_none() {
            return Err(invalid(format!("{what} has no input list")));
        }
        check_window(&op).map_err(|e| invalid(format!("{what}: {e}")))?;
    }
    Ok(sg)
}

/// Window options tract-tflite divides by or matches exhaustively (it panics otherwise).
fn check_window(op: &tflite::Operator) -> Result<(), String> {
    let padding_ok =
        |p: tflite::Padding| matches!(p, tflite::Padding::SAME | tflite::Padding::VALID);
    let (padding, values) = if let Some(o) = op.builtin_options_as_conv_2_doptions() {
        let v = vec![
            o.stride_w(),
            o.stride_h(),
            o.dilation_w_factor(),
            o.dilation_h_factor(),
        ];
        (o.padding(), v)
    } else if let Some(o) = op.builtin_options_as_depthwise_conv_2_doptions() {
        let v = vec![
            o.stride_w(),
            o.stride_h(),
            o.dilation_w_factor(),
            o.dilation_h_factor(),
            o.depth_multiplier(),
        ];
        (o.padding(), v)
    } else if let Some(o) = op.builtin_options_as_pool_2_doptions() {
        let v = vec![
            o.stride_w(),
            o.stride_h(),
            o.filter_width(),
            o.filter_height(),
        ];
        (o.padding(), v)
    } else {
        return Ok(());
    };
    if !padding_ok(padding) {
        return Err(format!("unknown padding {}", padding.0));
    }
    if let Some(v) = values.iter().find(|&&v| !(1..=MAX_DIM).contains(&v)) {
        return Err(format!("stride, dilation or window size {v}"));
    }
    Ok(())
}

/// The builtin code of an operator code (codes above 127 live in `builtin_code`).
pub(crate) fn builtin_of(code: &tflite::OperatorCode) -> i32 {
    let deprecated = code.deprecated_builtin_code() as i32;
    if deprecated == BuiltinOperator::PLACEHOLDER_FOR_GREATER_OP_CODES.0 {
        code.builtin_code().0
    } else {
        deprecated
    }
}

/// A constant value known at load time.
#[derive(Clone)]
struct Const {
    ty: TensorType,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl Const {
    fn f32s(&self) -> NnResult<Vec<f32>> {
        match self.ty {
            TensorType::FLOAT32 => Ok(self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()),
            TensorType::FLOAT16 => Ok(self
                .data
                .chunks_exact(2)
                .map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                .collect()),
            other => Err(NnError::unsupported(format!(
                "constant of type {other:?} where a float is needed"
            ))),
        }
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn elem_size(ty: TensorType) -> Option<usize> {
    Some(match ty {
        TensorType::FLOAT32 | TensorType::INT32 | TensorType::UINT32 => 4,
        TensorType::FLOAT16 | TensorType::INT16 | TensorType::UINT16 => 2,
        TensorType::INT8 | TensorType::UINT8 | TensorType::BOOL => 1,
        TensorType::INT64 | TensorType::UINT64 | TensorType::FLOAT64 => 8,
        _ => return None,
    })
}

enum TensorOut {
    /// The original tensor table, at this location in the original bytes.
    Keep(usize),
    New {
        shape: Vec<i32>,
        ty: TensorType,
        /// Index in the new buffer list (0: no data).
        buffer: u32,
        name: String,
    },
}

struct NewOp {
    opcode: u32,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    /// Union type and the options table's fields (vtable slot, value).
    options: Option<(BuiltinOptions, Vec<(u16, Field)>)>,
}

enum OpOut {
    Keep(usize),
    New(NewOp),
}

struct Rewriter<'a> {
    model: Model<'a>,
    sg: SubGraph<'a>,
    /// Builtin code per operator code index; custom operators keep their name.
    codes: Vec<(i32, Option<String>)>,
    new_codes: Vec<i32>,
    tensors: Vec<TensorOut>,
    n_old_buffers: usize,
    new_buffers: Vec<Vec<u8>>,
    /// Values computed by the rewrite (dequantized, densified), by tensor index.
    consts: HashMap<i32, Const>,
    ops: Vec<OpOut>,
}

impl<'a> Rewriter<'a> {
    fn new(model: Model<'a>, sg: SubGraph<'a>) -> NnResult<Self> {
        let codes = model
            .operator_codes()
            .iter()
            .flatten()
            .map(|c| (builtin_of(&c), c.custom_code().map(str::to_string)))
            .collect();
        let tensors = sg
            .tensors()
            .iter()
            .flatten()
            .map(|t| TensorOut::Keep(t._tab.loc()))
            .collect();
        Ok(Rewriter {
            n_old_buffers: model.buffers().map_or(0, |b| b.len()),
            model,
            sg,
            codes,
            new_codes: vec![],
            tensors,
            new_buffers: vec![],
            consts: HashMap::new(),
            ops: vec![],
        })
    }

    fn old_tensor(&self, ix: i32) -> Option<tflite::Tensor<'a>> {
        let tensors = self.sg.tensors()?;
        (ix >= 0 && (ix as usize) < tensors.len()).then(|| tensors.get(ix as usize))
    }

    fn shape(&self, ix: i32) -> Vec<i32> {
        match &self.tensors[ix as usize] {
            TensorOut::New { shape, .. } => shape.clone(),
            TensorOut::Keep(_) => self
                .old_tensor(ix)
                .and_then(|t| t.shape())
                .map(|s| s.iter().collect())
                .unwrap_or_default(),
        }
    }

    fn ty(&self, ix: i32) -> TensorType {
        match &self.tensors[ix as usize] {
            TensorOut::New { ty, .. } => *ty,
            TensorOut::Keep(_) => self
                .old_tensor(ix)
                .map_or(TensorType::FLOAT32, |t| t.type_()),
        }
    }

    fn name(&self, ix: i32) -> String {
        match &self.tensors[ix as usize] {
            TensorOut::New { name, .. } => name.clone(),
            TensorOut::Keep(_) => self
                .old_tensor(ix)
                .and_then(|t| t.name())
                .unwrap_or("")
                .to_string(),
        }
    }

    fn concrete_shape(&self, ix: i32) -> NnResult<Vec<usize>> {
        self.shape(ix)
            .iter()
            .map(|&d| {
                usize::try_from(d)
                    .map_err(|_| invalid(format!("tensor \"{}\" has dimension {d}", self.name(ix))))
            })
            .collect()
    }

    /// The tensor's value when it is a constant (in the file, or computed by the rewrite).
    fn konst(&self, ix: i32) -> NnResult<Option<Const>> {
        if let Some(c) = self.consts.get(&ix) {
            return Ok(Some(c.clone()));
        }
        let Some(t) = self.old_tensor(ix) else {
            return Ok(None);
        };
        let buffer = t.buffer() as usize;
        if buffer == 0 || buffer >= self.n_old_buffers {
            return Ok(None);
        }
        let Some(buffers) = self.model.buffers() else {
            return Ok(None);
        };
        let b = buffers.get(buffer);
        let Some(data) = b.data().filter(|d| !d.is_empty()) else {
            return Ok(None);
        };
        let shape = self.concrete_shape(ix)?;
        let c = Const {
            ty: t.type_(),
            shape,
            data: data.bytes().to_vec(),
        };
        self.check_len(ix, &c)?;
        Ok(Some(c))
    }

    /// The dense value of a constant sparse tensor (TFLite's `SparsityParameters`: the
    /// dimensions, split into blocks by `block_map`, traversed in `traversal_order`, each dense or
    /// compressed as CSR segments and indices). Every index is checked.
    fn densify(&self, ix: i32, out: i32) -> NnResult<Option<Const>> {
        let Some(t) = self.old_tensor(ix) else {
            return Ok(None);
        };
        let Some(sparsity) = t.sparsity() else {
            return Ok(None);
        };
        let buffers = self.model.buffers();
        let data = buffers
            .as_ref()
            .filter(|b| t.buffer() != 0 && (t.buffer() as usize) < b.len())
            .and_then(|b| b.get(t.buffer() as usize).data());
        let Some(data) = data else {
            return Ok(None);
        };
        let ty = t.type_();
        let size = elem_size(ty).ok_or_else(|| NnError::unsupported(format!("sparse {ty:?}")))?;
        let shape = self.concrete_shape(out)?;
        let n = shape.len();
        let total = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let total = total
            .filter(|&t| t <= crate::limits::Limits::default().max_tensor_elements)
            .ok_or_else(|| NnError::too_large("densified tensor too large"))?;
        let order: Vec<usize> = sparsity
            .traversal_order()
            .iter()
            .flatten()
            .map(|d| d as usize)
            .collect();
        let block_map: Vec<usize> = sparsity
            .block_map()
            .iter()
            .flatten()
            .map(|d| d as usize)
            .collect();
        let metas: Vec<tflite::DimensionMetadata> =
            sparsity.dim_metadata().iter().flatten().collect();
        let levels = n + block_map.len();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        if order.len() != levels || metas.len() != levels || !sorted.iter().copied().eq(0..levels) {
            return Err(invalid(
                "sparsity parameters do not match the tensor's rank",
            ));
        }
        // Size of each expanded dimension: blocked dims count blocks, then the block sizes.
        let mut dims: Vec<usize> = shape.clone();
        let mut blocks = vec![];
        for (j, &d) in block_map.iter().enumerate() {
            let b = usize::try_from(
                metas[order.iter().position(|&o| o == n + j).unwrap_or(0)].dense_size(),
            )
            .ok()
            .filter(|&b| b > 0 && d < n && dims[d].is_multiple_of(b))
            .ok_or_else(|| invalid("bad sparsity block size"))?;
            dims[d] /= b;
            blocks.push(b);
        }
        dims.extend(&blocks);
        let index_vec = |m: &tflite::DimensionMetadata, segments: bool| -> Option<Vec<usize>> {
            let v: Vec<usize> = if segments {
                if let Some(v) = m.array_segments_as_int_32_vector() {
                    v.values()?.iter().map(|x| x.max(0) as usize).collect()
                } else if let Some(v) = m.array_segments_as_uint_16_vector() {
                    v.values()?.iter().map(|x| x as usize).collect()
                } else {
                    m.array_segments_as_uint_8_vector()?
                        .values()?
                        .bytes()
                        .iter()
                        .map(|&x| x as usize)
                        .collect()
                }
            } else if let Some(v) = m.array_indices_as_int_32_vector() {
                v.values()?.iter().map(|x| x.max(0) as usize).collect()
            } else if let Some(v) = m.array_indices_as_uint_16_vector() {
                v.values()?.iter().map(|x| x as usize).collect()
            } else {
                m.array_indices_as_uint_8_vector()?
                    .values()?
                    .bytes()
                    .iter()
                    .map(|&x| x as usize)
                    .collect()
            };
            Some(v)
        };
        enum Level {
            Dense(usize),
            Csr(Vec<usize>, Vec<usize>),
        }
        let mut plan = vec![];
        for (level, m) in metas.iter().enumerate() {
            let d = dims[order[level]];
            if m.format() == tflite::DimensionType::DENSE {
                if m.dense_size() as usize != d {
                    return Err(invalid("sparsity dense size does not match the shape"));
                }
                plan.push(Level::Dense(d));
            } else {
                let seg =
                    index_vec(m, true).ok_or_else(|| invalid("CSR level without segments"))?;
                let ind =
                    index_vec(m, false).ok_or_else(|| invalid("CSR level without indices"))?;
                if ind.iter().any(|&i| i >= d)
                    || seg.windows(2).any(|w| w[0] > w[1])
                    || seg.last().is_some_and(|&l| l > ind.len())
                {
                    return Err(invalid("CSR segments or indices out of range"));
                }
                plan.push(Level::Csr(seg, ind));
            }
        }
        let values = data.bytes();
        let mut dense = vec![0u8; total * size];
        let mut next = 0usize;
        let mut coords = vec![0usize; levels];
        // Depth-first over the levels; `pos` is the position within the current level.
        let mut stack: Vec<(usize, usize, usize)> = vec![(0, 0, 0)]; // (level, parent, i)
        while let Some((level, parent, i)) = stack.pop() {
            if level == levels {
                let mut flat = 0usize;
                for (d, &size_d) in shape.iter().enumerate() {
                    let mut c = coords[d];
                    if let Some(j) = block_map.iter().position(|&b| b == d) {
                        c = c * blocks[j] + coords[n + j];
                    }
                    flat = flat * size_d + c;
                }
                let src = values
                    .get(next * size..(next + 1) * size)
                    .ok_or_else(|| invalid("sparse tensor has fewer values than its indices"))?;
                dense[flat * size..(flat + 1) * size].copy_from_slice(src);
                next += 1;
                continue;
            }
            let (start, end) = match &plan[level] {
                Level::Dense(d) => (parent * d, parent * d + d),
                Level::Csr(seg, _) => {
                    let s = *seg
                        .get(parent)
                        .ok_or_else(|| invalid("CSR segment out of range"))?;
                    let e = *seg
                        .get(parent + 1)
                        .ok_or_else(|| invalid("CSR segment out of range"))?;
                    (s, e)
                }
            };
            let pos = start + i;
            if pos >= end {
                continue;
            }
            // Siblings after this one, then this one's subtree (popped first).
            stack.push((level, parent, i + 1));
            coords[order[level]] = match &plan[level] {
                Level::Dense(_) => i,
                Level::Csr(_, ind) => ind[pos],
            };
            stack.push((level + 1, pos, 0));
        }
        if next * size != values.len() {
            return Err(invalid("sparse tensor has more values than its indices"));
        }
        Ok(Some(Const {
            ty,
            shape,
            data: dense,
        }))
    }

    fn check_len(&self, ix: i32, c: &Const) -> NnResult<()> {
        let n = c.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let want = n.and_then(|n| n.checked_mul(elem_size(c.ty)?));
        if want != Some(c.data.len()) {
            return Err(invalid(format!(
                "tensor \"{}\" ({:?}{:?}) has {} bytes of data",
                self.name(ix),
                c.ty,
                c.shape,
                c.data.len()
            )));
        }
        Ok(())
    }

    fn opcode(&mut self, builtin: BuiltinOperator) -> u32 {
        if let Some(i) = self
            .codes
            .iter()
            .position(|(c, custom)| *c == builtin.0 && custom.is_none())
        {
            return i as u32;
        }
        if let Some(i) = self.new_codes.iter().position(|c| *c == builtin.0) {
            return (self.codes.len() + i) as u32;
        }
        self.new_codes.push(builtin.0);
        (self.codes.len() + self.new_codes.len() - 1) as u32
    }

    fn add_tensor(&mut self, name: String, ty: TensorType, shape: Vec<i32>) -> i32 {
        self.tensors.push(TensorOut::New {
            shape,
            ty,
            buffer: 0,
            name,
        });
        (self.tensors.len() - 1) as i32
    }

    fn new_buffer(&mut self, data: Vec<u8>) -> u32 {
        self.new_buffers.push(data);
        // Buffer 0 is the empty sentinel; a model without buffers gets one.
        (self.n_old_buffers.max(1) + self.new_buffers.len() - 1) as u32
    }

    fn add_const(&mut self, name: String, c: Const) -> i32 {
        let shape = c.shape.iter().map(|&d| d as i32).collect();
        let buffer = self.new_buffer(c.data.clone());
        self.tensors.push(TensorOut::New {
            shape,
            ty: c.ty,
            buffer,
            name,
        });
        let ix = (self.tensors.len() - 1) as i32;
        self.consts.insert(ix, c);
        ix
    }

    /// Turns tensor `ix` (an operator's output) into a constant holding `c`.
    fn set_const(&mut self, ix: i32, c: Const) {
        let buffer = self.new_buffer(c.data.clone());
        self.tensors[ix as usize] = TensorOut::New {
            shape: c.shape.iter().map(|&d| d as i32).collect(),
            ty: c.ty,
            buffer,
            name: self.name(ix),
        };
        self.consts.insert(ix, c);
    }

    fn push(&mut self, op: BuiltinOperator, inputs: Vec<i32>, outputs: Vec<i32>) {
        let options = match op {
            BuiltinOperator::ADD => Some((BuiltinOptions::AddOptions, vec![])),
            BuiltinOperator::SUB => Some((BuiltinOptions::SubOptions, vec![])),
            BuiltinOperator::MUL => Some((BuiltinOptions::MulOptions, vec![])),
            BuiltinOperator::TRANSPOSE => Some((BuiltinOptions::TransposeOptions, vec![])),
            BuiltinOperator::PAD => Some((BuiltinOptions::PadOptions, vec![])),
            _ => None,
        };
        self.push_with(op, inputs, outputs, options);
    }

    fn push_with(
        &mut self,
        op: BuiltinOperator,
        inputs: Vec<i32>,
        outputs: Vec<i32>,
        options: Option<(BuiltinOptions, Vec<(u16, Field)>)>,
    ) {
        let opcode = self.opcode(op);
        self.ops.push(OpOut::New(NewOp {
            opcode,
            inputs,
            outputs,
            options,
        }));
    }

    /// Rewrites every operator; false when none needed it.
    fn run(&mut self) -> NnResult<bool> {
        let mut changed = false;
        let ops: Vec<tflite::Operator<'a>> = self.sg.operators().iter().flatten().collect();
        // tract-tflite has no custom operators: name the ones the model needs, all at once.
        let mut missing: Vec<(String, usize)> = vec![];
        for op in &ops {
            let (code, custom) = &self.codes[op.opcode_index() as usize];
            let name = match custom {
                Some(name) if name != TRANSPOSE_CONV_BIAS => name.clone(),
                None if *code == BuiltinOperator::CUSTOM.0 => "(unnamed custom operator)".into(),
                _ => continue,
            };
            match missing.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => *count += 1,
                None => missing.push((name, 1)),
            }
        }
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(|(n, c)| format!("{n} (x{c})")).collect();
            return Err(NnError::unsupported(format!(
                "the model uses custom operators this engine does not have: {}",
                list.join(", ")
            )));
        }
        for (k, op) in ops.iter().enumerate() {
            let (code, custom) = self.codes[op.opcode_index() as usize].clone();
            let inputs: Vec<i32> = op.inputs().iter().flatten().collect();
            let outputs: Vec<i32> = op.outputs().iter().flatten().collect();
            let done = self
                .rewrite_op(code, custom.as_deref(), op, &inputs, &outputs)
                .map_err(|e| {
                    NnError::new(
                        e.code,
                        format!(
                            "operator {k} ({}, output \"{}\"): {}",
                            custom.clone().unwrap_or_else(|| op_name(code)),
                            self.name(outputs[0]),
                            e.message
                        ),
                    )
                })?;
            if done {
                changed = true;
            } else {
                self.ops.push(OpOut::Keep(op._tab.loc()));
            }
        }
        Ok(changed)
    }

    /// Emits the replacement of one operator; false to keep it unchanged.
    fn rewrite_op(
        &mut self,
        code: i32,
        custom: Option<&str>,
        op: &tflite::Operator<'a>,
        inputs: &[i32],
        outputs: &[i32],
    ) -> NnResult<bool> {
        let input = |i: usize| -> NnResult<i32> {
            inputs
                .get(i)
                .copied()
                .filter(|&ix| ix >= 0)
                .ok_or_else(|| invalid(format!("input {i} is missing")))
        };
        match BuiltinOperator(code) {
            BuiltinOperator::DEQUANTIZE => {
                let Some(c) = self.konst(input(0)?)? else {
                    return Ok(false);
                };
                if c.ty != TensorType::FLOAT16 {
                    return Ok(false);
                }
                let values = c.f32s()?;
                self.set_const(
                    outputs[0],
                    Const {
                        ty: TensorType::FLOAT32,
                        shape: c.shape,
                        data: f32_bytes(&values),
                    },
                );
                Ok(true)
            }
            BuiltinOperator::DENSIFY => {
                let Some(c) = self.densify(input(0)?, outputs[0])? else {
                    return Ok(false);
                };
                self.set_const(outputs[0], c);
                Ok(true)
            }
            BuiltinOperator::PRELU => {
                // prelu(x) = relu(x) + alpha * (x - relu(x)), from builtins tract has.
                let (x, alpha, y) = (input(0)?, input(1)?, outputs[0]);
                if self.ty(y) != TensorType::FLOAT32 {
                    return Ok(false);
                }
                let shape = self.shape(y);
                let name = self.name(y);
                let f32t = TensorType::FLOAT32;
                let r = self.add_tensor(format!("{name}.relu"), f32t, shape.clone());
                let n = self.add_tensor(format!("{name}.neg_part"), f32t, shape.clone());
                let m = self.add_tensor(format!("{name}.scaled"), f32t, shape);
                self.push(BuiltinOperator::RELU, vec![x], vec![r]);
                self.push(BuiltinOperator::SUB, vec![x, r], vec![n]);
                self.push(BuiltinOperator::MUL, vec![n, alpha], vec![m]);
                self.push(BuiltinOperator::ADD, vec![r, m], vec![y]);
                Ok(true)
            }
            BuiltinOperator::ADD | BuiltinOperator::SUB | BuiltinOperator::MUL
                if op.builtin_options_type() == BuiltinOptions::NONE =>
            {
                // The options table holds only a fused activation, NONE by default.
                self.push(BuiltinOperator(code), inputs.to_vec(), outputs.to_vec());
                Ok(true)
            }
            BuiltinOperator::MEAN if self.ty(input(0)?) == TensorType::FLOAT32 => {
                // tract-tflite scales the sum with an op that rounds to integers: a float MEAN
                // becomes SUM then MUL by 1/n.
                let (x, y) = (input(0)?, outputs[0]);
                let axes = self.konst(input(1)?)?;
                let axes = axes
                    .filter(|a| a.ty == TensorType::INT32)
                    .ok_or_else(|| NnError::unsupported("MEAN over axes that are not constant"))?;
                let shape = self.shape(x);
                let mut count = 1f64;
                for a in axes.data.chunks_exact(4) {
                    let a = i32::from_le_bytes([a[0], a[1], a[2], a[3]]);
                    let rank = shape.len() as i32;
                    let axis = if a < 0 { a + rank } else { a };
                    let dim = shape
                        .get(usize::try_from(axis).unwrap_or(usize::MAX))
                        .ok_or_else(|| invalid(format!("MEAN axis {a} of a rank {rank} input")))?;
                    count *= f64::from(*dim);
                }
                let keep_dims = op
                    .builtin_options_as_reducer_options()
                    .is_some_and(|o| o.keep_dims());
                let name = self.name(y);
                let sum =
                    self.add_tensor(format!("{name}.sum"), TensorType::FLOAT32, self.shape(y));
                let reducer = vec![(0, Field::Byte(keep_dims as u8))];
                self.push_with(
                    BuiltinOperator::SUM,
                    vec![x, input(1)?],
                    vec![sum],
                    Some((BuiltinOptions::ReducerOptions, reducer)),
                );
                let recip = [(1.0 / count.max(1.0)) as f32];
                let recip = Const {
                    ty: TensorType::FLOAT32,
                    shape: vec![1],
                    data: f32_bytes(&recip),
                };
                let recip = self.add_const(format!("{name}.recip"), recip);
                self.push(BuiltinOperator::MUL, vec![sum, recip], vec![y]);
                Ok(true)
            }
            BuiltinOperator::DEPTH_TO_SPACE => {
                let b = op
                    .builtin_options_as_depth_to_space_options()
                    .map(|o| o.block_size())
                    .ok_or_else(|| invalid("DEPTH_TO_SPACE without its options"))?;
                let (x, y) = (input(0)?, outputs[0]);
                let s = self.shape(x);
                let [n, h, w, c] = s[..] else {
                    return Err(invalid("DEPTH_TO_SPACE input is not 4-D"));
                };
                let sane = [n, h, w, c, b].iter().all(|&v| (1..=MAX_DIM).contains(&v));
                if !sane || c % (b * b) != 0 {
                    return Err(invalid(format!("DEPTH_TO_SPACE block size {b}")));
                }
                // [n,h,w,(bh,bw,c)] -> [n,h,bh,w,bw,c] -> [n,h*b,w*b,c], TFLite's DCR order.
                let c = c / (b * b);
                let ty = self.ty(y);
                let name = self.name(y);
                let split = vec![n, h, w, b, b, c];
                let r = self.reshape(x, &split, ty, &format!("{name}.split"));
                let t = self.add_tensor(format!("{name}.interleaved"), ty, vec![n, h, b, w, b, c]);
                let perm = self.i32_const(format!("{name}.perm"), &[0, 1, 3, 2, 4, 5]);
                self.push(BuiltinOperator::TRANSPOSE, vec![r, perm], vec![t]);
                let shape = self.i32_const(format!("{name}.shape"), &[n, h * b, w * b, c]);
                self.push(BuiltinOperator::RESHAPE, vec![t, shape], vec![y]);
                Ok(true)
            }
            BuiltinOperator::CUSTOM if custom == Some(TRANSPOSE_CONV_BIAS) => {
                self.transpose_conv_bias(op, inputs, outputs)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn i32_const(&mut self, name: String, values: &[i32]) -> i32 {
        self.i32_const_shaped(name, values, &[values.len()])
    }

    /// RESHAPE of `x` to `shape`, into a new tensor.
    fn reshape(&mut self, x: i32, shape: &[i32], ty: TensorType, name: &str) -> i32 {
        let out = self.add_tensor(name.to_string(), ty, shape.to_vec());
        let s = self.i32_const(format!("{name}.shape"), shape);
        self.push(BuiltinOperator::RESHAPE, vec![x, s], vec![out]);
        out
    }

    /// MediaPipe's `Convolution2DTransposeBias` (options: padding, stride w, stride h, as three
    /// int32) as builtins: zeros inserted between input pixels (RESHAPE, PAD, RESHAPE), border
    /// padding, then a stride-1 CONV_2D with the kernel flipped and the bias.
    fn transpose_conv_bias(
        &mut self,
        op: &tflite::Operator<'a>,
        inputs: &[i32],
        outputs: &[i32],
    ) -> NnResult<()> {
        let opts: Vec<i32> = op
            .custom_options()
            .map(|o| {
                o.bytes()
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            })
            .unwrap_or_default();
        let [padding, stride_w, stride_h] = opts[..] else {
            return Err(invalid("options are not (padding, stride_w, stride_h)"));
        };
        let (&[x, w, bias], &y) = (inputs, &outputs[0]) else {
            return Err(invalid("expects input, weights and bias"));
        };
        let [n, h, wd, c] = self.shape(x)[..] else {
            return Err(invalid("input is not 4-D"));
        };
        let [o, kh, kw, ci] = self.shape(w)[..] else {
            return Err(invalid("weights are not 4-D"));
        };
        let [on, oh, ow, oc] = self.shape(y)[..] else {
            return Err(invalid("output is not 4-D"));
        };
        let positive = [stride_w, stride_h, kh, kw, h, wd, oh, ow, n, c]
            .iter()
            .all(|&v| (1..=MAX_DIM).contains(&v));
        if !positive || ci != c || oc != o || on != n || bias < 0 {
            return Err(invalid("inconsistent shapes"));
        }
        let weights = self
            .konst(w)?
            .ok_or_else(|| NnError::unsupported("weights that are not constant"))?;
        // Per axis: zeros before and after the zero-inserted input (which ends with stride-1
        // zeros), so a VALID stride-1 convolution gives exactly the output's rows.
        let pads = |size: i32, stride: i32, k: i32, out: i32| -> NnResult<(i32, i32)> {
            let before = match padding {
                // SAME: tflite centres the output, extra padding going after.
                1 => ((size - 1) * stride + k - out).max(0) / 2,
                2 => 0,
                _ => return Err(invalid(format!("padding {padding}"))),
            };
            let left = k - 1 - before;
            let right = out + k - 1 - left - size * stride;
            if left < 0 || right < 0 {
                return Err(NnError::unsupported("this output size and padding"));
            }
            Ok((left, right))
        };
        let (top, bottom) = pads(h, stride_h, kh, oh)?;
        let (left, right) = pads(wd, stride_w, kw, ow)?;
        let ty = TensorType::FLOAT32;
        let name = self.name(y);
        let mut wire = x;
        if stride_h > 1 || stride_w > 1 {
            let spread = self.reshape(wire, &[n, h, 1, wd, 1, c], ty, &format!("{name}.spread"));
            let padded = self.add_tensor(
                format!("{name}.zeros"),
                ty,
                vec![n, h, stride_h, wd, stride_w, c],
            );
            let p = [0, 0, 0, 0, 0, stride_h - 1, 0, 0, 0, stride_w - 1, 0, 0];
            let p = self.i32_const_shaped(format!("{name}.zeros.pads"), &p, &[6, 2]);
            self.push(BuiltinOperator::PAD, vec![spread, p], vec![padded]);
            let up = [n, h * stride_h, wd * stride_w, c];
            wire = self.reshape(padded, &up, ty, &format!("{name}.upsampled"));
        }
        let bordered = self.add_tensor(
            format!("{name}.bordered"),
            ty,
            vec![
                n,
                h * stride_h + top + bottom,
                wd * stride_w + left + right,
                c,
            ],
        );
        let p = [0, 0, top, bottom, left, right, 0, 0];
        let p = self.i32_const_shaped(format!("{name}.border.pads"), &p, &[4, 2]);
        self.push(BuiltinOperator::PAD, vec![wire, p], vec![bordered]);
        // Flip the kernel in both spatial axes: a transposed convolution is a correlation
        // with the mirrored kernel over the spread input.
        let wv = weights.f32s()?;
        let (o, kh, kw, ci) = (o as usize, kh as usize, kw as usize, ci as usize);
        let mut flipped = vec![0f32; wv.len()];
        for a in 0..o {
            for yy in 0..kh {
                for xx in 0..kw {
                    let src = ((a * kh + yy) * kw + xx) * ci;
                    let dst = ((a * kh + (kh - 1 - yy)) * kw + (kw - 1 - xx)) * ci;
                    flipped[dst..dst + ci].copy_from_slice(&wv[src..src + ci]);
                }
            }
        }
        let k = self.add_const(
            format!("{name}.flipped_kernel"),
            Const {
                ty,
                shape: weights.shape.clone(),
                data: f32_bytes(&flipped),
            },
        );
        // Conv2DOptions: padding VALID, strides and dilations 1, no activation.
        let options = vec![
            (0, Field::Byte(tflite::Padding::VALID.0 as u8)),
            (1, Field::Int(1)),
            (2, Field::Int(1)),
            (4, Field::Int(1)),
            (5, Field::Int(1)),
        ];
        self.push_with(
            BuiltinOperator::CONV_2D,
            vec![bordered, k, bias],
            vec![y],
            Some((BuiltinOptions::Conv2DOptions, options)),
        );
        Ok(())
    }

    fn i32_const_shaped(&mut self, name: String, values: &[i32], shape: &[usize]) -> i32 {
        let c = Const {
            ty: TensorType::INT32,
            shape: shape.to_vec(),
            data: i32_bytes(values),
        };
        self.add_const(name, c)
    }

    fn write(&self, original: &[u8]) -> NnResult<Vec<u8>> {
        let mut w = Writer::default();
        // Root offset and file identifier.
        w.buf.extend_from_slice(&[0; 4]);
        w.buf.extend_from_slice(b"TFL3");
        let (model_pos, slots) = w.table(&[
            (0, Field::Int(self.model.version() as i32)),
            (1, Field::Ref),
            (2, Field::Ref),
            (4, Field::Ref),
        ]);
        w.refer(0, Target::New(model_pos));
        let [codes_slot, subgraphs_slot, buffers_slot] = slots[..] else {
            unreachable!("three references")
        };

        // Operator codes: the original ones, then the builtins the rewrite added.
        let old_codes: Vec<usize> = self
            .model
            .operator_codes()
            .iter()
            .flatten()
            .map(|c| c._tab.loc())
            .collect();
        let (pos, elems) = w.vec_refs(old_codes.len() + self.new_codes.len());
        w.refer(codes_slot, Target::New(pos));
        for (slot, loc) in elems.iter().zip(&old_codes) {
            w.refer(*slot, Target::Old(*loc));
        }
        for (slot, code) in elems[old_codes.len()..].iter().zip(&self.new_codes) {
            let (t, _) = w.table(&[
                (0, Field::Byte(*code as u8)),
                (2, Field::Int(1)),
                (3, Field::Int(*code)),
            ]);
            w.refer(*slot, Target::New(t));
        }

        // Subgraphs: the rewritten first one, then any others unchanged.
        let subgraphs: Vec<usize> = self
            .model
            .subgraphs()
            .iter()
            .flatten()
            .map(|s| s._tab.loc())
            .collect();
        let (pos, elems) = w.vec_refs(subgraphs.len());
        w.refer(subgraphs_slot, Target::New(pos));
        for (slot, loc) in elems.iter().zip(&subgraphs).skip(1) {
            w.refer(*slot, Target::Old(*loc));
        }
        let (sg_pos, slots) = w.table(&[
            (0, Field::Ref),
            (1, Field::Ref),
            (2, Field::Ref),
            (3, Field::Ref),
        ]);
        w.refer(elems[0], Target::New(sg_pos));
        let [tensors_slot, inputs_slot, outputs_slot, ops_slot] = slots[..] else {
            unreachable!("four references")
        };
        let (pos, elems) = w.vec_refs(self.tensors.len());
        w.refer(tensors_slot, Target::New(pos));
        for (slot, t) in elems.iter().zip(&self.tensors) {
            match t {
                TensorOut::Keep(loc) => w.refer(*slot, Target::Old(*loc)),
                TensorOut::New {
                    shape,
                    ty,
                    buffer,
                    name,
                } => {
                    let (t, refs) = w.table(&[
                        (0, Field::Ref),
                        (1, Field::Byte(ty.0 as u8)),
                        (2, Field::Int(*buffer as i32)),
                        (3, Field::Ref),
                    ]);
                    w.refer(*slot, Target::New(t));
                    let s = w.vec_i32(shape);
                    w.refer(refs[0], Target::New(s));
                    let n = w.string(name);
                    w.refer(refs[1], Target::New(n));
                }
            }
        }
        let ins: Vec<i32> = self.sg.inputs().iter().flatten().collect();
        let outs: Vec<i32> = self.sg.outputs().iter().flatten().collect();
        let p = w.vec_i32(&ins);
        w.refer(inputs_slot, Target::New(p));
        let p = w.vec_i32(&outs);
        w.refer(outputs_slot, Target::New(p));

        let (pos, elems) = w.vec_refs(self.ops.len());
        w.refer(ops_slot, Target::New(pos));
        for (slot, op) in elems.iter().zip(&self.ops) {
            match op {
                OpOut::Keep(loc) => w.refer(*slot, Target::Old(*loc)),
                OpOut::New(op) => {
                    let mut fields = vec![
                        (0, Field::Int(op.opcode as i32)),
                        (1, Field::Ref),
                        (2, Field::Ref),
                    ];
                    if let Some((kind, _)) = &op.options {
                        fields.push((3, Field::Byte(kind.0)));
                        fields.push((4, Field::Ref));
                    }
                    let (t, refs) = w.table(&fields);
                    w.refer(*slot, Target::New(t));
                    let p = w.vec_i32(&op.inputs);
                    w.refer(refs[0], Target::New(p));
                    let p = w.vec_i32(&op.outputs);
                    w.refer(refs[1], Target::New(p));
                    if let Some((_, opts)) = &op.options {
                        let (p, _) = w.table(opts);
                        w.refer(refs[2], Target::New(p));
                    }
                }
            }
        }

        // Buffers: the original ones (at least the empty sentinel), then the new constants.
        let old_buffers: Vec<usize> = self
            .model
            .buffers()
            .iter()
            .flatten()
            .map(|b| b._tab.loc())
            .collect();
        let n_old = old_buffers.len().max(1);
        let (pos, elems) = w.vec_refs(n_old + self.new_buffers.len());
        w.refer(buffers_slot, Target::New(pos));
        for (slot, loc) in elems.iter().zip(&old_buffers) {
            w.refer(*slot, Target::Old(*loc));
        }
        if old_buffers.is_empty() {
            let (t, _) = w.table(&[]);
            w.refer(elems[0], Target::New(t));
        }
        for (slot, data) in elems[n_old..].iter().zip(&self.new_buffers) {
            let (t, refs) = w.table(&[(0, Field::Ref)]);
            w.refer(*slot, Target::New(t));
            let p = w.vec_bytes_aligned(data);
            w.refer(refs[0], Target::New(p));
        }
        w.finish(original)
    }
}

fn op_name(code: i32) -> String {
    BuiltinOperator(code)
        .variant_name()
        .map(str::to_string)
        .unwrap_or_else(|| format!("builtin {code}"))
}

/// A table field: scalars, or a reference filled in after the table is written.
#[derive(Clone, Copy)]
enum Field {
    Byte(u8),
    Int(i32),
    Ref,
}

#[derive(Clone, Copy)]
enum Target {
    /// A position in the new prefix.
    New(usize),
    /// A position in the original bytes.
    Old(usize),
}

/// Writes flatbuffer tables front to back, so that every offset points forward.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
    fixups: Vec<(usize, Target)>,
}

impl Writer {
    fn align(&mut self, a: usize) {
        while !self.buf.len().is_multiple_of(a) {
            self.buf.push(0);
        }
    }

    fn refer(&mut self, slot: usize, target: Target) {
        self.fixups.push((slot, target));
    }

    /// A table with `fields` (vtable slot, value); returns its position and the positions of
    /// its reference fields, in order. Four-byte fields first keep every field aligned.
    fn table(&mut self, fields: &[(u16, Field)]) -> (usize, Vec<usize>) {
        let n_slots = fields.iter().map(|f| f.0 as usize + 1).max().unwrap_or(0);
        let mut offsets = vec![0u16; n_slots];
        let mut size = 4usize;
        let wide = fields.iter().filter(|f| !matches!(f.1, Field::Byte(_)));
        let narrow = fields.iter().filter(|f| matches!(f.1, Field::Byte(_)));
        let ordered: Vec<&(u16, Field)> = wide.chain(narrow).collect();
        for (slot, value) in &ordered {
            offsets[*slot as usize] = size as u16;
            size += if matches!(value, Field::Byte(_)) {
                1
            } else {
                4
            };
        }
        let size = size.div_ceil(4) * 4;
        self.align(4);
        let vtable = self.buf.len();
        self.buf
            .extend_from_slice(&((4 + 2 * n_slots) as u16).to_le_bytes());
        self.buf.extend_from_slice(&(size as u16).to_le_bytes());
        for o in offsets {
            self.buf.extend_from_slice(&o.to_le_bytes());
        }
        self.align(4);
        let table = self.buf.len();
        self.buf
            .extend_from_slice(&((table - vtable) as i32).to_le_bytes());
        let mut refs = vec![];
        for (_, value) in ordered {
            match value {
                Field::Byte(b) => self.buf.push(*b),
                Field::Int(i) => self.buf.extend_from_slice(&i.to_le_bytes()),
                Field::Ref => {
                    refs.push(self.buf.len());
                    self.buf.extend_from_slice(&[0; 4]);
                }
            }
        }
        self.buf.resize(table + size, 0);
        (table, refs)
    }

    /// A vector of `n` references; returns its position and its elements' positions.
    fn vec_refs(&mut self, n: usize) -> (usize, Vec<usize>) {
        self.align(4);
        let pos = self.buf.len();
        self.buf.extend_from_slice(&(n as u32).to_le_bytes());
        let elems = (0..n).map(|i| pos + 4 + 4 * i).collect();
        self.buf.resize(pos + 4 + 4 * n, 0);
        (pos, elems)
    }

    fn vec_i32(&mut self, v: &[i32]) -> usize {
        self.align(4);
        let pos = self.buf.len();
        self.buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&i32_bytes(v));
        pos
    }

    /// Byte vector whose data starts 16-aligned, as TFLite buffers are (`force_align: 16`).
    fn vec_bytes_aligned(&mut self, v: &[u8]) -> usize {
        while !(self.buf.len() + 4).is_multiple_of(16) {
            self.buf.push(0);
        }
        let pos = self.buf.len();
        self.buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(v);
        pos
    }

    fn string(&mut self, s: &str) -> usize {
        self.align(4);
        let pos = self.buf.len();
        self.buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        pos
    }

    /// Resolves the references and appends the original bytes after the prefix.
    fn finish(mut self, original: &[u8]) -> NnResult<Vec<u8>> {
        // Keep the original's alignment (16 for buffer data).
        self.align(16);
        let prefix = self.buf.len();
        let total = prefix + original.len();
        if u32::try_from(total).is_err() {
            return Err(NnError::too_large(
                "the rewritten TFLite model would pass the 2 GiB flatbuffer limit",
            ));
        }
        for (slot, target) in std::mem::take(&mut self.fixups) {
            let abs = match target {
                Target::New(p) => p,
                Target::Old(p) => prefix + p,
            };
            // Flatbuffer offsets are unsigned: the layout above always points forward.
            let rel = abs
                .checked_sub(slot)
                .filter(|&r| r > 0)
                .ok_or_else(|| NnError::runtime("TFLite rewrite: backward reference"))?;
            self.buf[slot..slot + 4].copy_from_slice(&(rel as u32).to_le_bytes());
        }
        self.buf.extend_from_slice(original);
        // The result must read back as a valid model.
        tflite::root_as_model(&self.buf).map_err(|e| {
            NnError::runtime(format!("TFLite rewrite produced an invalid model: {e}"))
        })?;
        Ok(self.buf)
    }
}
