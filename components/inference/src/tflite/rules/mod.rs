//! The rewrite rules: each replaces one operator tract-tflite lacks (or reads wrongly) with
//! constants or builtins it has. One rule per file, registered in `RULES` (name, the operator it
//! matches, the rewrite), as tract registers its own with `with_rule_for`.
//!
//! A rule returns `Ok(false)` to leave an operator it matched as it is (a `DEQUANTIZE` of int8
//! weights, which tract reads itself); the next rule for the same operator, if any, is tried.
//! Every rule has a fixture and a test against LiteRT in tests/models/test_tflite_rules.py.
use super::invalid;
use super::rewriter::Rewriter;
use crate::error::{NnError, NnResult};
use tract_tflite::tflite::{self, BuiltinOperator as Op};

mod default_options;
mod densify;
mod depth_to_space;
mod dequantize_fp16;
mod mean;
mod prelu;
mod transpose_conv_bias;

/// The operator a rule matches.
pub(super) enum On {
    Builtin(Op),
    /// A custom operator, by its `custom_code`.
    Custom(&'static str),
}

pub(super) struct Rule {
    pub name: &'static str,
    pub on: On,
    /// Emits the replacement through the rewriter; `Ok(false)`: not this one, keep it.
    pub rewrite: for<'a> fn(&mut Rewriter<'a>, &Matched<'a>) -> NnResult<bool>,
}

pub(super) const RULES: &[Rule] = &[
    Rule {
        name: "fp16 weights to f32 constants",
        on: On::Builtin(Op::DEQUANTIZE),
        rewrite: dequantize_fp16::rewrite,
    },
    Rule {
        name: "sparse weights to dense constants",
        on: On::Builtin(Op::DENSIFY),
        rewrite: densify::rewrite,
    },
    Rule {
        name: "PRELU as RELU, SUB, MUL, ADD",
        on: On::Builtin(Op::PRELU),
        rewrite: prelu::rewrite,
    },
    Rule {
        name: "DEPTH_TO_SPACE as RESHAPE, TRANSPOSE, RESHAPE",
        on: On::Builtin(Op::DEPTH_TO_SPACE),
        rewrite: depth_to_space::rewrite,
    },
    Rule {
        name: "float MEAN as SUM then MUL by 1/n",
        on: On::Builtin(Op::MEAN),
        rewrite: mean::rewrite,
    },
    Rule {
        name: "ADD without options: the default ones",
        on: On::Builtin(Op::ADD),
        rewrite: default_options::rewrite,
    },
    Rule {
        name: "SUB without options: the default ones",
        on: On::Builtin(Op::SUB),
        rewrite: default_options::rewrite,
    },
    Rule {
        name: "MUL without options: the default ones",
        on: On::Builtin(Op::MUL),
        rewrite: default_options::rewrite,
    },
    Rule {
        name: "MediaPipe Convolution2DTransposeBias as PAD and CONV_2D",
        on: On::Custom(transpose_conv_bias::NAME),
        rewrite: transpose_conv_bias::rewrite,
    },
];

/// One operator of the original model, as the rules see it.
pub(super) struct Matched<'a> {
    pub op: tflite::Operator<'a>,
    pub code: i32,
    pub inputs: Vec<i32>,
    /// Never empty (validate.rs).
    pub outputs: Vec<i32>,
}

impl Matched<'_> {
    /// Input `i`, which must be given.
    pub fn input(&self, i: usize) -> NnResult<i32> {
        self.inputs
            .get(i)
            .copied()
            .filter(|&ix| ix >= 0)
            .ok_or_else(|| invalid(format!("input {i} is missing")))
    }

    pub fn output(&self) -> i32 {
        self.outputs[0]
    }
}

fn matches(rule: &Rule, code: i32, custom: Option<&str>) -> bool {
    match rule.on {
        On::Builtin(op) => custom.is_none() && op.0 == code,
        On::Custom(name) => custom == Some(name),
    }
}

