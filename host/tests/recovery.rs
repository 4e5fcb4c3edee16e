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
