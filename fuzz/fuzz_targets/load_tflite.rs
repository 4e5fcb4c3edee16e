//! The TFLite loader (validation, the load-time rewrite, tract-tflite) on arbitrary bytes, then
//! one run on whatever loaded: it must return a result (never abort, hang or exhaust memory).
//! Seeded with every operator the engine reads (fuzz/tflite_seeds.py) and the shipped models.
#![no_main]
use inference::{Dim, ElementType, Encoding, Graph, Limits, TensorData};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_model_bytes: 1 << 20, max_tensor_elements: 1 << 16, max_cached_plans: 1 };
    let Ok(graph) = Graph::load(&[data], Encoding::TfLite, limits) else { return };
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
            let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d as usize))?;
            if n > 1 << 16 || ty == ElementType::Bf16 {
                return None;
            }
            Some((i.name.clone(), TensorData::new(dims, ty, vec![0; n * ty.size()])))
        })
        .collect();
    if let Some(inputs) = inputs {
        let _ = graph.compute(inputs);
    }
});
