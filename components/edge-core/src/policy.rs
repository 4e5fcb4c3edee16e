//! The header policy: written once, applied to every response this app sends (200, 206, 304,
//! 3xx, 4xx, 5xx, the API's too) by [`apply`].

use crate::config::Config;
use http::{HeaderMap, HeaderValue};

/// What a response is, as far as the policy cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An HTML document that only this origin may frame (`index.html`, ...).
    Document,
    /// The sandbox iframe document: framable by the configured allowlist, gets
    /// `Document-Isolation-Policy` so it can be cross-origin isolated inside any embedder. Its
    /// engine worker starts from a `blob:` URL of verified bytes and so runs under this CSP.
    SandboxDocument,
    /// A dedicated worker's script started from its URL: its CSP is the worker's policy.
    /// (The engine's worker.js is not started so: the sandbox fetches it with SRI.)
    Worker,
    /// Everything else (scripts, styles, wasm, models, JSON, errors, redirects).
    Resource,
}

/// The directives every script-running context gets: no inline script, no eval, Trusted Types.
/// `script-src` and `worker-src` are added per kind ([`script_sources`]).
pub const CSP_DIRECTIVES: &[&str] = &[
    "default-src 'none'",
    "connect-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "frame-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "object-src 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types secure-context",
];

/// `script-src` of a document, and of the contexts that compile wasm: a worker started from its
/// URL, and the sandbox document, whose engine worker (a `blob:` URL of the SRI-verified
/// worker.js, static/worker-spawn.js) inherits its CSP. No other document compiles wasm.
pub const DOCUMENT_SCRIPT_SRC: &str = "script-src 'self'";
pub const WORKER_SCRIPT_SRC: &str = "script-src 'self' 'wasm-unsafe-eval'";
pub const SANDBOX_SCRIPT_SRC: &str = WORKER_SCRIPT_SRC;

/// `worker-src` of a document and of a worker, and of the sandbox document: workers there start
/// only from `blob:` URLs (of bytes it verified; its Trusted Types policy lets through only the
/// ones it minted), never from a URL whose bytes nobody checked.
pub const DOCUMENT_WORKER_SRC: &str = "worker-src 'self'";
pub const SANDBOX_WORKER_SRC: &str = "worker-src blob:";

/// `script-src` and `worker-src` of one kind of script-running response.
pub fn script_sources(kind: Kind) -> [&'static str; 2] {
    match kind {
        Kind::SandboxDocument => [SANDBOX_SCRIPT_SRC, SANDBOX_WORKER_SRC],
        Kind::Worker => [WORKER_SCRIPT_SRC, DOCUMENT_WORKER_SRC],
        Kind::Document | Kind::Resource => [DOCUMENT_SCRIPT_SRC, DOCUMENT_WORKER_SRC],
    }
}

/// Resources never run script: nothing is allowed, nothing may frame them.
pub const RESOURCE_CSP: &str = "default-src 'none'; base-uri 'none'; form-action 'none'; \
object-src 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'";

/// Powerful features off for this origin and everything it embeds; cross-origin isolation on.
/// Only features Chromium recognizes (an unknown one is a console error on every page load;
/// tests/edge/browser.test.mjs checks).
pub const PERMISSIONS_POLICY: &str = "accelerometer=(), autoplay=(), camera=(), \
display-capture=(), encrypted-media=(), fullscreen=(), geolocation=(), gyroscope=(), hid=(), \
idle-detection=(), magnetometer=(), microphone=(), midi=(), payment=(), picture-in-picture=(), \
publickey-credentials-get=(), screen-wake-lock=(), serial=(), usb=(), \
xr-spatial-tracking=(), cross-origin-isolated=(self)";

