//! Loading a model once and running it many times.
//!
//! ONNX models are kept at tract's inference level and specialised per input shape set: real
//! models have symbolic or unknown dims that only the tensors given to `compute` fix, and a
//! plan optimized for concrete shapes is the fast one. A few plans are cached per graph. Models
//! whose inputs are fully fixed are optimized at load, so a broken model fails there.
use crate::describe::GraphInfo;
use crate::error::{describe_tract_error, ErrorCode, NnError, NnResult};
use crate::f16_compute::F16Io;
use crate::format::{reader, sniff, Encoding, Format};
use crate::limits::Limits;
use crate::tensor::{datum_name, TensorData};
use sha2::{Digest, Sha256};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tract_hir::infer::InferenceFact;
use tract_onnx::prelude::*;

/// A runnable plan, and the f16 inputs and outputs it takes and gives as f32 (f16_compute.rs).
struct Planned {
    plan: Arc<TypedSimplePlan>,
    f16: F16Io,
}
type Plan = Arc<Planned>;
/// What a plan was specialised for, per input in model order.
#[derive(Clone, PartialEq)]
struct PlanInput {
    dt: DatumType,
    shape: Vec<usize>,
    /// Set for operands that tract needs as constants (see `plan_for_inputs`).
    value: Option<Arc<Tensor>>,
}
type PlanKey = Vec<PlanInput>;

/// Inputs up to this size may be folded into a plan as constants.
const MAX_OPERAND_ELEMENTS: usize = 64;

enum Base {
    /// ONNX: re-typed and optimized for each distinct input shape set.
    Inference(InferenceModel),
    /// TFLite: typed from the start; tract resolves any symbolic dims at run time.
    Typed(Plan),
}

pub struct Graph {
    info: GraphInfo,
    base: Base,
    plans: Mutex<Vec<(PlanKey, Plan)>>,
    /// Set once plans must be specialised on the values of small integer inputs.
    by_value: AtomicBool,
    limits: Limits,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Runs `f`, turning a panic inside tract into an error: the native host must survive any
/// model. (In wasm, panics abort: the host sees a trap and reports it the same way.)
fn guarded<T>(what: &str, f: impl FnOnce() -> NnResult<T>) -> NnResult<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(NnError::runtime(format!(
            "engine failed while {what}: {msg}"
        )))
    })
}

