//! The allowlist: build/web/asset-manifest.json, plus build/edge/encodings.json (the
//! precompressed variants). Only files named here are ever served.

use super::path::valid_key;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;

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

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const OTHER: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn manifest(key: &str, sha: &str, ct: &str) -> String {
        format!(r#"{{"{key}": {{"sha256": "{sha}", "size": 3, "content-type": "{ct}"}}}}"#)
    }

    #[test]
    fn refuses_bad_entries() {
        assert!(Site::parse(manifest("a.js", SHA, "text/javascript").as_bytes(), None).is_ok());
        for (key, sha, ct) in [
            ("../a.js", SHA, "text/javascript"),
            (".env", SHA, "text/plain"),
            ("a.js", "ABC", "text/javascript"),
            ("a.js", SHA, ""),
            ("a.js", SHA, "text/\\u0001x"),
        ] {
            assert!(
                Site::parse(manifest(key, sha, ct).as_bytes(), None).is_err(),
                "{key} {sha} {ct}"
            );
        }
        assert!(Site::parse(b"[]", None).is_err());
    }

    #[test]
    fn variants_of_this_build_only() {
        let m = manifest("a.js", SHA, "text/javascript");
        let enc = |source: &str| {
            format!(
                r#"{{"a.js": {{"source-sha256": "{source}",
                   "br": {{"file": "a.js.br", "size": 2, "sha256": "{OTHER}"}},
                   "gzip": {{"file": "../a.js.gz", "size": 2, "sha256": "{OTHER}"}}}}}}"#
            )
        };
        let site = Site::parse(m.as_bytes(), Some(enc(SHA).as_bytes())).unwrap();
        let codings: Vec<_> = site.assets["a.js"]
            .variants
            .iter()
            .map(|v| v.coding)
            .collect();
        // The gzip variant's file is not a plain relative path: dropped.
        assert_eq!(codings, ["br"]);
        let stale = Site::parse(m.as_bytes(), Some(enc(OTHER).as_bytes())).unwrap();
        assert!(stale.assets["a.js"].variants.is_empty());
    }
}
