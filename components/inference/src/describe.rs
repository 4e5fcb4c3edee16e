//! What a loaded graph takes and gives: the model introspection that wasi-nn has no word for.
use crate::format::Format;
use crate::onnx_ops::narrow::Narrow;
use crate::tensor::{carrier_for, datum_name, ElementType, TensorData};
use std::fmt;
use tract_hir::infer::{Factoid, InferenceFact};
use tract_onnx::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(u64),
    /// A named dimension (`batch`), fixed only by the tensors given to `compute`.
    Symbolic(String),
    Unknown,
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoInfo {
    pub name: String,
    /// The model's own element type, when the model states it.
    pub datum: Option<DatumType>,
    /// Set when the model declares a type tract lacks (bf16, float8, int4...): `datum` is then
    /// the type that holds its values inside the engine.
    pub narrow: Option<Narrow>,
    /// None when the rank itself is unknown.
    pub shape: Option<Vec<Dim>>,
}

impl IoInfo {
    pub fn element_name(&self) -> String {
        match self.narrow {
            Some(n) => n.name().into(),
            None => self.datum.map(datum_name).unwrap_or_else(|| "?".into()),
        }
    }

    pub fn carrier(&self) -> Option<ElementType> {
        match self.narrow {
            Some(n) => Some(n.carrier()),
            None => self.datum.and_then(carrier_for),
        }
    }

    /// `f32[batch,1,8,8]`, in the same notation as [`TensorData::signature`].
    pub fn signature(&self) -> String {
        let ty = nn_tables::type_label(&self.element_name(), self.carrier());
        match &self.shape {
            None => nn_tables::signature_unranked(&ty),
            Some(dims) => nn_tables::signature(&ty, dims),
        }
    }

    /// Whether a tensor's dims fit this declaration (symbolic and unknown dims take anything).
    pub fn shape_accepts(&self, t: &TensorData) -> bool {
        match &self.shape {
            None => true,
            Some(dims) => {
                dims.len() == t.dims.len()
                    && dims.iter().zip(&t.dims).all(|(d, &n)| match d {
                        Dim::Fixed(f) => *f == n as u64,
                        _ => true,
                    })
            }
        }
    }

    /// The concrete shape, when every dim is fixed.
    pub fn concrete_shape(&self) -> Option<Vec<usize>> {
        self.shape
            .as_ref()?
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => usize::try_from(*n).ok(),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn from_inference(name: String, fact: &InferenceFact) -> IoInfo {
        let datum = fact.datum_type.concretize();
        let shape = if fact.shape.is_open() {
            None
        } else {
            Some(
                fact.shape
                    .dims()
                    .map(|d| d.concretize().map(dim_of).unwrap_or(Dim::Unknown))
                    .collect(),
            )
        };
        IoInfo {
            name,
            datum,
            narrow: None,
            shape,
        }
    }

    pub(crate) fn from_typed(name: String, fact: &TypedFact) -> IoInfo {
        IoInfo {
            name,
            datum: Some(fact.datum_type),
            narrow: None,
            shape: Some(fact.shape.iter().map(|d| dim_of(d.clone())).collect()),
        }
    }
}

fn dim_of(d: TDim) -> Dim {
    match d {
        TDim::Val(v) if v >= 0 => Dim::Fixed(v as u64),
        TDim::Val(_) => Dim::Unknown,
        TDim::Sym(s) => Dim::Symbolic(s.to_string()),
        other => Dim::Symbolic(other.to_string()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphInfo {
    pub format: Format,
    /// Lower-case hex sha256 of the model bytes, as in `models/manifest.json`.
    pub sha256: String,
    pub inputs: Vec<IoInfo>,
    pub outputs: Vec<IoInfo>,
}
