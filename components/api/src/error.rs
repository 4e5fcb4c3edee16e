//! Every failure the API reports: an HTTP status and `{"error": {"code", "message"}}`.

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

    /// A wasi-nn error from the engine, by its code. The API loads models by bytes, so the
    /// engine's `not-found` can only mean an input name the model does not have.
    pub fn from_nn(code: &str, message: String) -> ApiError {
        let status = match code {
            "invalid-argument" | "invalid-encoding" | "not-found" => 400,
            "too-large" => 413,
            "unsupported-operation" => 422,
            "timeout" => 504,
            "security" => 403,
            _ => 500,
        };
        let code = match code {
            "invalid-argument" => "invalid-argument",
            "invalid-encoding" => "invalid-encoding",
            "not-found" => "unknown-input",
            "too-large" => "too-large",
            "unsupported-operation" => "unsupported-operation",
            "timeout" => "timeout",
            "security" => "security",
            "runtime-error" => "runtime-error",
            _ => "unknown",
        };
        ApiError::new(status, code, message)
    }
}
