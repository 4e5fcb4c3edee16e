//! The header policy and the content types as data, for the servers that cannot link this crate:
//! the Streamlit package's local server (Python) and the browser tests' server (Node).
//! `secure-context policy --json` prints it; scripts/build-web writes it to build/policy.json
//! (and types the allowlist with it), scripts/build-python bundles it into the package.
//!
//! Every header list here is produced by [`policy::apply`] itself, so the data cannot drift from
//! what the edge app sends. A server applies it as the edge does:
//! - the kind of a file: `kinds` (exact `paths`, then `suffixes` of the path, then file `names`,
//!   else `default`); every response
//!   that is not a file (errors, redirects, 304s keep the file's kind) is a `resource`;
//! - its headers: `headers[kind]`, or for `sandbox-document` with configured frame ancestors
//!   `headers["sandbox-document-framed"]`, with `frame_ancestors.placeholder` replaced by the
//!   origins, space-separated (at most `frame_ancestors.max`, each https://host[:port], or http://
//!   for a loopback host);
//! - `cache-control`: `cache.immutable` / `cache.revalidate` for files (immutable when the name
//!   matches `cache.immutable_pattern`), `cache.none` for everything else;
//! - the headers in `owned` are the policy's: a server never sets them otherwise (no `server`).

use crate::config::{Config, MAX_FRAME_ANCESTORS};
use crate::policy::{self, Kind};
use serde_json::{json, Value};

/// Stands for the configured frame ancestors in `sandbox-document-framed`.
pub const FRAME_ANCESTORS_PLACEHOLDER: &str = "{frame-ancestors}";

pub const FORMAT: &str = "secure-context-policy/1";

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Document => "document",
        Kind::SandboxDocument => "sandbox-document",
        Kind::Worker => "worker",
        Kind::Resource => "resource",
    }
}

fn headers(kind: Kind, config: &Config) -> Value {
    Value::Array(
        sent(kind, config)
            .into_iter()
            .map(|(n, v)| json!([n, v]))
            .collect(),
    )
}

/// What [`policy::apply`] sends for `kind`, in order, as text; Cache-Control is the file
/// server's (see `cache`), not the kind's, and is left out.
fn sent(kind: Kind, config: &Config) -> Vec<(String, String)> {
    let mut h = http::HeaderMap::new();
    policy::apply(&mut h, kind, config);
    h.iter()
        .filter(|(n, _)| *n != http::header::CACHE_CONTROL)
        .map(|(n, v)| {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (n.as_str().to_string(), v)
        })
        .collect()
}

/// The whole policy as one JSON document.
pub fn policy_json() -> Value {
    let none = Config::default();
    let framed = Config {
        frame_ancestors: vec![FRAME_ANCESTORS_PLACEHOLDER.to_string()],
        ..Config::default()
    };
    let mut by_kind = serde_json::Map::new();
    for kind in [
        Kind::Document,
        Kind::SandboxDocument,
        Kind::Worker,
        Kind::Resource,
    ] {
        by_kind.insert(kind_name(kind).into(), headers(kind, &none));
    }
    by_kind.insert(
        "sandbox-document-framed".into(),
        headers(Kind::SandboxDocument, &framed),
    );
    let content_types: serde_json::Map<String, Value> = policy::CONTENT_TYPES
        .iter()
        .map(|(ext, ct)| (ext.to_string(), Value::from(*ct)))
        .collect();
    json!({
        "format": FORMAT,
        "kinds": {
            "paths": { "sandbox.html": kind_name(policy::kind_of("sandbox.html")) },
            "names": { policy::WORKER_NAME: kind_name(policy::kind_of(policy::WORKER_NAME)) },
            "suffixes": { ".html": kind_name(policy::kind_of("x.html")) },
            "default": kind_name(policy::kind_of("x.js")),
        },
        "headers": by_kind,
        "frame_ancestors": {
            "placeholder": FRAME_ANCESTORS_PLACEHOLDER,
            "max": MAX_FRAME_ANCESTORS,
            "origins": "https://host[:port], or http://host[:port] for a loopback host (localhost, *.localhost, 127.0.0.0/8, [::1])",
        },
        "cache": {
            "immutable": policy::CACHE_IMMUTABLE,
            "revalidate": policy::CACHE_REVALIDATE,
            "none": policy::CACHE_NONE,
            "immutable_pattern": "\\.[0-9a-f]{8}\\.[a-z]+$",
        },
        "content_types": content_types,
        "default_content_type": policy::DEFAULT_CONTENT_TYPE,
        "owned": policy::OWNED,
        "allow": "GET, HEAD",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_what_apply_sends() {
        let p = policy_json();
        let framed = Config {
            frame_ancestors: vec!["https://a.example".into(), "http://localhost:8501".into()],
            ..Config::default()
        };
        let sent = sent(Kind::SandboxDocument, &framed);
        let data: Vec<(String, String)> = p["headers"]["sandbox-document-framed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                let v = pair[1].as_str().unwrap().replace(
                    FRAME_ANCESTORS_PLACEHOLDER,
                    "https://a.example http://localhost:8501",
                );
                (pair[0].as_str().unwrap().to_string(), v)
            })
            .collect();
        assert_eq!(data, sent);
        assert_eq!(p["content_types"][".wasm"], "application/wasm");
        // Wasm compiles in the worker and in the sandbox document, whose blob: worker runs the
        // engine under its CSP; there, workers start from blob: only.
        for kind in ["worker", "sandbox-document", "sandbox-document-framed"] {
            assert!(
                p["headers"][kind].to_string().contains("wasm-unsafe-eval"),
                "{kind}"
            );
        }
        for kind in ["document", "resource"] {
            assert!(
                !p["headers"][kind].to_string().contains("wasm-unsafe-eval"),
                "{kind}"
            );
        }
        assert!(p["headers"]["sandbox-document"]
            .to_string()
            .contains("worker-src blob:;"));
        assert!(!p["headers"]["sandbox-document"]
            .to_string()
            .contains("worker-src 'self'"));
    }

    #[test]
    fn immutable_names() {
        assert!(policy::is_immutable("engine/inference.core.0123abcd.wasm"));
        assert_eq!(policy::kind_of("bench/worker.js"), Kind::Worker);
        assert_eq!(policy::kind_of("bench/index.html"), Kind::Document);
        assert_eq!(policy::kind_of("a/sandbox.html"), Kind::Document);
        assert_eq!(policy::kind_of("networker.js"), Kind::Resource);
        assert!(!policy::is_immutable("engine/inference.core.wasm"));
        assert!(!policy::is_immutable("0123abcd.wasm"));
        assert_eq!(policy::content_type("a/b.wasm"), "application/wasm");
        assert_eq!(policy::content_type("x.bin"), "application/octet-stream");
        assert_eq!(policy::content_type(".js"), "application/octet-stream");
    }
}
