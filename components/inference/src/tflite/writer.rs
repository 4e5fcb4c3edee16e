//! A flatbuffer writer that lays tables out front to back, so that every offset points forward
//! and the result can be placed before bytes it refers into (the original model's tables).
//! Just what the rewrite writes: tables of bytes, ints and references, vectors of references,
//! of i32 and of (16-aligned) bytes, and strings.
use crate::error::{NnError, NnResult};
use tract_tflite::tflite;

pub(super) fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A table field: scalars, or a reference filled in after the table is written.
#[derive(Clone, Copy)]
pub(super) enum Field {
    Byte(u8),
    Int(i32),
    Ref,
}

#[derive(Clone, Copy)]
pub(super) enum Target {
    /// A position in the new prefix.
    New(usize),
    /// A position in the original bytes.
    Old(usize),
}

/// Writes flatbuffer tables front to back, so that every offset points forward.
#[derive(Default)]
pub(super) struct Writer {
    pub buf: Vec<u8>,
    fixups: Vec<(usize, Target)>,
}

impl Writer {
    pub(super) fn align(&mut self, a: usize) {
        while !self.buf.len().is_multiple_of(a) {
            self.buf.push(0);
        }
    }

    pub(super) fn refer(&mut self, slot: usize, target: Target) {
        self.fixups.push((slot, target));
    }

    /// A table with `fields` (vtable slot, value); returns its position and the positions of
    /// its reference fields, in order. Four-byte fields first keep every field aligned.
    pub(super) fn table(&mut self, fields: &[(u16, Field)]) -> (usize, Vec<usize>) {
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
    pub(super) fn vec_refs(&mut self, n: usize) -> (usize, Vec<usize>) {
        self.align(4);
        let pos = self.buf.len();
        self.buf.extend_from_slice(&(n as u32).to_le_bytes());
        let elems = (0..n).map(|i| pos + 4 + 4 * i).collect();
        self.buf.resize(pos + 4 + 4 * n, 0);
        (pos, elems)
    }

    pub(super) fn vec_i32(&mut self, v: &[i32]) -> usize {
        self.align(4);
        let pos = self.buf.len();
        self.buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&i32_bytes(v));
        pos
    }

    /// Byte vector whose data starts 16-aligned, as TFLite buffers are (`force_align: 16`).
    pub(super) fn vec_bytes_aligned(&mut self, v: &[u8]) -> usize {
        while !(self.buf.len() + 4).is_multiple_of(16) {
            self.buf.push(0);
        }
        let pos = self.buf.len();
        self.buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(v);
        pos
    }

    pub(super) fn string(&mut self, s: &str) -> usize {
        self.align(4);
        let pos = self.buf.len();
        self.buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        pos
    }

    /// Resolves the references and appends the original bytes after the prefix.
    pub(super) fn finish(mut self, original: &[u8]) -> NnResult<Vec<u8>> {
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

#[cfg(test)]
mod tests {
    use super::super::testing::{build, f32_const, i32_const, m, o, t, T};
    use super::*;
    use tract_tflite::tflite::{BuiltinOperator, BuiltinOptions, TensorType};

    /// Every field the writer wrote reads back through the generated reader.
    #[test]
    fn a_written_model_reads_back() {
        let conv = vec![
            (0, Field::Byte(tflite::Padding::VALID.0 as u8)),
            (1, Field::Int(2)),
            (2, Field::Int(3)),
        ];
        let mut custom = o(BuiltinOperator::CUSTOM, &[3], &[4]);
        custom.custom = Some("SomethingCustom");
        custom.custom_options = Some(vec![1, 2, 3]);
        let bytes = build(&m(
            vec![
                t("x", &[1, 5, 5, 2]),
                f32_const("k", &[1, 1, 1, 2], &[0.5, -2.0]),
                T {
                    ty: TensorType::INT8,
                    ..t("unused", &[3])
                },
                t("y", &[1, 2, 2, 1]),
                i32_const("z", &[2], &[7, -9]),
            ],
            vec![
                o(BuiltinOperator::CONV_2D, &[0, 1, -1], &[3])
                    .with(BuiltinOptions::Conv2DOptions, conv),
                custom,
            ],
            &[0],
            &[3, 4],
        ));
        let model = tflite::root_as_model(&bytes).unwrap();
        assert_eq!(model.version(), 3);
        let sg = model.subgraphs().unwrap().get(0);
        let tensors = sg.tensors().unwrap();
        let names: Vec<_> = tensors.iter().map(|t| t.name().unwrap()).collect();
        assert_eq!(names, ["x", "k", "unused", "y", "z"]);
        let shape: Vec<i32> = tensors.get(0).shape().unwrap().iter().collect();
        assert_eq!(shape, [1, 5, 5, 2]);
        assert_eq!(tensors.get(2).type_(), TensorType::INT8);
        let buffers = model.buffers().unwrap();
        assert_eq!(buffers.len(), 3);
        assert!(buffers.get(0).data().is_none());
        let k = buffers
            .get(tensors.get(1).buffer() as usize)
            .data()
            .unwrap();
        assert_eq!(k.bytes(), [0.5f32, -2.0].map(f32::to_le_bytes).concat());
        // TFLite buffers are 16-aligned (kernels may read them in place).
        assert_eq!(
            k.bytes().as_ptr() as usize % 16,
            bytes.as_ptr() as usize % 16
        );
        let z = buffers
            .get(tensors.get(4).buffer() as usize)
            .data()
            .unwrap();
        assert_eq!(z.bytes(), i32_bytes(&[7, -9]));
        assert_eq!(sg.inputs().unwrap().iter().collect::<Vec<_>>(), [0]);
        assert_eq!(sg.outputs().unwrap().iter().collect::<Vec<_>>(), [3, 4]);

        let ops = sg.operators().unwrap();
        let codes = model.operator_codes().unwrap();
        let conv = ops.get(0);
        assert_eq!(
            conv.inputs().unwrap().iter().collect::<Vec<_>>(),
            [0, 1, -1]
        );
        assert_eq!(
            codes.get(conv.opcode_index() as usize).builtin_code(),
            BuiltinOperator::CONV_2D
        );
        let opts = conv.builtin_options_as_conv_2_doptions().unwrap();
        assert_eq!(opts.padding(), tflite::Padding::VALID);
        assert_eq!((opts.stride_w(), opts.stride_h()), (2, 3));
        // Fields not written read as the schema's defaults.
        assert_eq!(opts.dilation_w_factor(), 1);
        let custom = ops.get(1);
        let code = codes.get(custom.opcode_index() as usize);
        assert_eq!(code.custom_code(), Some("SomethingCustom"));
        assert_eq!(custom.custom_options().unwrap().bytes(), [1, 2, 3]);
    }

    #[test]
    fn a_backward_reference_is_an_error_not_a_bad_model() {
        let mut w = Writer::default();
        w.buf.extend_from_slice(&[0; 8]);
        let (pos, _) = w.vec_refs(0);
        w.refer(pos, Target::New(0));
        let err = w.finish(&[]).unwrap_err();
        assert!(
            err.message.contains("backward reference"),
            "{}",
            err.message
        );
    }
}
