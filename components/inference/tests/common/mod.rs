//! Helpers shared by the integration tests that damage model files.
use inference::NnError;

/// A deterministic xorshift generator: the same damage on every run.
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// A clean error or a success; `guarded` reports a caught panic as "engine failed while ...".
pub fn assert_no_panic<T>(what: &str, result: &Result<T, NnError>) {
    if let Err(e) = result {
        assert!(
            !e.message.starts_with("engine failed while"),
            "{what}: panicked: {e}"
        );
    }
}
