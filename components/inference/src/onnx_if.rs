//! ONNX `If` with a condition known before running: only the branch taken is analysed, and it
//! is inlined into the graph.
//!
//! tract's own `If` analyses both branches and needs their outputs to have the same shape. Real
//! models break that: Silero VAD picks a branch by sample rate (`sr`, an input this engine folds
//! into the plan as a constant) or by input rank, and the branch not taken may not even be
//! valid for these inputs. When the condition is still unknown after analysis, tract's `If` is
//! used as before. Registered through tract-onnx's operator register, not by changing tract.
use tract_hir::internal::*;
use tract_onnx::model::{OnnxOpRegister, ParseResult, ParsingContext};
use tract_onnx::ops::logic::If;
use tract_onnx::pb::{GraphProto, NodeProto};

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("If", static_if);
}

fn static_if(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    // Branches' value_info are hints with the model's symbolic dims (`batch`), which clash
    // with the concrete dims each plan is made for: the branches are analysed without them.
    let mut framework = ctx.framework.clone();
    framework.ignore_value_info = true;
    let mut ctx = ctx.clone();
    ctx.framework = &framework;
    let then_graph: &GraphProto = node.get_attr("then_branch")?;
    let else_graph: &GraphProto = node.get_attr("else_branch")?;
    let ParseResult {
        model: then_body,
        unresolved_inputs: then_needs,
        ..
    } = ctx.parse_graph(then_graph)?;
    let ParseResult {
        model: else_body,
        unresolved_inputs: else_needs,
        ..
    } = ctx.parse_graph(else_graph)?;
    // The node's inputs: the condition, then every outer value either branch reads.
    let mut outer: Vec<String> = then_needs.iter().chain(&else_needs).cloned().collect();
    outer.sort();
    outer.dedup();
    let position = |name: &String| outer.iter().position(|o| o == name).map(|p| p + 1);
    let then_map = then_needs.iter().filter_map(position).collect();
    let else_map = else_needs.iter().filter_map(position).collect();
    Ok((
        Box::new(StaticIf {
            then_body,
            then_map,
            else_body,
            else_map,
        }),
        outer,
    ))
}

#[derive(Debug, Clone)]
struct StaticIf {
    then_body: InferenceModel,
    /// For each input of the branch, its index among the node's inputs.
    then_map: Vec<usize>,
    else_body: InferenceModel,
    else_map: Vec<usize>,
}

// Branch models have no structural equality; like tract's If, no two are merged.
impl PartialEq for StaticIf {
    fn eq(&self, _: &Self) -> bool {
        false
    }
}
impl Eq for StaticIf {}

impl StaticIf {
    fn as_tract(&self) -> If {
        If::new(
            self.then_body.clone(),
            self.then_map.clone(),
            self.else_body.clone(),
            self.else_map.clone(),
        )
    }

    fn branch(&self, cond: bool) -> (&InferenceModel, &[usize]) {
        if cond {
            (&self.then_body, &self.then_map)
        } else {
            (&self.else_body, &self.else_map)
        }
    }
}

fn known_condition(fact: &InferenceFact) -> TractResult<Option<bool>> {
    fact.value
        .concretize()
        .map(|v| v.cast_to_scalar::<bool>())
        .transpose()
}

impl Op for StaticIf {
    fn name(&self) -> StaticName {
        "If".into()
    }

    not_a_typed_op!();
}

impl EvalOp for StaticIf {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.as_tract().eval(ctx, inputs)
    }
}

impl InferenceOp for StaticIf {
    fn infer_facts(
        &mut self,
        inputs: TVec<&InferenceFact>,
        outputs: TVec<&InferenceFact>,
        observed: TVec<&InferenceFact>,
    ) -> TractResult<(
        TVec<InferenceFact>,
        TVec<InferenceFact>,
        TVec<InferenceFact>,
    )> {
        let Some(cond) = known_condition(inputs[0])? else {
            // Unknown for now: learn what tract's If can, but a branch that fails to analyse
            // is no error yet, since the condition may become known later.
            let mut tract_if = self.as_tract();
            return match tract_if.infer_facts(inputs.clone(), outputs.clone(), observed.clone()) {
                Ok(facts) => {
                    self.then_body = tract_if.then_body;
                    self.else_body = tract_if.else_body;
                    Ok(facts)
                }
                Err(_) => Ok((
                    inputs.into_iter().cloned().collect(),
                    outputs.into_iter().cloned().collect(),
                    observed.into_iter().cloned().collect(),
                )),
            };
        };
        let mut inputs: TVec<InferenceFact> = inputs.into_iter().cloned().collect();
        let mut outputs: TVec<InferenceFact> = outputs.into_iter().cloned().collect();
        let (body, map) = if cond {
            (&mut self.then_body, &self.then_map)
        } else {
            (&mut self.else_body, &self.else_map)
        };
        loop {
            let mut changed = false;
            for (body_ix, outer_ix) in map.iter().enumerate() {
                let outer = inputs
                    .get_mut(*outer_ix)
                    .context("If: branch input out of range")?;
                changed |= body.input_fact_mut(body_ix)?.unify_with_mut(outer)?;
            }
            for (ix, outer) in outputs.iter_mut().enumerate() {
                changed |= body.output_fact_mut(ix)?.unify_with_mut(outer)?;
            }
            changed |= body.analyse(false)?;
            if !changed {
                return Ok((inputs, outputs, observed.into_iter().cloned().collect()));
            }
        }
    }

    fn nboutputs(&self) -> TractResult<usize> {
        self.as_tract().nboutputs()
    }

    fn to_typed(
        &self,
        source: &InferenceModel,
        node: &InferenceNode,
        target: &mut TypedModel,
        mapping: &HashMap<OutletId, OutletId>,
    ) -> TractResult<TVec<OutletId>> {
        let Some(cond) = known_condition(source.outlet_fact(node.inputs[0])?)? else {
            return self.as_tract().to_typed(source, node, target, mapping);
        };
        let (body, map) = self.branch(cond);
        let body = body.clone().into_typed()?;
        let outer: TVec<OutletId> = node.inputs.iter().map(|o| mapping[o]).collect();
        let mut wires: HashMap<OutletId, OutletId> = HashMap::new();
        for (body_ix, outer_ix) in map.iter().enumerate() {
            let wire = *outer
                .get(*outer_ix)
                .context("If: branch input out of range")?;
            let input = *body
                .input_outlets()?
                .get(body_ix)
                .context("If: branch input out of range")?;
            wires.insert(input, wire);
        }
        for id in body.eval_order()? {
            let n = body.node(id);
            if wires.contains_key(&OutletId::new(id, 0)) {
                continue;
            }
            let inputs: TVec<OutletId> = n
                .inputs
                .iter()
                .map(|i| wires.get(i).copied().context("If: unwired branch value"))
                .collect::<TractResult<_>>()?;
            let name = target
                .unique_name(format!("{}.{}", node.name, n.name))
                .to_string();
            let outs = target.wire_node(name, n.op.clone(), &inputs)?;
            for (slot, o) in outs.into_iter().enumerate() {
                wires.insert(OutletId::new(id, slot), o);
            }
        }
        body.output_outlets()?
            .iter()
            .map(|o| wires.get(o).copied().context("If: unwired branch output"))
            .collect()
    }

    as_op!();
}