/// The features the sandbox document (and no other) may use itself: the camera and the
/// microphone, for the camera and microphone input modes (static/sandbox-camera.js,
/// static/sandbox-audio.js). Each still needs the embedder's `allow="camera"` /
/// `allow="microphone"` on the iframe, so it is on only where the app asks for it.
pub const SANDBOX_ALLOWS: &[(&str, &str)] = &[
    ("camera=()", "camera=(self)"),
    ("microphone=()", "microphone=(self)"),
];

/// Permissions-Policy for one kind of response.
pub fn permissions_policy(kind: Kind) -> String {
    let mut p = PERMISSIONS_POLICY.to_string();
    if kind == Kind::SandboxDocument {
        for (off, on) in SANDBOX_ALLOWS {
            p = p.replace(off, on);
        }
    }
    p
}

pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// The file name of a module worker's script: the one kind of context whose CSP lets wasm compile.
pub const WORKER_NAME: &str = "worker.js";

/// The kind of a served file, by its path in the allowlist (build/web).
pub fn kind_of(key: &str) -> Kind {
    let name = key.rsplit('/').next().unwrap_or(key);
    if key == "sandbox.html" {
        Kind::SandboxDocument
    } else if key.ends_with(".html") {
        Kind::Document
    } else if name == WORKER_NAME {
        Kind::Worker
    } else {
        Kind::Resource
    }
}

/// Content types by file extension; anything else is `application/octet-stream` (never sniffed:
/// `nosniff`). Read by scripts/build-web (through `secure-context policy --json`) to type every
/// file of the allowlist.
pub const CONTENT_TYPES: &[(&str, &str)] = &[
    (".html", "text/html; charset=utf-8"),
    (".js", "text/javascript; charset=utf-8"),
    (".mjs", "text/javascript; charset=utf-8"),
    (".css", "text/css; charset=utf-8"),
    (".json", "application/json"),
    (".wasm", "application/wasm"),
    (".onnx", "application/octet-stream"),
    (".tflite", "application/octet-stream"),
    (".svg", "image/svg+xml"),
    (".png", "image/png"),
    (".txt", "text/plain; charset=utf-8"),
];
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

pub fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    CONTENT_TYPES
        .iter()
        .find(|(ext, _)| name.len() > ext.len() && name.ends_with(ext))
        .map_or(DEFAULT_CONTENT_TYPE, |(_, ct)| ct)
}

/// Cache-Control of content-hashed files (`name.<8 hex>.ext`), of every other file, and of
/// every response that is not a file (errors, redirects, the API).
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
pub const CACHE_REVALIDATE: &str = "no-cache";
pub const CACHE_NONE: &str = "no-store";

