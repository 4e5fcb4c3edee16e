//! Content negotiation for the precompressed variants: Accept-Encoding.

use http::header::ACCEPT_ENCODING;
use http::HeaderMap;

/// Whether `coding` (lower-case) is acceptable: its own `q`, else `*`'s, must be above 0.
/// Every Accept-Encoding field counts; a value that is not visible ASCII is ignored.
pub fn accepts(headers: &HeaderMap, coding: &str) -> bool {
    let mut star = None;
    let mut exact = None;
    let values = headers
        .get_all(ACCEPT_ENCODING)
        .into_iter()
        .filter_map(|v| v.to_str().ok());
    for item in values.flat_map(|v| v.split(',')) {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        for p in parts {
            if let Some(v) = p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")) {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if name == coding {
            exact = Some(q);
        } else if name == "*" {
            star = Some(q);
        }
    }
    exact.or(star).is_some_and(|q| q > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn accept(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(ACCEPT_ENCODING, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn encodings() {
        assert!(accepts(&accept(&["gzip, deflate, br"]), "br"));
        assert!(!accepts(&accept(&["gzip, br;q=0"]), "br"));
        assert!(accepts(&accept(&["*"]), "gzip"));
        assert!(!accepts(&accept(&["identity"]), "gzip"));
        assert!(!accepts(&accept(&[]), "gzip"));
        // Several fields are one list; the coding's own q wins over `*`.
        assert!(accepts(&accept(&["gzip;q=0", "br"]), "br"));
        assert!(!accepts(&accept(&["*", "br;q=0"]), "br"));
    }
}
