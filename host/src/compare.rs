//! Output comparison as onnx's backend test runner does it: same count, element type and shape;
//! floats by `numpy.testing.assert_allclose` rules (NaN equals NaN), everything else exactly.
use half::{bf16, f16};
use inference::{ElementType, TensorData};

#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            rtol: 1e-3,
            atol: 1e-7,
        }
    }
}

fn floats(t: &TensorData) -> Option<Vec<f64>> {
    let c = t.data.chunks_exact(t.ty.size());
    Some(match t.ty {
        ElementType::F16 => c
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f64())
            .collect(),
        ElementType::Bf16 => c
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f64())
            .collect(),
        ElementType::F32 => c
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        ElementType::F64 => c
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        _ => return None,
    })
}

/// None when `actual` matches `expected`, else why not.
pub fn mismatch(expected: &TensorData, actual: &TensorData, tol: Tolerance) -> Option<String> {
    if expected.ty != actual.ty {
        return Some(format!(
            "element type: expected {}, got {}",
            expected.signature(),
            actual.signature()
        ));
    }
    if expected.dims != actual.dims {
        return Some(format!(
            "shape: expected {}, got {}",
            expected.signature(),
            actual.signature()
        ));
    }
    match (floats(expected), floats(actual)) {
        (Some(e), Some(a)) => {
            let mut bad = 0usize;
            let mut worst = (0usize, 0f64);
            for (i, (x, y)) in e.iter().zip(&a).enumerate() {
                let ok = if x.is_nan() || y.is_nan() {
                    x.is_nan() && y.is_nan()
                } else if x.is_infinite() || y.is_infinite() {
                    x == y
                } else {
                    (x - y).abs() <= tol.atol + tol.rtol * x.abs()
                };
                if !ok {
                    bad += 1;
                    let d = (x - y).abs();
                    if d.is_nan() || d > worst.1 || bad == 1 {
                        worst = (i, d);
                    }
                }
            }
            (bad > 0).then(|| {
                format!(
                    "{bad} of {} values differ; worst at {}: expected {}, got {}",
                    e.len(),
                    worst.0,
                    e[worst.0],
                    a[worst.0]
                )
            })
        }
        _ => (expected.data != actual.data).then(|| {
            let size = expected.ty.size();
            let bad = expected
                .data
                .chunks(size)
                .zip(actual.data.chunks(size))
                .filter(|(x, y)| x != y)
                .count();
            format!("{bad} of {} values differ", expected.data.len() / size)
        }),
    }
}

/// Largest absolute difference between two float tensors of one shape (for reports).
pub fn max_abs_diff(a: &TensorData, b: &TensorData) -> Option<f64> {
    let (x, y) = (floats(a)?, floats(b)?);
    (x.len() == y.len()).then(|| {
        x.iter()
            .zip(&y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f64::max)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(v: &[f32]) -> TensorData {
        TensorData::new(
            vec![v.len() as u32],
            ElementType::F32,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        )
    }

    #[test]
    fn tolerances_follow_allclose() {
        let t = Tolerance::default();
        assert!(mismatch(&f32s(&[1000.0, f32::NAN]), &f32s(&[1000.9, f32::NAN]), t).is_none());
        assert!(mismatch(&f32s(&[1000.0]), &f32s(&[1001.1]), t).is_some());
        assert!(mismatch(&f32s(&[0.0]), &f32s(&[1e-6]), t).is_some());
        assert!(mismatch(&f32s(&[1.0]), &f32s(&[f32::NAN]), t).is_some());
        assert!(mismatch(&f32s(&[1.0, 2.0]), &f32s(&[1.0]), t)
            .unwrap()
            .starts_with("shape"));
    }
}
