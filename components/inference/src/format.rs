//! Graph encodings and sniffing the bytes for `autodetect`.

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

/// Guess the format from the first bytes. TFLite is a flatbuffer whose file identifier
/// "TFL3" sits at offset 4; ONNX is a protobuf `ModelProto`, whose first field is almost
/// always `ir_version` (field 1, varint: tag byte 0x08).
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.len() >= 8 && &bytes[4..8] == b"TFL3" {
        return Some(Format::TfLite);
    }
    match bytes.first() {
        // ir_version (0x08), or a producer/graph field first (0x12, 0x1a, 0x3a) from other writers.
        Some(0x08) | Some(0x12) | Some(0x1a) | Some(0x3a) => Some(Format::Onnx),
        _ => None,
    }
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
}
