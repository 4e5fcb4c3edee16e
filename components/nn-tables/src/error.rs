//! `wasi:nn/errors.error-code`: a code a program can branch on, its kebab-case name (the WIT's,
//! used in every user-facing message) and the HTTP status the server API answers it with.

/// Mirrors `wasi:nn/errors.error-code`, case for case and in the WIT's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidArgument,
    InvalidEncoding,
    Timeout,
    RuntimeError,
    UnsupportedOperation,
    TooLarge,
    NotFound,
    Security,
    Unknown,
}

/// One row: the code, its name, its HTTP status, what it means (the WIT's comment).
struct Row(ErrorCode, &'static str, u16, &'static str);

// Statuses: the caller's mistakes are 4xx (413 for sizes, 422 for a model the engine cannot
// run), the engine's are 5xx (504 for a deadline). The API loads models by bytes, so
// `not-found` can only mean an input name the model does not have: a 400.
#[rustfmt::skip]
const TABLE: [Row; 9] = [
    Row(ErrorCode::InvalidArgument, "invalid-argument", 400, "Caller module passed an invalid argument."),
    Row(ErrorCode::InvalidEncoding, "invalid-encoding", 400, "Invalid encoding."),
    Row(ErrorCode::Timeout, "timeout", 504, "The operation timed out."),
    Row(ErrorCode::RuntimeError, "runtime-error", 500, "Runtime Error."),
    Row(ErrorCode::UnsupportedOperation, "unsupported-operation", 422, "Unsupported operation."),
    Row(ErrorCode::TooLarge, "too-large", 413, "Graph is too large."),
    Row(ErrorCode::NotFound, "not-found", 400, "Graph not found."),
    Row(ErrorCode::Security, "security", 403, "The operation is insecure or has insufficient privilege to be performed."),
    Row(ErrorCode::Unknown, "unknown", 500, "The operation failed for an unspecified reason."),
];

impl ErrorCode {
    /// Every code, in the WIT's order.
    pub const ALL: [ErrorCode; 9] = first_column!(TABLE, ErrorCode::Unknown);

    fn row(self) -> &'static Row {
        let row = &TABLE[self as usize];
        debug_assert_eq!(row.0, self, "TABLE is in enum order");
        row
    }

    /// The kebab-case name used in the WIT and in every user-facing message.
    pub fn as_str(self) -> &'static str {
        self.row().1
    }

    /// The HTTP status the server API answers this code with.
    pub fn http_status(self) -> u16 {
        self.row().2
    }

    /// What the code means, as the wasi-nn WIT says.
    pub fn meaning(self) -> &'static str {
        self.row().3
    }

    pub fn parse(name: &str) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_in_enum_order_and_names_round_trip() {
        for (i, c) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(c as usize, i);
            assert_eq!(TABLE[i].0, c);
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(ErrorCode::parse("Timeout"), None);
    }

    #[test]
    fn statuses() {
        let s = |c: ErrorCode| c.http_status();
        assert_eq!(s(ErrorCode::InvalidArgument), 400);
        assert_eq!(s(ErrorCode::TooLarge), 413);
        assert_eq!(s(ErrorCode::UnsupportedOperation), 422);
        assert_eq!(s(ErrorCode::Timeout), 504);
        assert_eq!(s(ErrorCode::Security), 403);
        assert_eq!(s(ErrorCode::RuntimeError), 500);
    }
}
