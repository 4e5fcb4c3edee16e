//! Request paths to manifest keys: one decoder, and the one rule for what a key may be.

/// Longest request path considered (bytes, raw).
pub const MAX_PATH: usize = 1024;

/// A manifest key is a relative path of plain segments; anything else is refused at load.
pub(crate) fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_PATH
        && k.split('/').all(|s| {
            !s.is_empty()
                && !s.starts_with('.')
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        })
}

/// Decodes a request path into a manifest key, or `None` (→ 404) for anything that is not a
/// plain relative path: bad or overlong percent-escapes, non-UTF-8 (overlong encodings
/// included), NUL and control bytes, backslashes, `.`/`..`/empty segments, dot-files.
pub fn path_to_key(raw: &str) -> Option<String> {
    if raw.len() > MAX_PATH || !raw.starts_with('/') {
        return None;
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let h = |c: u8| (c as char).to_digit(16);
            let hi = bytes.get(i + 1).copied().and_then(h)?;
            let lo = bytes.get(i + 2).copied().and_then(h)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    let s = String::from_utf8(out).ok()?;
    if s.chars()
        .any(|c| c.is_control() || c == '\\' || c == ':' || c == '%')
    {
        return None;
    }
    let rel = &s[1..];
    if rel.is_empty() {
        return Some("index.html".into());
    }
    if valid_key(rel) {
        Some(rel.to_string())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(path_to_key("/").as_deref(), Some("index.html"));
        assert_eq!(
            path_to_key("/engine/inference.js").as_deref(),
            Some("engine/inference.js")
        );
        assert_eq!(
            path_to_key("/%73andbox.html").as_deref(),
            Some("sandbox.html")
        );
        for bad in [
            "/..",
            "/../etc/passwd",
            "/%2e%2e/x",
            "/a/%2e%2e/index.html",
            "/a%2f..%2f..%2fetc",
            "/%5c..%5cx",
            "/a\\b",
            "/%00",
            "/index.html%00.js",
            "/%c0%ae%c0%ae/x",
            "/%e0%80%ae",
            "/.env",
            "/models/",
            "//etc/passwd",
            "/C:/windows",
            "/%",
            "/%zz",
            "/%252e%252e/x",
            "x",
        ] {
            assert_eq!(path_to_key(bad), None, "{bad}");
        }
        assert_eq!(path_to_key(&format!("/{}", "a".repeat(2000))), None);
    }

    #[test]
    fn keys() {
        assert!(valid_key("engine/inference.0123abcd.wasm"));
        for bad in ["", "a//b", "a/", ".git/config", "a/../b", "a b", "a\\b"] {
            assert!(!valid_key(bad), "{bad:?}");
        }
        assert!(!valid_key(&"a".repeat(MAX_PATH + 1)));
    }
}
