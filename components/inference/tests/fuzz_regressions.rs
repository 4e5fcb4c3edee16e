//! Inputs the fuzzer once crashed the loader with (tests/fuzz-regressions/): each must now be a
//! clean error, not a panic (a panic is a trap in wasm).
use inference::{Encoding, Graph, Limits};

#[test]
fn fuzzer_findings_are_clean_errors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz-regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let err = Graph::load(&[&bytes], Encoding::Autodetect, Limits::default()).unwrap_err();
        // `guarded` reports a caught panic as "engine failed while ...": that must not happen.
        assert!(
            !err.message.starts_with("engine failed while"),
            "{}: panicked: {err}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen > 0);
}