/// tract says "not supported"/"Unimplemented" for operators and attributes it lacks.
pub(crate) fn classify(context: &str, e: &TractError, default: ErrorCode) -> NnError {
    let text = describe_tract_error(e);
    let lower = text.to_lowercase();
    let code = if lower.contains("unimplemented")
        || lower.contains("not supported")
        || lower.contains("unsupported")
    {
        ErrorCode::UnsupportedOperation
    } else {
        default
    };
    NnError::new(code, format!("{context}: {text}"))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Graph {
    /// wasi-nn `load`: one builder holding the whole model file.
    pub fn load(builders: &[&[u8]], encoding: Encoding, limits: Limits) -> NnResult<Graph> {
        let bytes = match builders {
            [one] => *one,
            _ => {
                return Err(NnError::invalid(format!(
                    "expected exactly one graph builder (the model file), got {}",
                    builders.len()
                )))
            }
        };
        if bytes.len() > limits.max_model_bytes {
            return Err(NnError::too_large(format!(
                "model is {} bytes; the limit is {} bytes",
                bytes.len(),
                limits.max_model_bytes
            )));
        }
        let format = match encoding {
            Encoding::Onnx => Format::Onnx,
            Encoding::TfLite => Format::TfLite,
            Encoding::Autodetect => sniff(bytes).ok_or_else(|| {
                NnError::new(
                    ErrorCode::InvalidEncoding,
                    "autodetect: the bytes are neither an ONNX model nor a TFLite flatbuffer",
                )
            })?,
            Encoding::Other(name) => {
                return Err(NnError::new(
                    ErrorCode::InvalidEncoding,
                    format!("graph encoding {name} is not supported; this engine reads onnx and tensorflowlite"),
                ))
            }
        };
        if bytes.is_empty() {
            return Err(NnError::invalid("model is empty (0 bytes)"));
        }
        let sha256 = sha256_hex(bytes);
        guarded("loading the model", || {
            reader(format).load(bytes, sha256, limits)
        })
    }

    /// A graph kept at tract's inference level, typed and optimized for each distinct set of
    /// input shapes (ONNX). Fully fixed inputs are planned now, so a model that cannot run
    /// fails at load (unless small inputs may be operands tract wants as constants: their values
    /// come later).
    pub(crate) fn from_inference(
        info: GraphInfo,
        model: InferenceModel,
        limits: Limits,
    ) -> NnResult<Graph> {
        let graph = Graph {
            info,
            base: Base::Inference(model),
            plans: Mutex::new(vec![]),
            by_value: AtomicBool::new(false),
            limits,
        };
        if let Some(key) = graph.fixed_key() {
            let has_operands = key
                .iter()
                .any(|k| k.shape.iter().product::<usize>() <= MAX_OPERAND_ELEMENTS);
            match graph.plan_for(&key) {
                Err(e) if !(has_operands && e.code == ErrorCode::InvalidArgument) => return Err(e),
                _ => {}
            }
        }
        Ok(graph)
    }

    /// A graph planned once, at load (TFLite: typed from the start; tract resolves any
    /// symbolic dims at run time).
    pub(crate) fn from_plan(info: GraphInfo, plan: Arc<TypedSimplePlan>, limits: Limits) -> Graph {
        Graph {
            info,
            base: Base::Typed(Arc::new(Planned {
                plan,
                f16: F16Io::default(),
            })),
            plans: Mutex::new(vec![]),
            by_value: AtomicBool::new(false),
            limits,
        }
    }

    pub fn info(&self) -> &GraphInfo {
        &self.info
    }

    fn fixed_key(&self) -> Option<PlanKey> {
        self.info
            .inputs
            .iter()
            .map(|i| {
                Some(PlanInput {
                    dt: i.datum?,
                    shape: i.concrete_shape()?,
                    value: None,
                })
            })
            .collect()
    }

    fn plan_for(&self, key: &PlanKey) -> NnResult<Plan> {
        let model = match &self.base {
            Base::Typed(plan) => return Ok(plan.clone()),
            Base::Inference(model) => model,
        };
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pos) = plans.iter().position(|(k, _)| k == key) {
            // Most recently used last, so eviction drops the oldest.
            let entry = plans.remove(pos);
            let plan = entry.1.clone();
            plans.push(entry);
            return Ok(plan);
        }
        let shapes: Vec<String> = key
            .iter()
            .map(|k| format!("{}{:?}", datum_name(k.dt), k.shape).replace(' ', ""))
            .collect();
        let context = format!("the model cannot run on inputs {}", shapes.join(", "));
        let mut m = model.clone();
        for (ix, k) in key.iter().enumerate() {
            let fact = match &k.value {
                Some(v) => InferenceFact::from(v.as_ref().clone()),
                None => InferenceFact::dt_shape(k.dt, k.shape.clone()),
            };
            m.set_input_fact(ix, fact).map_err(internal)?;
        }
        let refused = |e: TractError| classify(&context, &e, ErrorCode::InvalidArgument);
        let typed = m.into_typed().map_err(refused)?;
        // fp16 models compute in f32; should tract refuse the translation, as they are.
        let wide = crate::f16_compute::in_f32(&typed)
            .and_then(|wide| wide.and_then(|(m, io)| Ok((m.into_optimized()?, io))).ok());
        let (typed, f16) = match wide {
            Some(wide) => wide,
            None => (typed.into_optimized().map_err(refused)?, F16Io::default()),
        };
        check_sizes(&typed, &self.limits)?;
        let plan = typed
            .into_runnable()
            .map_err(|e| classify(&context, &e, ErrorCode::RuntimeError))?;
        let plan = Arc::new(Planned { plan, f16 });
        if plans.len() >= self.limits.max_cached_plans.max(1) {
            plans.remove(0);
        }
        plans.push((key.clone(), plan.clone()));
        Ok(plan)
    }

    /// The plan for these inputs. tract needs some operands (axes, shapes, pads, slice bounds,
    /// resize scales) as constants; models that take them as inputs get a plan specialised on
    /// the values of their small inputs, once plain shapes have failed.
    fn plan_for_inputs(&self, tensors: &[Tensor]) -> NnResult<Plan> {
        let by_shape = |t: &Tensor| PlanInput {
            dt: t.datum_type(),
            shape: t.shape().to_vec(),
            value: None,
        };
        let by_value = |t: &Tensor| PlanInput {
            value: Some(Arc::new(t.clone())),
            ..by_shape(t)
        };
        let is_operand = |t: &Tensor| t.len() <= MAX_OPERAND_ELEMENTS;
        let specialised = self.by_value.load(Ordering::Relaxed);
        if !specialised {
            let key: PlanKey = tensors.iter().map(by_shape).collect();
            match self.plan_for(&key) {
                Ok(plan) => return Ok(plan),
                Err(e)
                    if e.code == ErrorCode::InvalidArgument && tensors.iter().any(is_operand) => {}
                Err(e) => return Err(e),
            }
        }
        let key: PlanKey = tensors
            .iter()
            .map(|t| {
                if is_operand(t) {
                    by_value(t)
                } else {
                    by_shape(t)
                }
            })
            .collect();
        let plan = self.plan_for(&key)?;
        self.by_value.store(true, Ordering::Relaxed);
        Ok(plan)
    }

    /// wasi-nn `compute`: named inputs in, named outputs out, in the model's output order.
    pub fn compute(
        &self,
        inputs: Vec<(String, TensorData)>,
    ) -> NnResult<Vec<(String, TensorData)>> {
        guarded("running the model", || self.compute_inner(inputs))
    }

    fn compute_inner(
        &self,
        inputs: Vec<(String, TensorData)>,
    ) -> NnResult<Vec<(String, TensorData)>> {
        let declared = &self.info.inputs;
        let mut slots: Vec<Option<TensorData>> = vec![None; declared.len()];
        for (name, tensor) in inputs {
            let ix = declared
                .iter()
                .position(|d| d.name == name)
                .ok_or_else(|| {
                    NnError::new(
                        ErrorCode::NotFound,
                        format!(
                            "unknown input \"{name}\"; the model's inputs are {}",
                            self.input_list()
                        ),
                    )
                })?;
            if slots[ix].is_some() {
                return Err(NnError::invalid(format!("input \"{name}\" is given twice")));
            }
            slots[ix] = Some(tensor);
        }
        let mut tensors = Vec::with_capacity(declared.len());
        for (decl, slot) in declared.iter().zip(slots) {
            let t = slot.ok_or_else(|| {
                NnError::invalid(format!(
                    "missing input \"{}\" ({})",
                    decl.name,
                    decl.signature()
                ))
            })?;
            let mismatch = || {
                NnError::invalid(format!(
                    "input \"{}\": expected {}, got {}",
                    decl.name,
                    decl.signature(),
                    t.signature()
                ))
            };
            if decl.carrier().is_some_and(|c| c != t.ty) || !decl.shape_accepts(&t) {
                return Err(mismatch());
            }
            t.validate(self.limits.max_tensor_elements).map_err(|e| {
                NnError::new(e.code, format!("input \"{}\": {}", decl.name, e.message))
            })?;
            let tensor = match decl.narrow {
                Some(n) => n.to_tract(&t),
                None => t.to_tract(decl.datum),
            };
            let tensor = tensor.map_err(|e| {
                NnError::new(e.code, format!("input \"{}\": {}", decl.name, e.message))
            })?;
            tensors.push(tensor);
        }
        let plan = self.plan_for_inputs(&tensors)?;
        let failed = |e: TractError| classify("inference failed", &e, ErrorCode::RuntimeError);
        let tensors = plan.f16.widen(tensors).map_err(failed)?;
        let outputs = plan
            .plan
            .run(tensors.into_iter().map(|t| t.into_tvalue()).collect())
            .and_then(|outputs| plan.f16.narrow(outputs))
            .map_err(failed)?;
        outputs
            .iter()
            .zip(&self.info.outputs)
            .map(|(value, decl)| {
                let data = match decl.narrow {
                    Some(n) => n.from_tract(value),
                    None => TensorData::from_tract(value),
                };
                let data = data.map_err(|e| {
                    NnError::new(e.code, format!("output \"{}\": {}", decl.name, e.message))
                })?;
                Ok((decl.name.clone(), data))
            })
            .collect()
    }

    fn input_list(&self) -> String {
        let names: Vec<String> = self
            .info
            .inputs
            .iter()
            .map(|i| format!("\"{}\" {}", i.name, i.signature()))
            .collect();
        names.join(", ")
    }
}

