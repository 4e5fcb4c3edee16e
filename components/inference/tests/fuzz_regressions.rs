//! Inputs the fuzzer once crashed the engine with (tests/fuzz-regressions/): each must now be a
//! clean error, not a panic (a panic is a trap in wasm). As the fuzz targets do: the model is
//! loaded (`.tflite` files as TFLite, as `load_tflite` reads them; others sniffed, as `load`
//! does) and, when it loads, run once on zeros.
use inference::{Dim, Encoding, Graph, Limits, TensorData};

/// `guarded` reports a caught panic as "engine failed while ...": that must not happen.
fn assert_clean(path: &std::path::Path, result: Result<(), inference::NnError>) {
    if let Err(err) = result {
        assert!(
            !err.message.starts_with("engine failed while"),
            "{}: panicked: {err}",
            path.display()
        );
    }
}

#[test]
fn fuzzer_findings_are_clean_errors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz-regressions");
    let mut seen = 0;
    let mut tflite = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let encoding = if path.extension().is_some_and(|e| e == "tflite") {
            tflite += 1;
            Encoding::TfLite
        } else {
            Encoding::Autodetect
        };
        let limits = Limits {
            max_model_bytes: 1 << 20,
            max_tensor_elements: 1 << 16,
            max_cached_plans: 1,
        };
        let graph = match Graph::load(&[&bytes], encoding, limits) {
            Ok(g) => g,
            Err(e) => {
                assert_clean(&path, Err(e));
                seen += 1;
                continue;
            }
        };
        let inputs: Option<Vec<(String, TensorData)>> = graph
            .info()
            .inputs
            .iter()
            .map(|i| {
                let dims: Vec<u32> = i
                    .shape
                    .as_ref()?
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => u32::try_from(*n).ok(),
                        _ => Some(1),
                    })
                    .collect::<Option<_>>()?;
                let ty = i.carrier()?;
                let n = dims
                    .iter()
                    .try_fold(1usize, |a, &d| a.checked_mul(d as usize))?;
                (n <= 1 << 16).then(|| {
                    (
                        i.name.clone(),
                        TensorData::new(dims, ty, vec![0; n * ty.size()]),
                    )
                })
            })
            .collect();
        if let Some(inputs) = inputs {
            assert_clean(&path, graph.compute(inputs).map(|_| ()));
        }
        seen += 1;
    }
    assert!(seen > 0 && tflite > 0, "{seen} inputs, {tflite} TFLite");
}
