//! Checks a TFLite model's operators as tract-tflite will read them, before it does.
//!
//! tract-tflite trusts the flatbuffer: it indexes inputs by position, unwraps options and
//! constants, and computes with ranks and axes as given, so a malformed model is an index out of
//! bounds or an arithmetic overflow inside tract: a panic, which in wasm is a trap of the whole
//! engine. This pass walks the operators in the order tract imports them, knowing the rank of
//! every tensor tract will have wired (inferred as tract infers it, not taken from the file),
//! and refuses what tract would not survive: wrong arity, ranks, axes and permutations out of
//! range, constants that must be constants, missing options and quantization parameters, outputs
//! nothing computes. Each rule names tract's assumption it protects; the fuzzer's findings that
//! led to them are in tests/fuzz-regressions/ (tflite-*).
//!
//! It runs on the bytes tract reads (after the rewrite). Operators tract does not have are
//! left to tract, which refuses them with an error before anything after them is read.

use super::{builtin_of, invalid, op_name};
use crate::error::{NnError, NnResult};
use tract_onnx::prelude::TypedModel;
use tract_tflite::tflite::{self, BuiltinOperator as Op, Model, TensorType};

/// No tensor of a real model has more dimensions (tract's kernels assume a few).
const MAX_RANK: usize = 8;
/// Sizes given as constants (pads, resize sizes, broadcast shapes): beyond this no tensor fits
/// the engine's limits anyway.
const MAX_CONST_DIM: i64 = 1 << 24;

/// What the checker knows of a tensor: its rank as tract will wire it.
#[derive(Clone, Copy)]
struct Known {
    rank: usize,
}

struct Graph<'a> {
    model: Model<'a>,
    sg: tflite::SubGraph<'a>,
    known: Vec<Option<Known>>,
}

impl<'a> Graph<'a> {
    /// A tensor by an index already checked to be in range.
    fn tensor(&self, ix: i32) -> tflite::Tensor<'a> {
        self.sg
            .tensors()
            .expect("checked: the subgraph has tensors")
            .get(ix as usize)
    }

    fn declared_rank(&self, ix: i32) -> usize {
        self.tensor(ix).shape().map_or(0, |s| s.len())
    }

    /// The tensor's constant data, when it has some (buffer 0 is the empty sentinel).
    fn const_data(&self, ix: i32) -> Option<&'a [u8]> {
        let t = self.tensor(ix);
        let b = t.buffer() as usize;
        if b == 0 {
            return None;
        }
        let buffers = self.model.buffers()?;
        if b >= buffers.len() {
            return None;
        }
        buffers
            .get(b)
            .data()
            .map(|d| d.bytes())
            .filter(|d| !d.is_empty())
    }

    /// An integer constant's values (INT32 or INT64), when its data matches its shape.
    fn const_ints(&self, ix: i32) -> Option<Vec<i64>> {
        let t = self.tensor(ix);
        let data = self.const_data(ix)?;
        let n: usize = t
            .shape()?
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(usize::try_from(d).ok()?))?;
        let size = match t.type_() {
            TensorType::INT32 => 4,
            TensorType::INT64 => 8,
            _ => return None,
        };
        if n.checked_mul(size)? != data.len() {
            return None;
        }
        Some(
            data.chunks_exact(size)
                .map(|c| match size {
                    4 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64,
                    _ => i64::from_le_bytes(c.try_into().unwrap()),
                })
                .collect(),
        )
    }

    fn quantized(&self, ix: i32) -> bool {
        self.tensor(ix)
            .quantization()
            .is_some_and(|q| q.scale().is_some() && q.zero_point().is_some())
    }
}

