//! The TFLite load path (validation, then the rewrite rules in src/tflite/) on damaged
//! files: every one must be a clean error or a model that loads, never a panic (a trap in wasm).
mod common;

use common::{assert_no_panic, xorshift};
use inference::{Encoding, Graph, Limits};

fn model(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(name);
    std::fs::read(path).unwrap()
}

fn load(bytes: &[u8]) -> Result<(), inference::NnError> {
    Graph::load(&[bytes], Encoding::TfLite, Limits::default()).map(|_| ())
}

#[test]
fn truncated_tflite_is_a_clear_error() {
    let bytes = model("tiny-conv.tflite");
    for len in (0..bytes.len()).step_by(7) {
        let result = load(&bytes[..len]);
        assert!(result.is_err(), "cut at {len} loaded");
        assert_no_panic(&format!("cut at {len}"), &result);
    }
}

#[test]
fn corrupted_tflite_never_panics() {
    let bytes = model("tiny-conv.tflite");
    // Deterministic byte damage (xorshift), over the whole file: offsets, indices, shapes.
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let mut loaded = 0;
    for round in 0..1500 {
        let mut damaged = bytes.clone();
        for _ in 0..1 + round % 3 {
            let at = (next() as usize) % damaged.len();
            damaged[at] = next() as u8;
        }
        let result = load(&damaged);
        loaded += result.is_ok() as usize;
        assert_no_panic(&format!("round {round}"), &result);
    }
    // Damage to weights or padding leaves a loadable model: the loop did reach the rewrite.
    assert!(loaded > 0);
}
