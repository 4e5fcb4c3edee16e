//! Every failure the API reports: an HTTP status and `{"error": {"code", "message"}}`.

use nn_tables::ErrorCode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    /// Stable, machine-readable (`bad-json`, `dtype`, `shape`, `too-large`, ...).
    pub code: &'static str,
    /// For a person: what was wrong and what to send instead. Never echoes input data.
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, code, message)
    }

    pub fn json(&self) -> Vec<u8> {
        serde_json::json!({ "error": { "code": self.code, "message": self.message } })
            .to_string()
            .into_bytes()
    }

    /// A wasi-nn error from the engine: its code's HTTP status (`nn-tables`). The API loads
    /// models by bytes, so the engine's `not-found` can only mean an input name the model does
    /// not have.
    pub fn from_nn(code: ErrorCode, message: String) -> ApiError {
        let name = match code {
            ErrorCode::NotFound => "unknown-input",
            other => other.as_str(),
        };
        ApiError::new(code.http_status(), name, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statuses and codes clients see for each engine error (tests/api checks them end to end).
    #[test]
    fn engine_errors_map_to_these_statuses() {
        let expected = [
            (ErrorCode::InvalidArgument, 400, "invalid-argument"),
            (ErrorCode::InvalidEncoding, 400, "invalid-encoding"),
            (ErrorCode::Timeout, 504, "timeout"),
            (ErrorCode::RuntimeError, 500, "runtime-error"),
            (
                ErrorCode::UnsupportedOperation,
                422,
                "unsupported-operation",
            ),
            (ErrorCode::TooLarge, 413, "too-large"),
            (ErrorCode::NotFound, 400, "unknown-input"),
            (ErrorCode::Security, 403, "security"),
            (ErrorCode::Unknown, 500, "unknown"),
        ];
        for (code, status, name) in expected {
            let e = ApiError::from_nn(code, String::new());
            assert_eq!((e.status, e.code), (status, name), "{code}");
        }
    }
}