/// Checks the first subgraph of `bytes` (a model `rewrite` accepted).
pub fn check(bytes: &[u8]) -> NnResult<()> {
    let model = tflite::root_as_model(bytes).map_err(invalid)?;
    let sg = model
        .subgraphs()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("it has no subgraph"))?
        .get(0);
    let tensors = sg
        .tensors()
        .ok_or_else(|| invalid("the subgraph has no tensors"))?;
    let codes = model
        .operator_codes()
        .ok_or_else(|| invalid("it has no operator codes"))?;
    let inputs = sg
        .inputs()
        .ok_or_else(|| invalid("the subgraph has no input list"))?;
    let outputs = sg
        .outputs()
        .ok_or_else(|| invalid("the subgraph has no output list"))?;
    let operators = sg
        .operators()
        .ok_or_else(|| invalid("the subgraph has no operator list"))?;

    for (i, t) in tensors.iter().enumerate() {
        let shape = t.shape().map(|s| s.len()).unwrap_or(0);
        if shape > MAX_RANK {
            return Err(invalid(format!(
                "tensor {i} has rank {shape}, above {MAX_RANK}"
            )));
        }
        // tract reads the first scale and zero point of every quantized tensor.
        if let Some(q) = t.quantization() {
            if let (Some(s), Some(z)) = (q.scale(), q.zero_point()) {
                if s.is_empty() || z.is_empty() {
                    return Err(invalid(format!(
                        "tensor {i} has quantization parameters without values"
                    )));
                }
            }
        }
    }

    let mut g = Graph {
        model,
        sg,
        known: vec![None; tensors.len()],
    };
    for ix in inputs.iter() {
        if ix < 0 || ix as usize >= tensors.len() {
            return Err(invalid(format!("a subgraph input refers to tensor {ix}")));
        }
        // Per-axis quantized inputs are not wired by tract (an operator reading one fails there).
        let per_axis =
            g.tensor(ix)
                .quantization()
                .is_some_and(|q| match (q.scale(), q.zero_point()) {
                    (Some(s), Some(z)) => {
                        s.iter().any(|x| x != s.get(0)) || z.iter().any(|x| x != z.get(0))
                    }
                    _ => false,
                });
        if !per_axis {
            // tract takes an input's shape as declared; its kernels assume no dimension is empty
            // (a 0 made a max pool's row iterator panic: tflite-maxpool-zero-size-input).
            let dims: Vec<i32> = g
                .tensor(ix)
                .shape()
                .map(|s| s.iter().collect())
                .unwrap_or_default();
            if let Some(d) = dims
                .iter()
                .find(|&&d| !(1..=MAX_CONST_DIM).contains(&(d as i64)))
            {
                return Err(invalid(format!(
                    "input tensor {ix} has shape {dims:?}: dimension {d} is not in 1..={MAX_CONST_DIM}"
                )));
            }
            g.known[ix as usize] = Some(Known {
                rank: g.declared_rank(ix),
            });
        }
    }

    for (k, op) in operators.iter().enumerate() {
        let code_ix = op.opcode_index() as usize;
        if code_ix >= codes.len() {
            return Err(invalid(format!("operator {k} has opcode index {code_ix}")));
        }
        let code = builtin_of(&codes.get(code_ix));
        let ins: Vec<i32> = op.inputs().map(|v| v.iter().collect()).unwrap_or_default();
        let outs: Vec<i32> = op.outputs().map(|v| v.iter().collect()).unwrap_or_default();
        let what = format!("operator {k} ({})", op_name(code));
        if !handled(code) {
            // tract refuses it (an error naming it), and reads nothing after it.
            return Ok(());
        }
        for &ix in ins.iter().chain(&outs) {
            if ix == -1 {
                return Err(NnError::unsupported(format!(
                    "{what} has an omitted optional input (-1); this engine needs every input given"
                )));
            }
            if ix < 0 || ix as usize >= tensors.len() {
                return Err(invalid(format!("{what} refers to tensor {ix}")));
            }
        }
        let mut ranks = Vec::with_capacity(ins.len());
        for &ix in &ins {
            let known = match g.known[ix as usize] {
                Some(r) => r,
                // tract makes a constant of an input nothing computed yet; without data it fails.
                None if g.const_data(ix).is_some() => {
                    let r = Known {
                        rank: g.declared_rank(ix),
                    };
                    g.known[ix as usize] = Some(r);
                    r
                }
                None => {
                    return Err(invalid(format!(
                        "{what} reads tensor {ix}, which no earlier operator computes and which is not an input or a constant"
                    )))
                }
            };
            ranks.push(known.rank);
        }
        if outs.len() != 1 {
            return Err(invalid(format!(
                "{what} has {} outputs; it has one",
                outs.len()
            )));
        }
        let rank = check_op(&g, code, &op, &ins, &ranks, outs[0])
            .map_err(|e| NnError::new(e.code, format!("{what}: {}", e.message)))?;
        if rank > MAX_RANK {
            return Err(invalid(format!("{what} makes a tensor of rank {rank}")));
        }
        g.known[outs[0] as usize] = Some(Known { rank });
    }
    for ix in outputs.iter() {
        if ix < 0 || ix as usize >= tensors.len() || g.known[ix as usize].is_none() {
            return Err(invalid(format!(
                "the subgraph's output {ix} is not computed by any operator, nor an input"
            )));
        }
    }
    Ok(())
}

