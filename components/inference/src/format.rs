//! Graph encodings, the model formats behind one trait, and sniffing the bytes for `autodetect`.
use crate::error::NnResult;
use crate::graph::Graph;
use crate::limits::Limits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Onnx,
    TfLite,
    Autodetect,
    /// A wasi-nn encoding this engine has no reader for (openvino, tensorflow, pytorch, ggml).
    Other(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Onnx,
    TfLite,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Onnx => "onnx",
            Format::TfLite => "tflite",
        }
    }
}

/// A model format the engine reads: how it is recognised, and how its bytes become a graph
/// (which carries its description: inputs, outputs, the model's sha256). One implementation per
/// format, in its own module (`onnx_format.rs`, `tflite/`); nothing else in the engine names a
/// format's reader.
pub(crate) trait ModelFormat: Sync {
    fn format(&self) -> Format;
    /// Whether the first bytes look like this format (for `autodetect`).
    fn sniff(&self, bytes: &[u8]) -> bool;
    /// Reads the model (`bytes` is not empty and within the model size limit).
    fn load(&self, bytes: &[u8], sha256: String, limits: Limits) -> NnResult<Graph>;
}

/// The readers, in the order `sniff` tries them (TFLite's identifier is the surer test).
const FORMATS: [&dyn ModelFormat; 2] = [&crate::tflite::TfLite, &crate::onnx_format::Onnx];

/// The reader of a format.
pub(crate) fn reader(format: Format) -> &'static dyn ModelFormat {
    match format {
        Format::Onnx => &crate::onnx_format::Onnx,
        Format::TfLite => &crate::tflite::TfLite,
    }
}

/// Guess the format from the first bytes.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    FORMATS.iter().find(|f| f.sniff(bytes)).map(|f| f.format())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_tflite_and_onnx() {
        assert_eq!(sniff(b"\x1c\0\0\0TFL3\0\0"), Some(Format::TfLite));
        assert_eq!(sniff(b"\x08\x08\x12\x04"), Some(Format::Onnx));
        assert_eq!(sniff(b"GGUF...."), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn every_format_has_its_reader() {
        for f in [Format::Onnx, Format::TfLite] {
            assert_eq!(reader(f).format(), f);
            assert!(FORMATS.iter().any(|r| r.format() == f));
        }
    }
}