/// Content-hashed file names: `inference.core.0123abcd.wasm`.
pub fn is_immutable(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    let mut parts = name.rsplit('.');
    let (Some(ext), Some(hash), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !ext.is_empty()
        && ext.bytes().all(|b| b.is_ascii_lowercase())
        && hash.len() == 8
        && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The CSP for one kind of response.
pub fn csp(kind: Kind, config: &Config) -> String {
    let ancestors = match kind {
        Kind::Document => "'self'".to_string(),
        Kind::SandboxDocument => {
            let mut a = vec!["'self'".to_string()];
            a.extend(config.frame_ancestors.iter().cloned());
            a.join(" ")
        }
        Kind::Worker => "'none'".to_string(),
        Kind::Resource => return RESOURCE_CSP.to_string(),
    };
    let mut d: Vec<String> = vec![CSP_DIRECTIVES[0].to_string()];
    d.extend(script_sources(kind).iter().map(|s| s.to_string()));
    d.extend(CSP_DIRECTIVES[1..].iter().map(|s| s.to_string()));
    d.push(format!("frame-ancestors {ancestors}"));
    d.join("; ")
}

/// Headers the policy owns. A handler never sets these; [`apply`] removes any it finds.
pub const OWNED: &[&str] = &[
    "content-security-policy",
    "cross-origin-opener-policy",
    "cross-origin-embedder-policy",
    "cross-origin-resource-policy",
    "permissions-policy",
    "document-isolation-policy",
    "referrer-policy",
    "strict-transport-security",
    "x-content-type-options",
    "x-permitted-cross-domain-policies",
    "x-frame-options",
    "origin-agent-cluster",
    "server",
    "x-powered-by",
];

/// Applies the policy to a response's headers: removes every header it owns, then sets them.
pub fn apply(headers: &mut HeaderMap, kind: Kind, config: &Config) {
    for name in OWNED {
        headers.remove(*name);
    }
    let has_cache_control = headers.contains_key(http::header::CACHE_CONTROL);
    let mut set = |n: &'static str, v: HeaderValue| {
        headers.append(n, v);
    };
    // Frame ancestors are checked origins (config.rs), so the CSP is a valid header value; were
    // it not, the resource CSP (nothing may run, nothing may frame) goes out instead.
    let csp = HeaderValue::try_from(csp(kind, config))
        .unwrap_or_else(|_| HeaderValue::from_static(RESOURCE_CSP));
    set("content-security-policy", csp);
    set(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    set(
        "cross-origin-embedder-policy",
        HeaderValue::from_static("require-corp"),
    );
    // The sandbox document, when other origins may frame it: a COEP `require-corp` embedder
    // (an isolated client page) loads it only if its CORP allows cross-origin (Fetch's CORP
    // check applies to nested navigations). Who may frame it stays `frame-ancestors`' call.
    let corp = if kind == Kind::SandboxDocument && !config.frame_ancestors.is_empty() {
        "cross-origin"
    } else {
        "same-origin"
    };
    set(
        "cross-origin-resource-policy",
        HeaderValue::from_static(corp),
    );
    let pp = HeaderValue::try_from(permissions_policy(kind))
        .unwrap_or_else(|_| HeaderValue::from_static(PERMISSIONS_POLICY));
    set("permissions-policy", pp);
    if kind == Kind::SandboxDocument {
        set(
            "document-isolation-policy",
            HeaderValue::from_static("isolate-and-require-corp"),
        );
    }
    set("referrer-policy", HeaderValue::from_static("no-referrer"));
    set("strict-transport-security", HeaderValue::from_static(HSTS));
    set(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    set(
        "x-permitted-cross-domain-policies",
        HeaderValue::from_static("none"),
    );
    set("origin-agent-cluster", HeaderValue::from_static("?1"));
    if !has_cache_control {
        set("cache-control", HeaderValue::from_static(CACHE_NONE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_gets_allowlist_and_dip() {
        let config = Config {
            frame_ancestors: vec!["https://app.example".into()],
            ..Config::default()
        };
        let mut h = HeaderMap::new();
        h.insert("server", HeaderValue::from_static("x"));
        apply(&mut h, Kind::SandboxDocument, &config);
        let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_string());
        assert!(get("server").is_none());
        assert!(get("content-security-policy")
            .unwrap()
            .ends_with("frame-ancestors 'self' https://app.example"));
        assert_eq!(
            get("document-isolation-policy").unwrap(),
            "isolate-and-require-corp"
        );
        let mut h = HeaderMap::new();
        apply(&mut h, Kind::Document, &config);
        assert!(!h.contains_key("document-isolation-policy"));
    }

    #[test]
    fn only_the_sandbox_may_use_the_camera_and_microphone() {
        let pp = |kind| {
            let mut h = HeaderMap::new();
            apply(&mut h, kind, &Config::default());
            h["permissions-policy"].to_str().unwrap().to_string()
        };
        let sandbox = pp(Kind::SandboxDocument);
        assert!(sandbox.contains("camera=(self)") && !sandbox.contains("camera=()"));
        assert!(sandbox.contains("microphone=(self)") && !sandbox.contains("microphone=()"));
        for kind in [Kind::Document, Kind::Worker, Kind::Resource] {
            assert!(pp(kind).contains("camera=()"), "{kind:?}");
            assert!(pp(kind).contains("microphone=()"), "{kind:?}");
        }
    }
}
