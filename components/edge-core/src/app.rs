//! The app, free of any HTTP binding: a request in, a response out. `handle` is the only entry
//! point, and every response it returns has been through [`policy::apply`].

use crate::config::{is_loopback, split_host_port, valid_host, Config};
use crate::policy::{self, kind_of, Kind, CACHE_IMMUTABLE, CACHE_NONE, CACHE_REVALIDATE};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;

/// Where build/web is mounted in the guest.
pub const WEB_ROOT: &str = "/web";
/// Where build/edge (precompressed variants + encodings.json) is mounted in the guest.
pub const EDGE_ROOT: &str = "/edge";
/// Longest request path considered (bytes, raw).
pub const MAX_PATH: usize = 1024;

pub struct Request<'a> {
    pub method: &'a str,
    /// The raw path, percent-encoded as received (no query).
    pub path: &'a str,
    /// The query string, without `?`, if any.
    pub query: Option<&'a str>,
    pub scheme: Option<&'a str>,
    /// The authority the client asked for (Host).
    pub host: Option<&'a str>,
    /// Lower-case names.
    pub headers: &'a [(String, String)],
}

impl Request<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// `len` bytes of the file at guest path `path`, from `start`.
    File {
        path: String,
        start: u64,
        len: u64,
    },
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Debug)]
pub struct Variant {
    pub coding: &'static str,
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Clone, Debug)]
pub struct Asset {
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    pub immutable: bool,
    /// Precompressed representations, best first (br, then gzip).
    pub variants: Vec<Variant>,
}

/// The allowlist: build/web/asset-manifest.json, plus build/edge/encodings.json.
#[derive(Clone, Debug, Default)]
pub struct Site {
    pub assets: HashMap<String, Asset>,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A manifest key is a relative path of plain segments; anything else is refused at load.
fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_PATH
        && k.split('/').all(|s| {
            !s.is_empty()
                && !s.starts_with('.')
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        })
}

/// One asset-manifest.json entry, borrowed from the bytes: a fresh instance (one per request under
/// WASI 0.2) parses the manifest for every request, so it is read into typed fields, with no
/// JSON tree in between.
#[derive(Deserialize)]
struct RawAsset<'a> {
    #[serde(borrow)]
    sha256: Cow<'a, str>,
    size: u64,
    #[serde(rename = "content-type", borrow)]
    content_type: Cow<'a, str>,
    #[serde(default)]
    immutable: bool,
}

/// One encodings.json entry: the variants made of one build of a file.
#[derive(Deserialize)]
struct RawEncodings<'a> {
    #[serde(rename = "source-sha256", borrow)]
    source: Cow<'a, str>,
    #[serde(borrow)]
    br: Option<RawVariant<'a>>,
    #[serde(borrow)]
    gzip: Option<RawVariant<'a>>,
}

#[derive(Deserialize)]
struct RawVariant<'a> {
    #[serde(borrow)]
    file: Cow<'a, str>,
    size: u64,
    #[serde(borrow)]
    sha256: Cow<'a, str>,
}

