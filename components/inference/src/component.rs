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

// The one conversion between the tables and this binding's WIT types.
nn_tables::wit_conversions!(
    tensor_type = tensor::TensorType,
    error_code = errors::ErrorCode,
);

impl errors::GuestError for ErrorRep {
    fn code(&self) -> errors::ErrorCode {
        self.0.code.into()
    }

    fn data(&self) -> String {
        self.0.message.clone()
    }
}

struct TensorRep(TensorData);

impl tensor::Guest for Engine {
    type Tensor = TensorRep;
}

impl tensor::GuestTensor for TensorRep {
    // The constructor cannot fail in wasi-nn, so sizes are checked by `compute`.
    fn new(dimensions: Vec<u32>, ty: tensor::TensorType, data: Vec<u8>) -> Self {
        TensorRep(TensorData::new(dimensions, ty.into(), data))
    }
    fn dimensions(&self) -> Vec<u32> {
        self.0.dims.clone()
    }
    fn ty(&self) -> tensor::TensorType {
        self.0.ty.into()
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
        carrier: io.carrier().map(Into::into),
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
