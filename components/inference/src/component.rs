//! The WebAssembly component: wasi-nn exports and introspection over the engine.
use crate::describe::{Dim, IoInfo};
use crate::{Encoding, Format, Graph, Limits, NnError, TensorData, TRACT_VERSION};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

wit_bindgen::generate!({
    path: "../../wit",
    world: "engine",
});

use exports::secure_context::inference::introspection as intro;
use exports::wasi::nn::{errors, graph, inference, tensor};

struct Engine;

thread_local! {
    /// Graphs loaded by this instance, by `sha256:<hex>`, for `load-by-name`.
    static LOADED: RefCell<HashMap<String, Rc<Graph>>> = RefCell::new(HashMap::new());
}

fn to_error(e: NnError) -> errors::Error {
    errors::Error::new(ErrorRep(e))
}

struct ErrorRep(NnError);

impl errors::Guest for Engine {
    type Error = ErrorRep;
}

impl errors::GuestError for ErrorRep {
    fn code(&self) -> errors::ErrorCode {
        use crate::ErrorCode as C;
        use errors::ErrorCode as W;
        match self.0.code {
            C::InvalidArgument => W::InvalidArgument,
            C::InvalidEncoding => W::InvalidEncoding,
            C::Timeout => W::Timeout,
            C::RuntimeError => W::RuntimeError,
            C::UnsupportedOperation => W::UnsupportedOperation,
            C::TooLarge => W::TooLarge,
            C::NotFound => W::NotFound,
            C::Security => W::Security,
            C::Unknown => W::Unknown,
        }
    }

    fn data(&self) -> String {
        self.0.message.clone()
    }
}

struct TensorRep(TensorData);

fn to_wit_type(t: crate::ElementType) -> tensor::TensorType {
    use crate::ElementType as E;
    use tensor::TensorType as W;
    match t {
        E::F16 => W::Fp16,
        E::F32 => W::Fp32,
        E::F64 => W::Fp64,
        E::Bf16 => W::Bf16,
        E::U8 => W::U8,
        E::I32 => W::I32,
        E::I64 => W::I64,
    }
}

fn from_wit_type(t: tensor::TensorType) -> crate::ElementType {
    use crate::ElementType as E;
    use tensor::TensorType as W;
    match t {
        W::Fp16 => E::F16,
        W::Fp32 => E::F32,
        W::Fp64 => E::F64,
        W::Bf16 => E::Bf16,
        W::U8 => E::U8,
        W::I32 => E::I32,
        W::I64 => E::I64,
    }
}

impl tensor::Guest for Engine {
    type Tensor = TensorRep;
}

impl tensor::GuestTensor for TensorRep {
    // The constructor cannot fail in wasi-nn, so sizes are checked by `compute`.
    fn new(dimensions: Vec<u32>, ty: tensor::TensorType, data: Vec<u8>) -> Self {
        TensorRep(TensorData::new(dimensions, from_wit_type(ty), data))
    }
    fn dimensions(&self) -> Vec<u32> {
        self.0.dims.clone()
    }
    fn ty(&self) -> tensor::TensorType {
        to_wit_type(self.0.ty)
    }
    fn data(&self) -> Vec<u8> {
        self.0.data.clone()
    }
}

struct GraphRep(Rc<Graph>);

impl graph::Guest for Engine {
    type Graph = GraphRep;

    fn load(
        builder: Vec<Vec<u8>>,
        encoding: graph::GraphEncoding,
        _target: graph::ExecutionTarget,
    ) -> Result<graph::Graph, errors::Error> {
        use graph::GraphEncoding as G;
        // Every target runs on the CPU: there is no other device inside the sandbox.
        let encoding = match encoding {
            G::Onnx => Encoding::Onnx,
            G::Tensorflowlite => Encoding::TfLite,
            G::Autodetect => Encoding::Autodetect,
            G::Openvino => Encoding::Other("openvino"),
            G::Tensorflow => Encoding::Other("tensorflow"),
            G::Pytorch => Encoding::Other("pytorch"),
            G::Ggml => Encoding::Other("ggml"),
        };
        let parts: Vec<&[u8]> = builder.iter().map(|b| b.as_slice()).collect();
        let g = Rc::new(Graph::load(&parts, encoding, Limits::default()).map_err(to_error)?);
        LOADED.with(|l| {
            l.borrow_mut()
                .insert(format!("sha256:{}", g.info().sha256), g.clone())
        });
        Ok(graph::Graph::new(GraphRep(g)))
    }

    fn load_by_name(name: String) -> Result<graph::Graph, errors::Error> {
        LOADED
            .with(|l| l.borrow().get(&name).cloned())
            .map(|g| graph::Graph::new(GraphRep(g)))
            .ok_or_else(|| {
                to_error(NnError::new(
                    crate::ErrorCode::NotFound,
                    format!("no graph named \"{name}\": names are \"sha256:<hex>\" of graphs already loaded by this instance"),
                ))
            })
    }
}

impl graph::GuestGraph for GraphRep {
    fn init_execution_context(&self) -> Result<inference::GraphExecutionContext, errors::Error> {
        Ok(inference::GraphExecutionContext::new(ContextRep(
            self.0.clone(),
        )))
    }
}

struct ContextRep(Rc<Graph>);

impl inference::Guest for Engine {
    type GraphExecutionContext = ContextRep;
}

impl inference::GuestGraphExecutionContext for ContextRep {
    fn compute(
        &self,
        inputs: Vec<inference::NamedTensor>,
    ) -> Result<Vec<inference::NamedTensor>, errors::Error> {
        let inputs = inputs
            .into_iter()
            .map(|(name, t)| (name, t.get::<TensorRep>().0.clone()))
            .collect();
        let outputs = self.0.compute(inputs).map_err(to_error)?;
        Ok(outputs
            .into_iter()
            .map(|(name, t)| (name, tensor::Tensor::new(TensorRep(t))))
            .collect())
    }
}

fn tensor_info(io: &IoInfo) -> intro::TensorInfo {
    intro::TensorInfo {
        name: io.name.clone(),
        element_type: io.element_name(),
        carrier: io.carrier().map(to_wit_type),
        shape: io.shape.as_ref().map(|dims| {
            dims.iter()
                .map(|d| match d {
                    Dim::Fixed(n) => intro::Dimension::Fixed(*n),
                    Dim::Symbolic(s) => intro::Dimension::Symbolic(s.clone()),
                    Dim::Unknown => intro::Dimension::Unknown,
                })
                .collect()
        }),
    }
}

impl intro::Guest for Engine {
    fn describe(g: graph::GraphBorrow<'_>) -> intro::GraphInfo {
        let info = g.get::<GraphRep>().0.info();
        intro::GraphInfo {
            encoding: match info.format {
                Format::Onnx => graph::GraphEncoding::Onnx,
                Format::TfLite => graph::GraphEncoding::Tensorflowlite,
            },
            sha256: info.sha256.clone(),
            inputs: info.inputs.iter().map(tensor_info).collect(),
            outputs: info.outputs.iter().map(tensor_info).collect(),
        }
    }

    fn engine_version() -> String {
        format!("tract {TRACT_VERSION}")
    }
}

export!(Engine);