impl Site {
    /// `manifest`: asset-manifest.json; `encodings`: encodings.json (optional).
    pub fn parse(manifest: &[u8], encodings: Option<&[u8]>) -> Result<Site, String> {
        let m: std::collections::BTreeMap<Cow<str>, RawAsset> =
            serde_json::from_slice(manifest).map_err(|e| format!("asset-manifest.json: {e}"))?;
        let enc: HashMap<Cow<str>, RawEncodings> = match encodings {
            Some(b) => serde_json::from_slice(b).map_err(|e| format!("encodings.json: {e}"))?,
            None => HashMap::new(),
        };
        let mut assets = HashMap::with_capacity(m.len());
        for (key, v) in m {
            if !valid_key(&key) {
                return Err(format!("asset-manifest.json: invalid path {key:?}"));
            }
            let ct_ok = !v.content_type.is_empty()
                && v.content_type.bytes().all(|b| (0x20..0x7f).contains(&b));
            if !is_hex64(&v.sha256) || !ct_ok {
                return Err(format!("asset-manifest.json: bad entry for {key:?}"));
            }
            let mut variants = Vec::new();
            // Variants of another build of this file are ignored.
            if let Some(e) = enc.get(&key).filter(|e| e.source == v.sha256) {
                for (coding, x) in [("br", &e.br), ("gzip", &e.gzip)] {
                    if let Some(x) = x
                        .as_ref()
                        .filter(|x| valid_key(&x.file) && is_hex64(&x.sha256))
                    {
                        variants.push(Variant {
                            coding,
                            file: x.file.to_string(),
                            size: x.size,
                            sha256: x.sha256.to_string(),
                        });
                    }
                }
            }
            assets.insert(
                key.into_owned(),
                Asset {
                    sha256: v.sha256.into_owned(),
                    size: v.size,
                    content_type: v.content_type.into_owned(),
                    immutable: v.immutable,
                    variants,
                },
            );
        }
        Ok(Site { assets })
    }
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

fn h(n: &str, v: impl Into<String>) -> (String, String) {
    (n.to_string(), v.into())
}

pub fn finish(mut r: Response, kind: Kind, config: &Config) -> Response {
    policy::apply(&mut r.headers, kind, config);
    r
}

fn plain(status: u16, text: &str, mut extra: Vec<(String, String)>) -> Response {
    extra.push(h("content-type", "text/plain; charset=utf-8"));
    extra.push(h("cache-control", CACHE_NONE));
    Response {
        status,
        headers: extra,
        body: Body::Bytes(text.as_bytes().to_vec()),
    }
}

/// `q` for each coding in Accept-Encoding (lower-case).
fn accepts(accept_encoding: &[&str], coding: &str) -> bool {
    let mut star = None;
    let mut exact = None;
    for item in accept_encoding.iter().flat_map(|v| v.split(',')) {
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

/// If-None-Match: weak comparison, `*` matches.
fn none_match(values: &[&str], etag: &str) -> bool {
    let want = etag.trim_start_matches("W/");
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.trim_start_matches("W/") == want)
}

enum RangeSpec {
    None,
    Satisfiable(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range; several ranges or an unknown unit are ignored (full response).
fn parse_range(v: &str, size: u64) -> RangeSpec {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeSpec::None;
    };
    if spec.contains(',') {
        return RangeSpec::None;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::None;
    };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Some(n) = num(b) else {
            return RangeSpec::None;
        };
        if n == 0 || size == 0 {
            return RangeSpec::Unsatisfiable;
        }
        let n = n.min(size);
        return RangeSpec::Satisfiable(size - n, size - 1);
    }
    let Some(start) = num(a) else {
        return RangeSpec::None;
    };
    let end = if b.is_empty() {
        size.saturating_sub(1)
    } else {
        match num(b) {
            Some(e) if e >= start => e.min(size.saturating_sub(1)),
            _ => return RangeSpec::None,
        }
    };
    if start >= size {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Satisfiable(start, end)
}

/// The HTTPS rule: `Some(redirect)` for plain HTTP to a non-loopback host.
pub fn https_redirect(req: &Request, config: &Config) -> Option<Result<String, ()>> {
    if !config.require_https {
        return None;
    }
    let https = req.scheme.is_some_and(|s| s.eq_ignore_ascii_case("https"))
        || req
            .header("x-forwarded-proto")
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    if https {
        return None;
    }
    let Some(authority) = req.host else {
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
    let path = if req.path.starts_with('/')
        && !req.path.starts_with("//")
        && req.path.len() <= MAX_PATH
        && req.path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
    {
        req.path
    } else {
        "/"
    };
    let query = req
        .query
        .filter(|q| q.len() <= MAX_PATH && q.bytes().all(|b| b.is_ascii_graphic()))
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    Some(Ok(format!(
        "https://{}{path}{query}",
        host.to_ascii_lowercase()
    )))
}

/// The file system as the app sees it (guest paths).
pub trait Files {
    fn size(&self, path: &str) -> Option<u64>;
}

/// Handles one request. `config`: the settings, or why they are invalid; `site`: the
/// allowlist, or why it could not be loaded.
pub fn handle(
    req: &Request,
    config: &Result<Config, String>,
    site: Result<&Site, String>,
    files: &dyn Files,
) -> Response {
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            // Fail closed: the strictest policy, no content.
            let strict = Config {
                frame_ancestors: vec![],
                require_https: true,
                api: false,
            };
            return finish(
                plain(500, &format!("configuration error: {e}\n"), vec![]),
                Kind::Resource,
                &strict,
            );
        }
    };
    let done = |r: Response| finish(r, Kind::Resource, config);

    let head = match req.method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            return done(plain(
                405,
                "method not allowed\n",
                vec![h("allow", "GET, HEAD")],
            ))
        }
    };
    match https_redirect(req, config) {
        Some(Ok(location)) => {
            return done(plain(
                308,
                "HTTPS required\n",
                vec![h("location", location)],
            ))
        }
        Some(Err(())) => return done(plain(400, "bad request\n", vec![])),
        None => {}
    }

    let strip = |mut r: Response| {
        if head {
            if let Body::Bytes(b) = &r.body {
                r.headers.push(h("content-length", b.len().to_string()));
            }
            r.body = Body::Empty;
        }
        r
    };
    let not_found = || strip(done(plain(404, "not found\n", vec![])));

    let Some(key) = path_to_key(req.path) else {
        return not_found();
    };
    let site = match site {
        Ok(s) => s,
        Err(e) => {
            return strip(done(plain(
                503,
                &format!("site unavailable: {e}\n"),
                vec![],
            )))
        }
    };
    let Some(asset) = site.assets.get(&key) else {
        return not_found();
    };
    let kind = kind_of(&key);

