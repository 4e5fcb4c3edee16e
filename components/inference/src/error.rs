//! Errors in wasi-nn terms: a code a program can branch on and a message a person can act on.
use std::fmt;

/// The wasi-nn error codes (`nn-tables`: names, HTTP statuses), so the native engine and the
/// component report alike.
pub use nn_tables::ErrorCode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NnError {
    pub code: ErrorCode,
    pub message: String,
}

impl NnError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        NnError {
            code,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TooLarge, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnsupportedOperation, message)
    }
    pub fn runtime(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::RuntimeError, message)
    }
}

impl fmt::Display for NnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for NnError {}

pub type NnResult<T> = Result<T, NnError>;

/// tract's errors are anyhow chains; keep every level (they say where in the model it failed),
/// but fold the multi-line debug dumps some levels carry and bound each level's length, so a
/// message stays readable and never carries a model's weights.
pub fn describe_tract_error(e: &tract_onnx::prelude::TractError) -> String {
    const MAX_PART: usize = 240;
    let parts: Vec<String> = e
        .chain()
        .map(|c| {
            let folded = c
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            match folded.char_indices().nth(MAX_PART) {
                Some((cut, _)) => format!("{}...", &folded[..cut]),
                None => folded,
            }
        })
        .collect();
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::TractError;

    #[test]
    fn tract_errors_are_folded_and_bounded() {
        let dump = format!("Operator {{\n    weights: [{}]\n}}", "0.5, ".repeat(1000));
        let e = TractError::msg(dump).context("Translating node \"conv1\"");
        let text = describe_tract_error(&e);
        assert!(text.starts_with("Translating node \"conv1\": Operator { weights: [0.5, 0.5"));
        assert!(text.len() < 600 && text.ends_with("..."), "{text}");
    }
}
