//! Runs ONNX backend test cases (`model.onnx` + `test_data_set_*/{input,output}_*.pb`) the way
//! onnx's own runner does, on one or both backends.
use crate::backend::{Backend, Named};
use crate::compare::{mismatch, Tolerance};
use anyhow::{bail, Context, Result};
use inference::{Encoding, NnError, TensorData};
use prost::Message;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// A test case directory holds `model.onnx`; a suite directory holds case directories.
pub fn find_cases(dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.join("model.onnx").is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    if cases.is_empty() {
        bail!(
            "{} holds no test cases (directories with a model.onnx)",
            dir.display()
        );
    }
    cases.sort();
    Ok(cases)
}

/// Files named `<prefix>_<n>.pb`, in numeric order.
fn numbered(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let stem = p
                .file_name()?
                .to_str()?
                .strip_prefix(prefix)?
                .strip_prefix('_')?
                .strip_suffix(".pb")?;
            Some((stem.parse().ok()?, p))
        })
        .collect();
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Reads a `TensorProto` with the engine's own readers: tract's (the same code that reads
/// initializers), or for the types tract lacks (bf16, float8, 4-bit...) the engine's, which
/// also names the type (it travels in a wider carrier, so the carrier alone does not say it).
fn read_tensor(path: &Path) -> Result<(String, TensorData), String> {
    read_typed_tensor(path).map(|(name, t, _)| (name, t))
}

fn read_typed_tensor(path: &Path) -> Result<(String, TensorData, Option<&'static str>), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let proto = tract_onnx::pb::TensorProto::decode(&bytes[..])
        .map_err(|e| format!("bad TensorProto: {e}"))?;
    if let Some(carried) = inference::onnx_narrow_tensor(&proto) {
        let (narrow, data) = carried.map_err(|e| e.message)?;
        return Ok((proto.name, data, Some(narrow.name())));
    }
    let resolver = tract_onnx::data_resolver::default();
    // tract's reader panics on some raw encodings it does not implement (e.g. bfloat16).
    let tensor = catch_unwind(AssertUnwindSafe(|| {
        tract_onnx::tensor::load_tensor(&*resolver, &proto, None)
    }))
    .map_err(|_| "tract cannot read this tensor encoding".to_string())?
    .map_err(|e| e.to_string())?;
    let data = TensorData::from_tract(&tensor).map_err(|e| e.message)?;
    Ok((proto.name, data, None))
}

#[derive(Debug)]
pub enum Outcome {
    Pass,
    Fail(String),
}

/// Runs one case; any failure, including the engine's own errors, is a `Fail` with a reason.
pub fn run_case(backend: &mut dyn Backend, case: &Path, tol: Tolerance) -> Outcome {
    match run_case_inner(backend, case, tol) {
        Ok(()) => Outcome::Pass,
        Err(why) => Outcome::Fail(why),
    }
}

fn run_case_inner(backend: &mut dyn Backend, case: &Path, tol: Tolerance) -> Result<(), String> {
    let model = std::fs::read(case.join("model.onnx")).map_err(|e| e.to_string())?;
    let graph = backend
        .load(&model, Encoding::Onnx)
        .map_err(|e: NnError| format!("load: {e}"))?;
    let result = (|| {
        let desc = backend
            .describe(graph)
            .map_err(|e| format!("describe: {e}"))?;
        let sets = std::fs::read_dir(case)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("test_data_set"))
            })
            .collect::<Vec<_>>();
        if sets.is_empty() {
            return Err("no test_data_set_* directory".to_string());
        }
        for set in sets {
            let mut inputs: Named = vec![];
            for (i, p) in numbered(&set, "input")
                .map_err(|e| e.to_string())?
                .iter()
                .enumerate()
            {
                let (name, t) = read_tensor(p).map_err(|e| format!("{}: {e}", p.display()))?;
                // Unnamed inputs bind by position, as onnx's runner does.
                let name = if name.is_empty() {
                    desc.inputs
                        .get(i)
                        .map(|d| d.name.clone())
                        .ok_or("more inputs than the model declares")?
                } else {
                    name
                };
                inputs.push((name, t));
            }
            let expected = numbered(&set, "output").map_err(|e| e.to_string())?;
            let outputs = backend
                .compute(graph, inputs)
                .map_err(|e| format!("compute: {e}"))?;
            if outputs.len() != expected.len() {
                return Err(format!(
                    "expected {} outputs, got {}",
                    expected.len(),
                    outputs.len()
                ));
            }
            for (i, (p, (name, actual))) in expected.iter().zip(&outputs).enumerate() {
                let (_, want, narrow) =
                    read_typed_tensor(p).map_err(|e| format!("{}: {e}", p.display()))?;
                let declared = desc.outputs.get(i).map(|o| o.element_type.as_str());
                if let Some(narrow) = narrow.filter(|&n| Some(n) != declared) {
                    return Err(format!(
                        "output {i} \"{name}\": element type: expected {narrow}, got {}",
                        declared.unwrap_or("?")
                    ));
                }
                if let Some(why) = mismatch(&want, actual, tol) {
                    return Err(format!("output {i} \"{name}\": {why}"));
                }
            }
        }
        Ok(())
    })();
    backend.unload(graph);
    result
}
