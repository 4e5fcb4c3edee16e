//! One interface over the two ways to run the engine: the `inference` component on wasmtime,
//! and the same crate compiled natively. Commands are written once against it.
use anyhow::{bail, Context, Result};
use inference::{Dim, ElementType, Encoding, NnError, TensorData};
use std::path::Path;

/// A loaded graph, by index into the backend's table.
pub type GraphId = usize;

/// What a graph declares for one input or output.
#[derive(Debug, Clone)]
pub struct IoDesc {
    pub name: String,
    pub element_type: String,
    pub carrier: Option<ElementType>,
    pub shape: Option<Vec<Dim>>,
}

impl IoDesc {
    pub fn signature(&self) -> String {
        match &self.shape {
            None => nn_tables::signature_unranked(&self.element_type),
            Some(dims) => nn_tables::signature(&self.element_type, dims),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GraphDesc {
    pub format: String,
    pub sha256: String,
    pub inputs: Vec<IoDesc>,
    pub outputs: Vec<IoDesc>,
}

pub type Named = Vec<(String, TensorData)>;

pub trait Backend {
    fn name(&self) -> &'static str;
    fn load(&mut self, model: &[u8], encoding: Encoding) -> Result<GraphId, NnError>;
    fn describe(&mut self, graph: GraphId) -> Result<GraphDesc, NnError>;
    fn compute(&mut self, graph: GraphId, inputs: Named) -> Result<Named, NnError>;
    fn unload(&mut self, graph: GraphId);
}

/// The engine crate linked into this process.
#[derive(Default)]
pub struct Native {
    graphs: Vec<Option<inference::Graph>>,
}

impl Native {
    fn graph(&self, id: GraphId) -> Result<&inference::Graph, NnError> {
        self.graphs
            .get(id)
            .and_then(|g| g.as_ref())
            .ok_or_else(|| NnError::invalid("no such graph"))
    }
}

impl Backend for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn load(&mut self, model: &[u8], encoding: Encoding) -> Result<GraphId, NnError> {
        let g = inference::Graph::load(&[model], encoding, inference::Limits::default())?;
        self.graphs.push(Some(g));
        Ok(self.graphs.len() - 1)
    }

    fn describe(&mut self, graph: GraphId) -> Result<GraphDesc, NnError> {
        let info = self.graph(graph)?.info();
        let io = |i: &inference::IoInfo| IoDesc {
            name: i.name.clone(),
            element_type: i.element_name(),
            carrier: i.carrier(),
            shape: i.shape.clone(),
        };
        Ok(GraphDesc {
            format: info.format.as_str().into(),
            sha256: info.sha256.clone(),
            inputs: info.inputs.iter().map(io).collect(),
            outputs: info.outputs.iter().map(io).collect(),
        })
    }

    fn compute(&mut self, graph: GraphId, inputs: Named) -> Result<Named, NnError> {
        self.graph(graph)?.compute(inputs)
    }

    fn unload(&mut self, graph: GraphId) {
        if let Some(slot) = self.graphs.get_mut(graph) {
            *slot = None;
        }
    }
}

pub fn encoding_for(path: &Path) -> Encoding {
    match path.extension().and_then(|e| e.to_str()) {
        Some("onnx") => Encoding::Onnx,
        Some("tflite") => Encoding::TfLite,
        _ => Encoding::Autodetect,
    }
}

/// onnx's backend runner feeds dummy inputs as arange(n)/n with free dims set to 1; so do we
/// when no input is given.
pub fn dummy_input(desc: &IoDesc) -> Result<TensorData> {
    let dims: Vec<u32> = desc
        .shape
        .as_ref()
        .with_context(|| {
            format!(
                "input \"{}\" has unknown rank: give it with --input",
                desc.name
            )
        })?
        .iter()
        .map(|d| match d {
            inference::Dim::Fixed(n) => u32::try_from(*n).unwrap_or(u32::MAX),
            _ => 1,
        })
        .collect();
    let n: usize = dims.iter().map(|&d| d as usize).product();
    let data = match desc.carrier {
        Some(ElementType::F32) => (0..n)
            .flat_map(|i| (i as f32 / n as f32).to_le_bytes())
            .collect(),
        _ => bail!(
            "input \"{}\" is {}: give it with --input",
            desc.name,
            desc.signature()
        ),
    };
    Ok(TensorData::new(dims, ElementType::F32, data))
}