const ELEMENTWISE: &[Op] = &[
    Op::ABS,
    Op::CEIL,
    Op::COS,
    Op::EXP,
    Op::FLOOR,
    Op::HARD_SWISH,
    Op::LEAKY_RELU,
    Op::LOG,
    Op::LOGICAL_NOT,
    Op::SIN,
    Op::LOGISTIC,
    Op::SQRT,
    Op::SQUARE,
    Op::RSQRT,
    Op::TANH,
    Op::RELU,
    Op::RELU6,
];
const BINARY: &[Op] = &[
    Op::ADD,
    Op::SUB,
    Op::MUL,
    Op::DIV,
    Op::MAXIMUM,
    Op::MINIMUM,
    Op::EQUAL,
    Op::NOT_EQUAL,
    Op::LESS,
    Op::LESS_EQUAL,
    Op::GREATER,
    Op::GREATER_EQUAL,
    Op::LOGICAL_OR,
    Op::LOGICAL_AND,
];
const REDUCE: &[Op] = &[
    Op::MEAN,
    Op::SUM,
    Op::REDUCE_MAX,
    Op::REDUCE_MIN,
    Op::REDUCE_PROD,
];
const OTHERS: &[Op] = &[
    Op::SELECT,
    Op::SELECT_V2,
    Op::CONCATENATION,
    Op::EXPAND_DIMS,
    Op::PAD,
    Op::PADV2,
    Op::RESHAPE,
    Op::SHAPE,
    Op::SLICE,
    Op::SQUEEZE,
    Op::STRIDED_SLICE,
    Op::TRANSPOSE,
    Op::BROADCAST_TO,
    Op::CONV_2D,
    Op::DEPTHWISE_CONV_2D,
    Op::AVERAGE_POOL_2D,
    Op::MAX_POOL_2D,
    Op::FULLY_CONNECTED,
    Op::BATCH_MATMUL,
    Op::SOFTMAX,
    Op::RESIZE_BILINEAR,
    Op::RESIZE_NEAREST_NEIGHBOR,
];

/// The operators tract-tflite 0.23.9 registers (`ops/*.rs`): the ones checked here.
fn handled(code: i32) -> bool {
    [ELEMENTWISE, BINARY, REDUCE, OTHERS]
        .iter()
        .any(|set| set.iter().any(|op| op.0 == code))
}

fn arity(ins: &[i32], n: usize) -> NnResult<()> {
    if ins.len() != n {
        return Err(invalid(format!(
            "{} inputs where {n} are needed",
            ins.len()
        )));
    }
    Ok(())
}

fn need_rank(what: &str, rank: usize, want: impl Fn(usize) -> bool, said: &str) -> NnResult<()> {
    if !want(rank) {
        return Err(invalid(format!("{what} has rank {rank}; {said}")));
    }
    Ok(())
}

/// An integer constant tract reads as one (it unwraps or indexes it).
fn const_ints(g: &Graph, ix: i32, what: &str) -> NnResult<Vec<i64>> {
    g.const_ints(ix).ok_or_else(|| {
        NnError::unsupported(format!(
            "{what} must be an int32 constant whose data matches its shape"
        ))
    })
}

