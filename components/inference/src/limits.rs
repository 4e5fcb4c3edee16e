//! Resource limits: refuse with `too-large` before allocating, never run out of memory.

/// What one engine instance accepts. Defaults fit a browser tab and a 32-bit wasm memory (4 GiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest model file accepted by `load`.
    pub max_model_bytes: usize,
    /// Largest element count of any single tensor: inputs, outputs and every intermediate.
    pub max_tensor_elements: usize,
    /// Most optimized plans kept per graph (one per distinct input shape set).
    pub max_cached_plans: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_model_bytes: 512 << 20,
            max_tensor_elements: 64 << 20,
            max_cached_plans: 4,
        }
    }
}