pub(crate) fn internal(e: TractError) -> NnError {
    NnError::runtime(describe_tract_error(&e))
}

pub(crate) fn outlet_name<F, O>(
    model: &tract_onnx::prelude::Graph<F, O>,
    outlet: OutletId,
) -> String
where
    F: Fact + Clone + 'static,
    O: std::fmt::Debug + std::fmt::Display + AsRef<dyn Op> + AsMut<dyn Op> + Clone + 'static,
{
    model
        .outlet_label(outlet)
        .map(str::to_string)
        .unwrap_or_else(|| model.node(outlet.node).name.clone())
}

/// Refuses plans whose any tensor (weights, intermediates, outputs) passes the element limit.
pub(crate) fn check_sizes(model: &TypedModel, limits: &Limits) -> NnResult<()> {
    for node in model.nodes() {
        for out in &node.outputs {
            let Some(shape) = out.fact.shape.as_concrete() else {
                continue;
            };
            let n = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
            if n.is_none_or(|n| n > limits.max_tensor_elements) {
                return Err(NnError::too_large(format!(
                    "tensor \"{}\" would be {}{:?}, more than the limit of {} elements",
                    node.name,
                    datum_name(out.fact.datum_type),
                    shape,
                    limits.max_tensor_elements
                )));
            }
        }
    }
    Ok(())
}