    // Representation: a precompressed variant if accepted and no Range is asked for.
    let accept = req.header_all("accept-encoding");
    let range = req.header("range");
    let variant = if range.is_some() {
        None
    } else {
        asset.variants.iter().find(|v| accepts(&accept, v.coding))
    };
    let (etag, file, size) = match variant {
        Some(v) => (
            format!("\"{}-{}\"", asset.sha256, v.coding),
            format!("{EDGE_ROOT}/{}", v.file),
            v.size,
        ),
        None => (
            format!("\"{}\"", asset.sha256),
            format!("{WEB_ROOT}/{key}"),
            asset.size,
        ),
    };
    let mut headers = vec![
        h("etag", etag.clone()),
        h(
            "cache-control",
            if asset.immutable {
                CACHE_IMMUTABLE
            } else {
                CACHE_REVALIDATE
            },
        ),
    ];
    if !asset.variants.is_empty() {
        headers.push(h("vary", "Accept-Encoding"));
    }

    let inm = req.header_all("if-none-match");
    if !inm.is_empty() && none_match(&inm, &etag) {
        return finish(
            Response {
                status: 304,
                headers,
                body: Body::Empty,
            },
            kind,
            config,
        );
    }

    headers.push(h("content-type", asset.content_type.clone()));
    if let Some(v) = variant {
        headers.push(h("content-encoding", v.coding));
    } else {
        headers.push(h("accept-ranges", "bytes"));
    }

    // The file must still be the one the manifest describes.
    if files.size(&file) != Some(size) {
        return strip(done(plain(
            503,
            "site unavailable: a file changed since the build\n",
            vec![],
        )));
    }

    let mut status = 200;
    let (mut start, mut len) = (0, size);
    if let Some(r) = range {
        let if_range_ok = match req.header("if-range") {
            None => true,
            Some(v) => v.trim() == etag,
        };
        if if_range_ok {
            match parse_range(r, size) {
                RangeSpec::None => {}
                RangeSpec::Satisfiable(a, b) => {
                    status = 206;
                    start = a;
                    len = b - a + 1;
                    headers.push(h("content-range", format!("bytes {a}-{b}/{size}")));
                }
                RangeSpec::Unsatisfiable => {
                    // An error, not a representation of the asset: no validator, not cached.
                    let headers = vec![
                        h("content-range", format!("bytes */{size}")),
                        h("accept-ranges", "bytes"),
                    ];
                    return strip(done(plain(416, "range not satisfiable\n", headers)));
                }
            }
        }
    }
    headers.push(h("content-length", len.to_string()));
    let body = if head || len == 0 {
        Body::Empty
    } else {
        Body::File {
            path: file,
            start,
            len,
        }
    };
    finish(
        Response {
            status,
            headers,
            body,
        },
        kind,
        config,
    )
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
    fn ranges() {
        assert!(matches!(
            parse_range("bytes=0-9", 100),
            RangeSpec::Satisfiable(0, 9)
        ));
        assert!(matches!(
            parse_range("bytes=-10", 100),
            RangeSpec::Satisfiable(90, 99)
        ));
        assert!(matches!(
            parse_range("bytes=90-", 100),
            RangeSpec::Satisfiable(90, 99)
        ));
        assert!(matches!(
            parse_range("bytes=90-1000", 100),
            RangeSpec::Satisfiable(90, 99)
        ));
        assert!(matches!(
            parse_range("bytes=100-", 100),
            RangeSpec::Unsatisfiable
        ));
        assert!(matches!(parse_range("bytes=5-1", 100), RangeSpec::None));
        assert!(matches!(parse_range("items=0-1", 100), RangeSpec::None));
        assert!(matches!(parse_range("bytes=0-1,3-4", 100), RangeSpec::None));
    }

    struct Sizes(u64);
    impl Files for Sizes {
        fn size(&self, _: &str) -> Option<u64> {
            Some(self.0)
        }
    }

    fn site_with(key: &str, immutable: bool) -> Site {
        let manifest = format!(
            r#"{{"{key}": {{"sha256": "{}", "size": 100, "content-type": "application/wasm", "immutable": {immutable}}}}}"#,
            "a".repeat(64)
        );
        Site::parse(manifest.as_bytes(), None).unwrap()
    }

    #[test]
    fn unsatisfiable_range_is_an_uncached_error() {
        let site = site_with("e.0123abcd.wasm", true);
        let headers = vec![("range".to_string(), "bytes=500-".to_string())];
        let req = Request {
            method: "GET",
            path: "/e.0123abcd.wasm",
            query: None,
            scheme: Some("http"),
            host: Some("127.0.0.1"),
            headers: &headers,
        };
        let r = handle(&req, &Ok(Config::default()), Ok(&site), &Sizes(100));
        assert_eq!(r.status, 416);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("etag"), None);
        assert_eq!(r.header("content-range"), Some("bytes */100"));
        let ok = handle(
            &Request {
                headers: &[],
                ..req
            },
            &Ok(Config::default()),
            Ok(&site),
            &Sizes(100),
        );
        assert_eq!(ok.status, 200);
        assert_eq!(ok.header("cache-control"), Some(CACHE_IMMUTABLE));
    }

    #[test]
    fn encodings() {
        assert!(accepts(&["gzip, deflate, br"], "br"));
        assert!(!accepts(&["gzip, br;q=0"], "br"));
        assert!(accepts(&["*"], "gzip"));
        assert!(!accepts(&["identity"], "gzip"));
        assert!(!accepts(&[], "gzip"));
    }
}
