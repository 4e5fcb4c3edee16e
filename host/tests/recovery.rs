//! The host survives what the guest does: errors leave the graph usable, a deadline trap is a
//! `timeout` error and the next call gets a fresh instance.
use inference::{ElementType, Encoding, ErrorCode, TensorData};
use secure_context::backend::Backend;
use secure_context::runtime::{component_path, WasmBackend};
use std::path::Path;
use std::time::Duration;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn digit_input(batch: u32) -> TensorData {
    let n = batch as usize * 64;
    TensorData::new(
        vec![batch, 1, 8, 8],
        ElementType::F32,
        (0..n)
            .flat_map(|i| (i as f32 / n as f32).to_le_bytes())
            .collect(),
    )
}

fn backend() -> WasmBackend {
    let wasm = component_path(Some(&repo("target/wasm32-wasip2/wasm/inference.wasm")));
    WasmBackend::new(&wasm, Duration::from_secs(60))
        .expect("build the component first (scripts/build)")
}

#[test]
fn an_error_leaves_the_graph_usable() {
    let mut b = backend();
    let g = b
        .load(
            &std::fs::read(repo("models/digits.onnx")).unwrap(),
            Encoding::Onnx,
        )
        .unwrap();
    let bad = TensorData::new(vec![1, 64], ElementType::F32, vec![0; 256]);
    let e = b.compute(g, vec![("input".into(), bad)]).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    let out = b
        .compute(g, vec![("input".into(), digit_input(3))])
        .unwrap();
    assert_eq!(out[0].0, "probabilities");
    assert_eq!(out[0].1.dims, vec![3, 10]);
}

#[test]
fn a_deadline_trap_is_a_timeout_and_the_engine_restarts() {
    let resnet = repo("build/conformance/light/light_resnet50/model.onnx");
    assert!(
        resnet.exists(),
        "run tests/conformance/prepare_suites.py build/conformance first"
    );
    let mut b = backend();
    let g = b
        .load(&std::fs::read(&resnet).unwrap(), Encoding::Onnx)
        .unwrap();
    let desc = b.describe(g).unwrap();
    let input = secure_context::backend::dummy_input(&desc.inputs[0]).unwrap();
    b.set_timeout(Duration::from_millis(1));
    let e = b
        .compute(g, vec![(desc.inputs[0].name.clone(), input)])
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Timeout, "{e}");
    // The trapped instance is gone, and its graphs with it: say so, then work again.
    b.set_timeout(Duration::from_secs(60));
    assert_eq!(b.compute(g, vec![]).unwrap_err().code, ErrorCode::NotFound);
    let g2 = b
        .load(
            &std::fs::read(repo("models/digits.onnx")).unwrap(),
            Encoding::Onnx,
        )
        .unwrap();
    assert_eq!(
        b.compute(g2, vec![("input".into(), digit_input(1))])
            .unwrap()[0]
            .1
            .dims,
        vec![1, 10]
    );
}

/// Every model the fuzzer once crashed the engine with (tests/fuzz-regressions/) is a wasi-nn
/// error in the component too: no trap (a panic is one in wasm, `panic = "abort"`), whether it
/// fails at load or at its first run.
#[test]
fn fuzzer_findings_are_wasi_nn_errors_in_the_component() {
    let mut b = backend();
    let mut seen = 0;
    for entry in std::fs::read_dir(repo("tests/fuzz-regressions")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let encoding = if path.extension().is_some_and(|e| e == "tflite") {
            Encoding::TfLite
        } else {
            Encoding::Autodetect
        };
        let result = b.load(&bytes, encoding).and_then(|g| {
            let inputs = b
                .describe(g)?
                .inputs
                .iter()
                .filter_map(|i| {
                    let dims: Vec<u32> = i
                        .shape
                        .as_ref()?
                        .iter()
                        .map(|d| match d {
                            inference::Dim::Fixed(n) => u32::try_from(*n).ok(),
                            _ => Some(1),
                        })
                        .collect::<Option<_>>()?;
                    let ty = i.carrier?;
                    let n = dims.iter().map(|&d| d as usize).product::<usize>();
                    (n <= 1 << 16).then(|| {
                        (
                            i.name.clone(),
                            TensorData::new(dims, ty, vec![0; n * ty.size()]),
                        )
                    })
                })
                .collect();
            b.compute(g, inputs).map(|_| ())
        });
        if let Err(e) = result {
            assert!(
                !e.message.contains("trapped"),
                "{}: the component trapped: {e}",
                path.display()
            );
        }
        seen += 1;
    }
    assert!(seen > 0);
}
