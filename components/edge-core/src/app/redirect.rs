//! The HTTPS rule (SC_REQUIRE_HTTPS): plain HTTP to a non-loopback host is redirected.

use super::path::MAX_PATH;
use crate::config::{is_loopback, split_host_port, valid_host, Config};
use http::header::HOST;
use http::Request;

/// The authority the client asked for: the request target's, else the Host header.
pub fn authority<B>(req: &Request<B>) -> Option<&str> {
    match req.uri().authority() {
        Some(a) if !a.as_str().is_empty() => Some(a.as_str()),
        _ => req.headers().get(HOST).and_then(|h| h.to_str().ok()),
    }
}

/// `Some(Ok(location))` for plain HTTP to a non-loopback host, `Some(Err(()))` (→ 400) when the
/// host the client asked for is missing or not a valid host, `None` when the request may go on.
pub fn https_redirect<B>(req: &Request<B>, config: &Config) -> Option<Result<String, ()>> {
    if !config.require_https {
        return None;
    }
    let https = req
        .uri()
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"))
        || req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|p| p.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    if https {
        return None;
    }
    let Some(authority) = authority(req) else {
        return Some(Err(()));
    };
    let Some((host, _port)) = split_host_port(authority) else {
        return Some(Err(()));
    };
    if !valid_host(host) {
        return Some(Err(()));
    }
    if is_loopback(host) {
        return None;
    }
    // The path is re-encoded from what was received: it already passed the HTTP parser
    // (no spaces, no CR/LF); anything that is not a plain path becomes "/".
    let raw = req.uri().path();
    let path = if raw.starts_with('/')
        && !raw.starts_with("//")
        && raw.len() <= MAX_PATH
        && raw.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
    {
        raw
    } else {
        "/"
    };
    let query = req
        .uri()
        .query()
        .filter(|q| q.len() <= MAX_PATH && q.bytes().all(|b| b.is_ascii_graphic()))
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    Some(Ok(format!(
        "https://{}{path}{query}",
        host.to_ascii_lowercase()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> Config {
        Config {
            require_https: true,
            ..Config::default()
        }
    }

    fn get(uri: &str, host: Option<&str>) -> Request<()> {
        let mut b = Request::get(uri);
        if let Some(h) = host {
            b = b.header(HOST, h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn redirects_plain_http_to_other_hosts() {
        let r = get("http://App.Example:8080/a/b?x=1", None);
        assert_eq!(
            https_redirect(&r, &strict()),
            Some(Ok("https://app.example/a/b?x=1".into()))
        );
        // Origin-form: the Host header names the host.
        let r = get("/x", Some("app.example"));
        assert_eq!(
            https_redirect(&r, &strict()),
            Some(Ok("https://app.example/x".into()))
        );
        // Off when the operator turns it off.
        let off = Config {
            require_https: false,
            ..Config::default()
        };
        assert_eq!(https_redirect(&r, &off), None);
    }

    #[test]
    fn lets_https_and_loopback_through() {
        assert_eq!(
            https_redirect(&get("https://app.example/", None), &strict()),
            None
        );
        let mut r = get("/", Some("app.example"));
        r.headers_mut()
            .insert("x-forwarded-proto", "HTTPS".parse().unwrap());
        assert_eq!(https_redirect(&r, &strict()), None);
        assert_eq!(
            https_redirect(&get("/", Some("127.0.0.1:3000")), &strict()),
            None
        );
        assert_eq!(https_redirect(&get("/", Some("[::1]")), &strict()), None);
    }

    #[test]
    fn refuses_missing_or_bad_hosts() {
        assert_eq!(https_redirect(&get("/", None), &strict()), Some(Err(())));
        assert_eq!(
            https_redirect(&get("/", Some("a_b..c")), &strict()),
            Some(Err(()))
        );
    }

    #[test]
    fn odd_paths_become_root() {
        let r = get("http://app.example//evil.example/x", None);
        assert_eq!(
            https_redirect(&r, &strict()),
            Some(Ok("https://app.example/".into()))
        );
    }
}