/// Applies the first rule for this operator that rewrites it; false when none did.
pub(super) fn apply<'a>(
    rw: &mut Rewriter<'a>,
    m: &Matched<'a>,
    custom: Option<&str>,
) -> NnResult<bool> {
    for rule in RULES.iter().filter(|r| matches(r, m.code, custom)) {
        let done = (rule.rewrite)(rw, m)
            .map_err(|e| NnError::new(e.code, format!("{}: {}", rule.name, e.message)))?;
        if done {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a rule replaces this custom operator (tract-tflite has none of its own).
pub(super) fn replaces_custom(name: &str) -> bool {
    RULES
        .iter()
        .any(|r| matches!(r.on, On::Custom(n) if n == name))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{build, f32_const, i32_const, m, o, t, M, T};
    use super::super::writer::Field;
    use super::*;
    use crate::{Encoding, ErrorCode, Graph, Limits};
    use tract_tflite::tflite::{BuiltinOptions, TensorType};

    #[test]
    fn rule_names_are_unique() {
        for (i, r) in RULES.iter().enumerate() {
            assert!(
                RULES[..i].iter().all(|o| o.name != r.name),
                "two rules named {:?}",
                r.name
            );
        }
    }

    /// The operators of the rewritten model (None: nothing was rewritten), which must load.
    fn rewritten(model: &M) -> Option<Vec<String>> {
        let out = super::super::rewrite(&build(model)).unwrap()?;
        Graph::load(&[&out], Encoding::TfLite, Limits::default()).unwrap();
        let model = tflite::root_as_model(&out).unwrap();
        let codes = model.operator_codes().unwrap();
        let ops = model.subgraphs().unwrap().get(0).operators().unwrap();
        let names = ops.iter().map(|op| {
            let code = codes.get(op.opcode_index() as usize);
            super::super::op_name(super::super::builtin_of(&code))
        });
        Some(names.collect())
    }

    fn unary(op: O, x: &[i32], y: &[i32]) -> M {
        m(vec![t("x", x), t("y", y)], vec![op], &[0], &[1])
    }

    use super::super::testing::O;

    #[test]
    fn each_rule_emits_its_builtins() {
        let f16: Vec<u8> = [1.5f32, -2.25]
            .iter()
            .flat_map(|&v| {
                tract_onnx::prelude::f16::from_f32(v)
                    .to_bits()
                    .to_le_bytes()
            })
            .collect();
        let h = T {
            ty: TensorType::FLOAT16,
            data: Some(f16),
            ..t("h", &[2])
        };
        let add = vec![(0, Field::Byte(0))];
        let dequantize = m(
            vec![t("x", &[2]), h, t("hf", &[2]), t("y", &[2])],
            vec![
                o(Op::DEQUANTIZE, &[1], &[2]),
                o(Op::ADD, &[0, 2], &[3]).with(BuiltinOptions::AddOptions, add),
            ],
            &[0],
            &[3],
        );
        assert_eq!(rewritten(&dequantize).unwrap(), ["ADD"]);

        let prelu = m(
            vec![
                t("x", &[1, 2, 3]),
                f32_const("a", &[3], &[0.1, 0.2, 0.3]),
                t("y", &[1, 2, 3]),
            ],
            vec![o(Op::PRELU, &[0, 1], &[2])],
            &[0],
            &[2],
        );
        assert_eq!(rewritten(&prelu).unwrap(), ["RELU", "SUB", "MUL", "ADD"]);

        let d2s = o(Op::DEPTH_TO_SPACE, &[0], &[1]).with(
            BuiltinOptions::DepthToSpaceOptions,
            vec![(0, Field::Int(2))],
        );
        let d2s = unary(d2s, &[1, 2, 2, 8], &[1, 4, 4, 2]);
        assert_eq!(
            rewritten(&d2s).unwrap(),
            ["RESHAPE", "TRANSPOSE", "RESHAPE"]
        );

        let mean = |ty: TensorType| {
            let keep = vec![(0, Field::Byte(1))];
            let mut model = m(
                vec![
                    t("x", &[1, 3, 4]),
                    i32_const("axes", &[1], &[-1]),
                    t("y", &[1, 3, 1]),
                ],
                vec![o(Op::MEAN, &[0, 1], &[2]).with(BuiltinOptions::ReducerOptions, keep)],
                &[0],
                &[2],
            );
            model.tensors[0].ty = ty;
            model.tensors[2].ty = ty;
            model
        };
        assert_eq!(
            rewritten(&mean(TensorType::FLOAT32)).unwrap(),
            ["SUM", "MUL"]
        );

        for op in [Op::ADD, Op::SUB, Op::MUL] {
            let model = m(
                vec![
                    t("a", &[2]),
                    f32_const("b", &[2], &[1.0, 2.0]),
                    t("y", &[2]),
                ],
                vec![o(op, &[0, 1], &[2])],
                &[0],
                &[2],
            );
            let name = super::super::op_name(op.0);
            assert_eq!(rewritten(&model).unwrap(), [name]);
        }

        let tcb = |stride: i32, out: i32| {
            let mut op = o(Op::CUSTOM, &[0, 1, 2], &[3]);
            op.custom = Some(transpose_conv_bias::NAME);
            op.custom_options = Some(
                [2, stride, stride]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            );
            m(
                vec![
                    t("x", &[1, 3, 3, 2]),
                    f32_const("k", &[1, 2, 2, 2], &[0.5; 8]),
                    f32_const("b", &[1], &[0.25]),
                    t("y", &[1, out, out, 1]),
                ],
                vec![op],
                &[0],
                &[3],
            )
        };
        let spread = ["RESHAPE", "PAD", "RESHAPE", "PAD", "CONV_2D"];
        assert_eq!(rewritten(&tcb(2, 6)).unwrap(), spread);
        assert_eq!(rewritten(&tcb(1, 4)).unwrap(), ["PAD", "CONV_2D"]);
    }

    /// What tract reads itself is left as it is.
    #[test]
    fn rules_decline_what_tract_reads() {
        let int8 = T {
            ty: TensorType::INT8,
            data: Some(vec![1, 2]),
            ..t("q", &[2])
        };
        let model = m(
            vec![t("x", &[2]), int8, t("y", &[2])],
            vec![o(Op::DEQUANTIZE, &[1], &[2])],
            &[0],
            &[2],
        );
        let out = super::super::rewrite(&build(&model)).unwrap();
        assert!(out.is_none(), "an int8 DEQUANTIZE was rewritten");
        let add = vec![(0, Field::Byte(0))];
        let model = m(
            vec![t("a", &[2]), t("b", &[2]), t("y", &[2])],
            vec![o(Op::ADD, &[0, 1], &[2]).with(BuiltinOptions::AddOptions, add)],
            &[0, 1],
            &[2],
        );
        assert!(super::super::rewrite(&build(&model)).unwrap().is_none());
    }

    #[test]
    fn custom_operators_without_a_rule_are_named_at_once() {
        let custom = |name| {
            let mut op = o(Op::CUSTOM, &[0], &[0]);
            op.custom = Some(name);
            op
        };
        let model = m(
            vec![t("x", &[2])],
            vec![custom("Foo"), custom("Bar"), custom("Foo")],
            &[0],
            &[0],
        );
        let err = super::super::rewrite(&build(&model)).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedOperation);
        assert!(
            err.message.ends_with("Foo (x2), Bar (x1)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_rule_error_names_the_operator_and_the_rule() {
        let d2s = o(Op::DEPTH_TO_SPACE, &[0], &[1]).with(
            BuiltinOptions::DepthToSpaceOptions,
            vec![(0, Field::Int(3))],
        );
        let err = super::super::rewrite(&build(&unary(d2s, &[1, 2, 2, 8], &[1, 4, 4, 2])));
        let err = err.unwrap_err();
        assert!(
            err.message.starts_with(
                "operator 0 (DEPTH_TO_SPACE, output \"y\"): DEPTH_TO_SPACE as RESHAPE, TRANSPOSE, RESHAPE: not a valid TFLite model: DEPTH_TO_SPACE block size 3"
            ),
            "{}",
            err.message
        );
    }
}
