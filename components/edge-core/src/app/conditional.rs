//! Validators: the ETag of a representation, If-None-Match and If-Range.

use http::header::{IF_NONE_MATCH, IF_RANGE};
use http::HeaderMap;

/// The strong ETag of an asset (by its sha256), or of one of its precompressed variants.
pub fn etag(sha256: &str, coding: Option<&str>) -> String {
    match coding {
        Some(c) => format!("\"{sha256}-{c}\""),
        None => format!("\"{sha256}\""),
    }
}

/// If-None-Match: weak comparison, `*` matches; `false` without the header.
pub fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    let want = etag.trim_start_matches("W/");
    headers
        .get_all(IF_NONE_MATCH)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.trim_start_matches("W/") == want)
}

/// If-Range: a Range applies only to the representation it names (by ETag; a date never
/// matches, so the full response is sent). No If-Range: the Range applies.
pub fn range_applies(headers: &HeaderMap, etag: &str) -> bool {
    match headers.get(IF_RANGE) {
        None => true,
        Some(v) => v.to_str().is_ok_and(|v| v.trim() == etag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(name: http::HeaderName, values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name.clone(), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn if_none_match() {
        let e = etag("abc", None);
        assert_eq!(e, "\"abc\"");
        assert_eq!(etag("abc", Some("br")), "\"abc-br\"");
        assert!(none_match(&with(IF_NONE_MATCH, &["\"abc\""]), &e));
        assert!(none_match(&with(IF_NONE_MATCH, &["W/\"abc\""]), &e));
        assert!(none_match(&with(IF_NONE_MATCH, &["\"x\", \"abc\""]), &e));
        assert!(none_match(&with(IF_NONE_MATCH, &["\"x\"", "\"abc\""]), &e));
        assert!(none_match(&with(IF_NONE_MATCH, &["*"]), &e));
        assert!(!none_match(&with(IF_NONE_MATCH, &["\"abc-br\""]), &e));
        assert!(!none_match(&HeaderMap::new(), &e));
    }

    #[test]
    fn if_range() {
        let e = etag("abc", None);
        assert!(range_applies(&HeaderMap::new(), &e));
        assert!(range_applies(&with(IF_RANGE, &[" \"abc\" "]), &e));
        assert!(!range_applies(&with(IF_RANGE, &["\"abd\""]), &e));
        assert!(!range_applies(
            &with(IF_RANGE, &["Wed, 21 Oct 2015 07:28:00 GMT"]),
            &e
        ));
    }
}