/// An axis in `-rank..rank` (`-rank..=rank` with `inclusive`), made non-negative.
fn axis(what: &str, a: i64, rank: usize, inclusive: bool) -> NnResult<usize> {
    let r = rank as i64 + i64::from(inclusive);
    let n = if a < 0 { a + rank as i64 } else { a };
    if !(0..r).contains(&n) || a < -(rank as i64) {
        return Err(invalid(format!(
            "{what} {a} is out of range for rank {rank}"
        )));
    }
    Ok(n as usize)
}

fn distinct(what: &str, axes: &[usize]) -> NnResult<()> {
    let mut sorted = axes.to_vec();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid(format!("{what} names an axis twice: {axes:?}")));
    }
    Ok(())
}

/// Conv / depthwise / fully connected with a quantized output: tract reads the input's and the
/// kernel's quantization parameters without checking they exist.
fn check_quantized_linear(g: &Graph, ins: &[i32], out: i32) -> NnResult<()> {
    if !g.quantized(out) {
        return Ok(());
    }
    if !g.quantized(ins[0]) || !g.quantized(ins[1]) {
        return Err(invalid(
            "a quantized output needs quantization parameters on its input and kernel",
        ));
    }
    Ok(())
}

/// Checks one operator tract-tflite has; returns the rank of its output as tract wires it.
fn check_op(
    g: &Graph,
    code: i32,
    op: &tflite::Operator,
    ins: &[i32],
    ranks: &[usize],
    out: i32,
) -> NnResult<usize> {
    let c = Op(code);
    if ELEMENTWISE.contains(&c) {
        arity(ins, 1)?;
        return Ok(ranks[0]);
    }
    if BINARY.contains(&c) {
        arity(ins, 2)?;
        return Ok(ranks[0].max(ranks[1]));
    }
    if REDUCE.contains(&c) {
        arity(ins, 2)?;
        let options = op
            .builtin_options_as_reducer_options()
            .ok_or_else(|| invalid("no reducer options"))?;
        let values = const_ints(g, ins[1], "the axes")?;
        // tract takes axes as they are (a negative one wraps to a huge index).
        let mut axes = vec![];
        for a in values {
            if a < 0 || a as usize >= ranks[0] {
                return Err(NnError::unsupported(format!(
                    "axis {a} for a tensor of rank {}; this engine takes axes in 0..rank",
                    ranks[0]
                )));
            }
            axes.push(a as usize);
        }
        distinct("the axes", &axes)?;
        return Ok(if options.keep_dims() {
            ranks[0]
        } else {
            ranks[0] - axes.len()
        });
    }
    match c {
        Op::SELECT | Op::SELECT_V2 => {
            arity(ins, 3)?;
            Ok(ranks.iter().copied().max().unwrap_or(0))
        }
        Op::CONCATENATION => {
            if ins.is_empty() {
                return Err(invalid("no inputs"));
            }
            let options = op
                .builtin_options_as_concatenation_options()
                .ok_or_else(|| invalid("no concatenation options"))?;
            if ranks.iter().any(|&r| r != ranks[0]) {
                return Err(invalid(format!("inputs of different ranks {ranks:?}")));
            }
            // tract unwraps the common type of the inputs.
            let ty = g.tensor(ins[0]).type_();
            if ins.iter().any(|&i| g.tensor(i).type_() != ty) {
                return Err(invalid("inputs of different types"));
            }
            axis("axis", options.axis() as i64, ranks[0], false)?;
            Ok(ranks[0])
        }
        Op::EXPAND_DIMS => {
            arity(ins, 2)?;
            let values = const_ints(g, ins[1], "the axis")?;
            // tract adds each axis (made non-negative with the input's rank) to the growing tensor.
            for &a in &values {
                let n = if a < 0 { a + ranks[0] as i64 } else { a };
                if n < 0 || n > ranks[0] as i64 {
                    return Err(invalid(format!(
                        "axis {a} is out of range for rank {}",
                        ranks[0]
                    )));
                }
            }
            Ok(ranks[0] + values.len())
        }
        Op::PAD | Op::PADV2 => {
            arity(ins, if c == Op::PAD { 2 } else { 3 })?;
            let pads = const_ints(g, ins[1], "the paddings")?;
            let shape: Vec<i32> = g
                .tensor(ins[1])
                .shape()
                .map(|s| s.iter().collect())
                .unwrap_or_default();
            if shape != [ranks[0] as i32, 2] {
                return Err(invalid(format!(
                    "paddings of shape {shape:?} for a tensor of rank {}; [rank, 2] is needed",
                    ranks[0]
                )));
            }
            if let Some(p) = pads.iter().find(|&&p| !(0..=MAX_CONST_DIM).contains(&p)) {
                return Err(invalid(format!("padding {p}")));
            }
            if c == Op::PADV2 && g.const_data(ins[2]).is_none() {
                return Err(NnError::unsupported("the padding value must be a constant"));
            }
            Ok(ranks[0])
        }
        Op::RESHAPE => {
            let shape = match ins.len() {
                2 => const_ints(g, ins[1], "the new shape")?,
                1 => op
                    .builtin_options_as_reshape_options()
                    .and_then(|o| o.new_shape())
                    .map(|v| v.iter().map(i64::from).collect())
                    .ok_or_else(|| invalid("no new shape (neither an input nor options)"))?,
                n => return Err(invalid(format!("{n} inputs"))),
            };
            if ins.len() == 2 && g.declared_rank(ins[1]) > 1 {
                return Err(invalid("the new shape is not a list"));
            }
            if shape.iter().filter(|&&d| d == -1).count() > 1
                || shape.iter().any(|&d| d < -1 || d == 0 || d > MAX_CONST_DIM)
            {
                return Err(invalid(format!("new shape {shape:?}")));
            }
            Ok(shape.len())
        }
        Op::SHAPE => {
            arity(ins, 1)?;
            Ok(1)
        }
        Op::SLICE => {
            arity(ins, 3)?;
            // tract reads one begin and one size per axis of the input, when both are constants.
            if let (Some(begin), Some(size)) = (g.const_ints(ins[1]), g.const_ints(ins[2])) {
                if begin.len() != ranks[0] || size.len() != ranks[0] {
                    return Err(invalid(format!(
                        "{} begins and {} sizes for a tensor of rank {}",
                        begin.len(),
                        size.len(),
                        ranks[0]
                    )));
                }
                if begin.iter().any(|&v| !(0..=MAX_CONST_DIM).contains(&v))
                    || size.iter().any(|&v| !(1..=MAX_CONST_DIM).contains(&v))
                {
                    return Err(NnError::unsupported(format!(
                        "begin {begin:?} and size {size:?}: this engine takes begins from 0 and sizes from 1 (no -1 for \"to the end\")"
                    )));
                }
            }
            Ok(ranks[0])
        }
        Op::SQUEEZE => {
            arity(ins, 1)?;
            let dims = op
                .builtin_options_as_squeeze_options()
                .and_then(|o| o.squeeze_dims())
                .ok_or_else(|| {
                    NnError::unsupported(
                        "SQUEEZE without squeeze_dims (squeezing every 1) is not supported",
                    )
                })?;
            let axes = dims
                .iter()
                .map(|a| axis("squeeze dim", a as i64, ranks[0], false))
                .collect::<NnResult<Vec<_>>>()?;
            distinct("squeeze_dims", &axes)?;
            Ok(ranks[0] - axes.len())
        }
        Op::STRIDED_SLICE => {
            arity(ins, 4)?;
            for (ix, what) in [(ins[1], "begin"), (ins[2], "end"), (ins[3], "strides")] {
                let v = const_ints(g, ix, what)?;
                if v.len() != ranks[0] {
                    return Err(invalid(format!(
                        "{} {what} values for a tensor of rank {}",
                        v.len(),
                        ranks[0]
                    )));
                }
                if what == "strides" && v.contains(&0) {
                    return Err(invalid("a stride of 0"));
                }
            }
            Ok(ranks[0])
        }
        Op::TRANSPOSE => {
            arity(ins, 2)?;
            let perm = const_ints(g, ins[1], "the permutation")?;
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            if perm.len() != ranks[0] || sorted.iter().copied().ne(0..ranks[0] as i64) {
                return Err(invalid(format!(
                    "permutation {perm:?} for a tensor of rank {}",
                    ranks[0]
                )));
            }
            Ok(ranks[0])
        }
        Op::BROADCAST_TO => {
            arity(ins, 2)?;
            let shape = const_ints(g, ins[1], "the shape")?;
            if shape.len() < ranks[0] || shape.iter().any(|&d| !(1..=MAX_CONST_DIM).contains(&d)) {
                return Err(invalid(format!(
                    "shape {shape:?} for a tensor of rank {}",
                    ranks[0]
                )));
            }
            Ok(shape.len())
        }
        Op::CONV_2D | Op::DEPTHWISE_CONV_2D => {
            arity(ins, 3)?;
            need_rank("the input", ranks[0], |r| r == 4, "NHWC (4) is needed")?;
            need_rank("the kernel", ranks[1], |r| r == 4, "OHWI (4) is needed")?;
            need_rank("the bias", ranks[2], |r| r == 1, "1 is needed")?;
            check_quantized_linear(g, ins, out)?;
            Ok(4)
        }
        Op::AVERAGE_POOL_2D | Op::MAX_POOL_2D => {
            arity(ins, 1)?;
            need_rank("the input", ranks[0], |r| r == 4, "NHWC (4) is needed")?;
            // tract takes the channel count from the output tensor the file declares.
            need_rank(
                "the declared output",
                g.declared_rank(out),
                |r| r == 4,
                "NHWC (4) is needed",
            )?;
            Ok(4)
        }
        Op::FULLY_CONNECTED => {
            arity(ins, 3)?;
            need_rank("the input", ranks[0], |r| r == 2, "2 is needed")?;
            need_rank("the weights", ranks[1], |r| r == 2, "2 is needed")?;
            need_rank("the bias", ranks[2], |r| r == 1, "1 is needed")?;
            check_quantized_linear(g, ins, out)?;
            Ok(2)
        }
        Op::BATCH_MATMUL => {
            arity(ins, 2)?;
            if ranks[0] != ranks[1] || ranks[0] < 2 {
                return Err(invalid(format!(
                    "operands of ranks {ranks:?}; equal ranks of at least 2 are needed"
                )));
            }
            Ok(ranks[0])
        }
        Op::SOFTMAX => {
            arity(ins, 1)?;
            need_rank("the input", ranks[0], |r| r >= 1, "at least 1 is needed")?;
            Ok(ranks[0])
        }
        Op::RESIZE_BILINEAR | Op::RESIZE_NEAREST_NEIGHBOR => {
            arity(ins, 2)?;
            need_rank("the input", ranks[0], |r| r == 4, "NHWC (4) is needed")?;
            let sizes = const_ints(g, ins[1], "the size")?;
            if sizes.len() != 2 || sizes.iter().any(|&d| !(1..=MAX_CONST_DIM).contains(&d)) {
                return Err(invalid(format!("size {sizes:?}")));
            }
            Ok(4)
        }
        _ => Err(NnError::unsupported(format!(
            "{} is not checked",
            op_name(code)
        ))),
    }
}

/// After tract has wired the model (every shape is concrete: TFLite has no symbolic dimensions):
/// no operator may compute an empty tensor. tract's kernels assume they do not (a max pool whose
/// window outgrew its input, so that its output had no row, panicked on its first run:
/// tflite-maxpool-window-larger-than-input), and no model computes nothing on purpose. Constants
/// may be empty (the shape `[]` of a reshape to a scalar is).
pub fn check_wired(model: &TypedModel) -> NnResult<()> {
    for node in model.nodes() {
        if node.op_is::<tract_onnx::tract_core::ops::konst::Const>() {
            continue;
        }
        for out in &node.outputs {
            if let Some(dims) = out.fact.shape.as_concrete() {
                if dims.contains(&0) {
                    return Err(invalid(format!(
                        "operator \"{}\" computes an empty tensor (shape {dims:?}); check its window, strides and sizes",
                        node.name
                    )));
                }
            }
        }
    }
    Ok(())
}
