//! The model being rewritten: the original tables kept where they are, the tensors, operators,
//! constants and operator codes the rules add, and how it is all written out.
//!
//! The rewrite never copies the original model: flatbuffer offsets only point forward, so the
//! new root tables (model, subgraph, the vectors that changed, new tensors, operators and
//! buffers) go in a prefix placed before the original bytes, and refer to its unchanged tables
//! (tensors, operators, buffers) where they are (`writer.rs`).
use super::rules::{self, Matched};
use super::validate::validate;
use super::writer::{i32_bytes, Field, Target, Writer};
use super::{builtin_of, elem_size, invalid, op_name};
use crate::error::{NnError, NnResult};
use std::collections::HashMap;
use tract_onnx::prelude::f16;
use tract_tflite::tflite::{self, BuiltinOperator, BuiltinOptions, Model, SubGraph, TensorType};

/// Checks the flatbuffer and the indices tract-tflite follows without checking (an index out of
/// range there is a panic, a trap in wasm); rewrites the model when one of the rules applies.
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

/// A constant value known at load time.
#[derive(Clone)]
pub(super) struct Const {
    pub ty: TensorType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl Const {
    pub fn f32s(&self) -> NnResult<Vec<f32>> {
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

pub(super) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
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

pub(super) struct Rewriter<'a> {
    pub model: Model<'a>,
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

    pub(super) fn old_tensor(&self, ix: i32) -> Option<tflite::Tensor<'a>> {
        let tensors = self.sg.tensors()?;
        (ix >= 0 && (ix as usize) < tensors.len()).then(|| tensors.get(ix as usize))
    }

    pub(super) fn shape(&self, ix: i32) -> Vec<i32> {
        match &self.tensors[ix as usize] {
            TensorOut::New { shape, .. } => shape.clone(),
            TensorOut::Keep(_) => self
                .old_tensor(ix)
                .and_then(|t| t.shape())
                .map(|s| s.iter().collect())
                .unwrap_or_default(),
        }
    }

    pub(super) fn ty(&self, ix: i32) -> TensorType {
        match &self.tensors[ix as usize] {
            TensorOut::New { ty, .. } => *ty,
            TensorOut::Keep(_) => self
                .old_tensor(ix)
                .map_or(TensorType::FLOAT32, |t| t.type_()),
        }
    }

    pub(super) fn name(&self, ix: i32) -> String {
        match &self.tensors[ix as usize] {
            TensorOut::New { name, .. } => name.clone(),
            TensorOut::Keep(_) => self
                .old_tensor(ix)
                .and_then(|t| t.name())
                .unwrap_or("")
                .to_string(),
        }
    }

    pub(super) fn concrete_shape(&self, ix: i32) -> NnResult<Vec<usize>> {
        self.shape(ix)
            .iter()
            .map(|&d| {
                usize::try_from(d)
                    .map_err(|_| invalid(format!("tensor \"{}\" has dimension {d}", self.name(ix))))
            })
            .collect()
    }

    /// The tensor's value when it is a constant (in the file, or computed by the rewrite).
    pub(super) fn konst(&self, ix: i32) -> NnResult<Option<Const>> {
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

    pub(super) fn add_tensor(&mut self, name: String, ty: TensorType, shape: Vec<i32>) -> i32 {
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

    pub(super) fn add_const(&mut self, name: String, c: Const) -> i32 {
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
    pub(super) fn set_const(&mut self, ix: i32, c: Const) {
        let buffer = self.new_buffer(c.data.clone());
        self.tensors[ix as usize] = TensorOut::New {
            shape: c.shape.iter().map(|&d| d as i32).collect(),
            ty: c.ty,
            buffer,
            name: self.name(ix),
        };
        self.consts.insert(ix, c);
    }

    pub(super) fn push(&mut self, op: BuiltinOperator, inputs: Vec<i32>, outputs: Vec<i32>) {
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

    pub(super) fn push_with(
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

    /// Applies the rules to every operator; false when none applied.
    fn run(&mut self) -> NnResult<bool> {
        let mut changed = false;
        let ops: Vec<tflite::Operator<'a>> = self.sg.operators().iter().flatten().collect();
        // tract-tflite has no custom operators: name the ones no rule replaces, all at once.
        let mut missing: Vec<(String, usize)> = vec![];
        for op in &ops {
            let (code, custom) = &self.codes[op.opcode_index() as usize];
            let name = match custom {
                Some(name) if !rules::replaces_custom(name) => name.clone(),
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
            let m = Matched {
                op: *op,
                code,
                inputs: op.inputs().iter().flatten().collect(),
                outputs: op.outputs().iter().flatten().collect(),
            };
            let done = rules::apply(self, &m, custom.as_deref()).map_err(|e| {
                NnError::new(
                    e.code,
                    format!(
                        "operator {k} ({}, output \"{}\"): {}",
                        custom.clone().unwrap_or_else(|| op_name(code)),
                        self.name(m.output()),
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

    pub(super) fn i32_const(&mut self, name: String, values: &[i32]) -> i32 {
        self.i32_const_shaped(name, values, &[values.len()])
    }

    /// RESHAPE of `x` to `shape`, into a new tensor.
    pub(super) fn reshape(&mut self, x: i32, shape: &[i32], ty: TensorType, name: &str) -> i32 {
        let out = self.add_tensor(name.to_string(), ty, shape.to_vec());
        let s = self.i32_const(format!("{name}.shape"), shape);
        self.push(BuiltinOperator::RESHAPE, vec![x, s], vec![out]);
        out
    }

    pub(super) fn i32_const_shaped(
        &mut self,
        name: String,
        values: &[i32],
        shape: &[usize],
    ) -> i32 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Encoding, Graph, Limits, TensorData};

    const TINY_CONV: &[u8] = include_bytes!("../../../../models/tiny-conv.tflite");

    fn probabilities(bytes: &[u8]) -> Vec<u8> {
        let g = Graph::load(&[bytes], Encoding::TfLite, Limits::default()).unwrap();
        let x: Vec<u8> = (0..64)
            .flat_map(|i| (i as f32 / 64.0).to_le_bytes())
            .collect();
        let input = TensorData::new(vec![1, 8, 8, 1], crate::ElementType::F32, x);
        let out = g.compute(vec![("input".into(), input)]).unwrap();
        out[0].1.data.clone()
    }

    /// A model no rule touches, written anyway: the prefix's new root refers to every original
    /// table where it is, the original bytes follow unchanged, and it computes the same.
    #[test]
    fn writing_an_unchanged_model_round_trips() {
        let model = tflite::root_as_model(TINY_CONV).unwrap();
        let sg = validate(&model).unwrap();
        let mut rw = Rewriter::new(model, sg).unwrap();
        assert!(!rw.run().unwrap(), "no rule applies to tiny-conv");
        let out = rw.write(TINY_CONV).unwrap();
        assert_eq!(&out[out.len() - TINY_CONV.len()..], TINY_CONV);
        assert_eq!((out.len() - TINY_CONV.len()) % 16, 0);

        let (a, b) = (model, tflite::root_as_model(&out).unwrap());
        let (sa, sb) = (a.subgraphs().unwrap().get(0), b.subgraphs().unwrap().get(0));
        let names = |sg: &SubGraph| -> Vec<String> {
            let t = sg.tensors().unwrap();
            t.iter().map(|t| t.name().unwrap().to_string()).collect()
        };
        assert_eq!(names(&sa), names(&sb));
        let n_ops = |sg: &SubGraph| sg.operators().unwrap().len();
        assert_eq!(n_ops(&sa), n_ops(&sb));
        assert_eq!(a.buffers().unwrap().len(), b.buffers().unwrap().len());
        assert_eq!(probabilities(TINY_CONV), probabilities(&out));
    }
}
