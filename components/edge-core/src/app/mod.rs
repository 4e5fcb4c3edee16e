//! The app, free of any HTTP binding: an [`http::Request`] in, an [`http::Response`] out.
//! [`handle`] is the only entry point, and every response it returns has been through
//! [`policy::apply`]. Each concern is a module of its own: the allowlist (`manifest`), request
//! paths (`path`), content negotiation (`encoding`), validators (`conditional`), ranges
//! (`range`) and the HTTPS rule (`redirect`).

mod conditional;
mod encoding;
mod manifest;
mod path;
mod range;
mod redirect;

pub use manifest::{Asset, Site, Variant};
pub use path::{path_to_key, MAX_PATH};
pub use redirect::{authority, https_redirect};

use crate::config::Config;
use crate::policy::{self, kind_of, Kind, CACHE_IMMUTABLE, CACHE_NONE, CACHE_REVALIDATE};
use http::header::{
    ACCEPT_RANGES, ALLOW, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, LOCATION, RANGE, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use range::{parse_range, RangeSpec};

/// Where build/web is mounted in the guest.
pub const WEB_ROOT: &str = "/web";
/// Where build/edge (precompressed variants + encodings.json) is mounted in the guest.
pub const EDGE_ROOT: &str = "/edge";

/// The request the app reads: its head (the edge reads no body).
pub type Request = http::Request<()>;
/// The response the app makes; the HTTP binding sends the body.
pub type Response = http::Response<Body>;

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

/// A header value the app writes itself; one that cannot be a header value (never: every
/// value here is built from checked ASCII) becomes empty rather than a panic.
fn value(v: impl Into<String>) -> HeaderValue {
    HeaderValue::try_from(v.into()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A response with `status`, `headers` and `body`.
pub fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut r = http::Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// Applies the header policy for `kind`: every response leaves through here.
pub fn finish(mut r: Response, kind: Kind, config: &Config) -> Response {
    policy::apply(r.headers_mut(), kind, config);
    r
}

/// The settings to answer under when they are invalid: the strictest, and no content.
pub fn strict_config() -> Config {
    Config {
        frame_ancestors: vec![],
        require_https: true,
        api: false,
    }
}

fn plain(status: StatusCode, text: &str, mut headers: HeaderMap) -> Response {
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(CACHE_NONE));
    response(status, headers, Body::Bytes(text.as_bytes().to_vec()))
}

/// 400 for a request the HTTP binding could not read into an [`http::Request`].
pub fn bad_request(config: &Result<Config, String>) -> Response {
    let config = config.clone().unwrap_or_else(|_| strict_config());
    finish(
        plain(StatusCode::BAD_REQUEST, "bad request\n", HeaderMap::new()),
        Kind::Resource,
        &config,
    )
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
            return finish(
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("configuration error: {e}\n"),
                    HeaderMap::new(),
                ),
                Kind::Resource,
                &strict_config(),
            );
        }
    };
    let done = |r: Response| finish(r, Kind::Resource, config);

    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut h = HeaderMap::new();
            h.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return done(plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed\n",
                h,
            ));
        }
    };
    match https_redirect(req, config) {
        Some(Ok(location)) => {
            let mut h = HeaderMap::new();
            h.insert(LOCATION, value(location));
            return done(plain(StatusCode::PERMANENT_REDIRECT, "HTTPS required\n", h));
        }
        Some(Err(())) => {
            return done(plain(
                StatusCode::BAD_REQUEST,
                "bad request\n",
                HeaderMap::new(),
            ))
        }
        None => {}
    }

    let strip = |mut r: Response| {
        if head {
            if let Body::Bytes(b) = r.body() {
                let n = b.len();
                r.headers_mut().append(CONTENT_LENGTH, HeaderValue::from(n));
            }
            *r.body_mut() = Body::Empty;
        }
        r
    };
    let not_found = || {
        strip(done(plain(
            StatusCode::NOT_FOUND,
            "not found\n",
            HeaderMap::new(),
        )))
    };

    let Some(key) = path_to_key(req.uri().path()) else {
        return not_found();
    };
    let site = match site {
        Ok(s) => s,
        Err(e) => {
            return strip(done(plain(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("site unavailable: {e}\n"),
                HeaderMap::new(),
            )))
        }
    };
    let Some(asset) = site.assets.get(&key) else {
        return not_found();
    };
    let kind = kind_of(&key);
    let h = req.headers();

    // Representation: a precompressed variant if accepted and no Range is asked for.
    let range = h.get(RANGE);
    let variant = if range.is_some() {
        None
    } else {
        asset
            .variants
            .iter()
            .find(|v| encoding::accepts(h, v.coding))
    };
    let etag = conditional::etag(&asset.sha256, variant.map(|v| v.coding));
    let (file, size) = match variant {
        Some(v) => (format!("{EDGE_ROOT}/{}", v.file), v.size),
        None => (format!("{WEB_ROOT}/{key}"), asset.size),
    };
    let mut headers = HeaderMap::new();
    headers.insert(ETAG, value(etag.clone()));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(if asset.immutable {
            CACHE_IMMUTABLE
        } else {
            CACHE_REVALIDATE
        }),
    );
    if !asset.variants.is_empty() {
        headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    }

    if conditional::none_match(h, &etag) {
        return finish(
            response(StatusCode::NOT_MODIFIED, headers, Body::Empty),
            kind,
            config,
        );
    }

    headers.insert(CONTENT_TYPE, value(asset.content_type.clone()));
    match variant {
        Some(v) => headers.insert(CONTENT_ENCODING, HeaderValue::from_static(v.coding)),
        None => headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes")),
    };

    // The file must still be the one the manifest describes.
    if files.size(&file) != Some(size) {
        return strip(done(plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "site unavailable: a file changed since the build\n",
            HeaderMap::new(),
        )));
    }

    let mut status = StatusCode::OK;
    let (mut start, mut len) = (0, size);
    // A Range value that is not visible ASCII is no range: the full response.
    let range = range.and_then(|r| r.to_str().ok());
    if let Some(r) = range.filter(|_| conditional::range_applies(h, &etag)) {
        match parse_range(r, size) {
            RangeSpec::None => {}
            RangeSpec::Satisfiable(a, b) => {
                status = StatusCode::PARTIAL_CONTENT;
                start = a;
                len = b - a + 1;
                headers.insert(CONTENT_RANGE, value(format!("bytes {a}-{b}/{size}")));
            }
            RangeSpec::Unsatisfiable => {
                // An error, not a representation of the asset: no validator, not cached.
                let mut headers = HeaderMap::new();
                headers.insert(CONTENT_RANGE, value(format!("bytes */{size}")));
                headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                return strip(done(plain(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range not satisfiable\n",
                    headers,
                )));
            }
        }
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    let body = if head || len == 0 {
        Body::Empty
    } else {
        Body::File {
            path: file,
            start,
            len,
        }
    };
    finish(response(status, headers, body), kind, config)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn get(path: &str, headers: &[(&str, &str)]) -> Request {
        let mut b = http::Request::get(format!("http://127.0.0.1{path}"));
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap()
    }

    fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers().get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn unsatisfiable_range_is_an_uncached_error() {
        let site = site_with("e.0123abcd.wasm", true);
        let req = get("/e.0123abcd.wasm", &[("range", "bytes=500-")]);
        let r = handle(&req, &Ok(Config::default()), Ok(&site), &Sizes(100));
        assert_eq!(r.status(), 416);
        assert_eq!(header(&r, "cache-control"), Some("no-store"));
        assert_eq!(header(&r, "etag"), None);
        assert_eq!(header(&r, "content-range"), Some("bytes */100"));
        let ok = handle(
            &get("/e.0123abcd.wasm", &[]),
            &Ok(Config::default()),
            Ok(&site),
            &Sizes(100),
        );
        assert_eq!(ok.status(), 200);
        assert_eq!(header(&ok, "cache-control"), Some(CACHE_IMMUTABLE));
    }

    #[test]
    fn serves_ranges_validators_and_heads() {
        let site = site_with("m.onnx", false);
        let config = Ok(Config::default());
        let r = handle(
            &get("/m.onnx", &[("range", "bytes=10-19")]),
            &config,
            Ok(&site),
            &Sizes(100),
        );
        assert_eq!(r.status(), 206);
        assert_eq!(header(&r, "content-range"), Some("bytes 10-19/100"));
        assert_eq!(header(&r, "content-length"), Some("10"));
        assert_eq!(
            r.body(),
            &Body::File {
                path: "/web/m.onnx".into(),
                start: 10,
                len: 10
            }
        );
        let etag = header(&r, "etag").unwrap().to_string();
        let r = handle(
            &get("/m.onnx", &[("if-none-match", &etag)]),
            &config,
            Ok(&site),
            &Sizes(100),
        );
        assert_eq!(r.status(), 304);
        assert_eq!(r.body(), &Body::Empty);
        let r = handle(
            &get(
                "/m.onnx",
                &[("range", "bytes=10-19"), ("if-range", "\"other\"")],
            ),
            &config,
            Ok(&site),
            &Sizes(100),
        );
        assert_eq!(r.status(), 200);
        let mut head = get("/nope", &[]);
        *head.method_mut() = Method::HEAD;
        let r = handle(&head, &config, Ok(&site), &Sizes(100));
        assert_eq!(r.status(), 404);
        assert_eq!(header(&r, "content-length"), Some("10"));
        assert_eq!(r.body(), &Body::Empty);
    }

    #[test]
    fn fails_closed() {
        let site = site_with("a.js", false);
        let mut post = get("/a.js", &[]);
        *post.method_mut() = Method::POST;
        let r = handle(&post, &Ok(Config::default()), Ok(&site), &Sizes(100));
        assert_eq!(r.status(), 405);
        assert_eq!(header(&r, "allow"), Some("GET, HEAD"));
        let r = handle(
            &get("/a.js", &[]),
            &Err("bad".into()),
            Ok(&site),
            &Sizes(100),
        );
        assert_eq!(r.status(), 500);
        assert!(header(&r, "content-security-policy").is_some());
        // A file whose size is not the manifest's is not served.
        let r = handle(
            &get("/a.js", &[]),
            &Ok(Config::default()),
            Ok(&site),
            &Sizes(99),
        );
        assert_eq!(r.status(), 503);
        let r = handle(
            &get("/a.js", &[]),
            &Ok(Config::default()),
            Err("gone".into()),
            &Sizes(100),
        );
        assert_eq!(r.status(), 503);
    }
}
