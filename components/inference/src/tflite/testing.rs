//! Small TFLite models for the unit tests, written with the rewrite's own writer (`writer.rs`),
//! including ones no converter would write (indices out of range, missing names).
use super::writer::{i32_bytes, Field, Target, Writer};
use tract_tflite::tflite::{BuiltinOperator, BuiltinOptions, TensorType};

pub(super) struct T {
    pub name: Option<&'static str>,
    pub shape: Option<Vec<i32>>,
    pub ty: TensorType,
    pub data: Option<Vec<u8>>,
    /// Overrides the buffer index (by default: the next one when there is data, else 0).
    pub buffer: Option<u32>,
}

pub(super) fn t(name: &'static str, shape: &[i32]) -> T {
    T {
        name: Some(name),
        shape: Some(shape.to_vec()),
        ty: TensorType::FLOAT32,
        data: None,
        buffer: None,
    }
}

pub(super) fn f32_const(name: &'static str, shape: &[i32], v: &[f32]) -> T {
    T {
        data: Some(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        ..t(name, shape)
    }
}

pub(super) fn i32_const(name: &'static str, shape: &[i32], v: &[i32]) -> T {
    T {
        ty: TensorType::INT32,
        data: Some(i32_bytes(v)),
        ..t(name, shape)
    }
}

pub(super) struct O {
    pub code: BuiltinOperator,
    pub custom: Option<&'static str>,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub options: Option<(BuiltinOptions, Vec<(u16, Field)>)>,
    pub custom_options: Option<Vec<u8>>,
    /// Overrides the operator code index.
    pub opcode_index: Option<u32>,
}

pub(super) fn o(code: BuiltinOperator, inputs: &[i32], outputs: &[i32]) -> O {
    O {
        code,
        custom: None,
        inputs: inputs.to_vec(),
        outputs: outputs.to_vec(),
        options: None,
        custom_options: None,
        opcode_index: None,
    }
}

impl O {
    pub fn with(mut self, kind: BuiltinOptions, fields: Vec<(u16, Field)>) -> O {
        self.options = Some((kind, fields));
        self
    }
}

pub(super) struct M {
    pub tensors: Vec<T>,
    pub ops: Vec<O>,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    /// false: a model whose subgraph list is empty.
    pub subgraph: bool,
}

pub(super) fn m(tensors: Vec<T>, ops: Vec<O>, inputs: &[i32], outputs: &[i32]) -> M {
    M {
        tensors,
        ops,
        inputs: inputs.to_vec(),
        outputs: outputs.to_vec(),
        subgraph: true,
    }
}

/// The model as flatbuffer bytes, buffer 0 the empty sentinel, as converters write it.
pub(super) fn build(model: &M) -> Vec<u8> {
    let mut codes: Vec<(i32, Option<&str>)> = vec![];
    for op in &model.ops {
        let key = (op.code.0, op.custom);
        if !codes.contains(&key) {
            codes.push(key);
        }
    }
    let mut w = Writer::default();
    w.buf.extend_from_slice(&[0; 4]);
    w.buf.extend_from_slice(b"TFL3");
    let (root, slots) = w.table(&[
        (0, Field::Int(3)),
        (1, Field::Ref),
        (2, Field::Ref),
        (4, Field::Ref),
    ]);
    w.refer(0, Target::New(root));

    let (pos, elems) = w.vec_refs(codes.len());
    w.refer(slots[0], Target::New(pos));
    for (slot, (code, custom)) in elems.into_iter().zip(&codes) {
        let mut fields = vec![
            (0, Field::Byte((*code).min(127) as u8)),
            (2, Field::Int(1)),
            (3, Field::Int(*code)),
        ];
        if custom.is_some() {
            fields.push((1, Field::Ref));
        }
        let (t, refs) = w.table(&fields);
        w.refer(slot, Target::New(t));
        if let Some(name) = custom {
            let s = w.string(name);
            w.refer(refs[0], Target::New(s));
        }
    }

    let (pos, elems) = w.vec_refs(model.subgraph as usize);
    w.refer(slots[1], Target::New(pos));
    let mut buffers: Vec<&[u8]> = vec![];
    if model.subgraph {
        let (sg, refs) = w.table(&[
            (0, Field::Ref),
            (1, Field::Ref),
            (2, Field::Ref),
            (3, Field::Ref),
        ]);
        w.refer(elems[0], Target::New(sg));
        let (pos, elems) = w.vec_refs(model.tensors.len());
        w.refer(refs[0], Target::New(pos));
        for (slot, t) in elems.into_iter().zip(&model.tensors) {
            let buffer = t.buffer.unwrap_or_else(|| match &t.data {
                Some(d) => {
                    buffers.push(d);
                    buffers.len() as u32
                }
                None => 0,
            });
            let mut fields = vec![
                (1, Field::Byte(t.ty.0 as u8)),
                (2, Field::Int(buffer as i32)),
            ];
            if t.shape.is_some() {
                fields.push((0, Field::Ref));
            }
            if t.name.is_some() {
                fields.push((3, Field::Ref));
            }
            // References come back in slot order (wide fields first, by slot).
            fields.sort_by_key(|f| f.0);
            let (table, mut refs) = w.table(&fields);
            w.refer(slot, Target::New(table));
            refs.reverse();
            if let Some(shape) = &t.shape {
                let p = w.vec_i32(shape);
                w.refer(refs.pop().unwrap(), Target::New(p));
            }
            if let Some(name) = t.name {
                let p = w.string(name);
                w.refer(refs.pop().unwrap(), Target::New(p));
            }
        }
        let p = w.vec_i32(&model.inputs);
        w.refer(refs[1], Target::New(p));
        let p = w.vec_i32(&model.outputs);
        w.refer(refs[2], Target::New(p));
        let (pos, elems) = w.vec_refs(model.ops.len());
        w.refer(refs[3], Target::New(pos));
        for (slot, op) in elems.into_iter().zip(&model.ops) {
            let index = codes
                .iter()
                .position(|c| *c == (op.code.0, op.custom))
                .unwrap() as u32;
            let mut fields = vec![
                (0, Field::Int(op.opcode_index.unwrap_or(index) as i32)),
                (1, Field::Ref),
                (2, Field::Ref),
            ];
            if let Some((kind, _)) = &op.options {
                fields.push((3, Field::Byte(kind.0)));
                fields.push((4, Field::Ref));
            }
            if op.custom_options.is_some() {
                fields.push((5, Field::Ref));
            }
            let (table, refs) = w.table(&fields);
            w.refer(slot, Target::New(table));
            let p = w.vec_i32(&op.inputs);
            w.refer(refs[0], Target::New(p));
            let p = w.vec_i32(&op.outputs);
            w.refer(refs[1], Target::New(p));
            let mut next = 2;
            if let Some((_, opts)) = &op.options {
                let (p, _) = w.table(opts);
                w.refer(refs[next], Target::New(p));
                next += 1;
            }
            if let Some(bytes) = &op.custom_options {
                let p = w.vec_bytes_aligned(bytes);
                w.refer(refs[next], Target::New(p));
            }
        }
    }

    let (pos, elems) = w.vec_refs(1 + buffers.len());
    w.refer(slots[2], Target::New(pos));
    let (t, _) = w.table(&[]);
    w.refer(elems[0], Target::New(t));
    for (slot, data) in elems[1..].iter().zip(&buffers) {
        let (t, refs) = w.table(&[(0, Field::Ref)]);
        w.refer(*slot, Target::New(t));
        let p = w.vec_bytes_aligned(data);
        w.refer(refs[0], Target::New(p));
    }
    w.finish(&[]).expect("a model the test builder can write")
}
