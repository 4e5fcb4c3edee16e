//! Which API operation a request path names, and the model catalogue (models/manifest.json,
//! mounted at [`MODELS_ROOT`]). Model names and file names are checked before they touch a
//! path: a hostile name is a 404, never a file outside the mount.

use crate::error::ApiError;
use serde::Deserialize;

/// Where the component sees the shipped models and their manifest.
pub const MODELS_ROOT: &str = "/models";

#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET /api/models`: the manifest.
    Models,
    /// `GET /api/models/{name}`: what the engine reads in the model (inputs, outputs, sha256).
    Model(&'a str),
    /// `POST /api/models/{name}/infer`.
    Infer(&'a str),
    NotFound,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

pub fn route(path: &str) -> Route<'_> {
    let Some(rest) = path.strip_prefix("/api/models") else {
        return Route::NotFound;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [""] => Route::Models,
        ["", name] if valid_name(name) => Route::Model(name),
        ["", name, "infer"] if valid_name(name) => Route::Infer(name),
        _ => Route::NotFound,
    }
}

/// One model of the manifest, as far as the API needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    pub name: String,
    pub file: String,
    pub format: String,
    pub sha256: String,
    /// A text model's tokenizer: the API tokenizes `{"text": ...}` requests with it.
    #[serde(default)]
    pub tokenizer: Option<TokenizerEntry>,
}

/// The manifest's `tokenizer` of a text model (models/manifest.py writes it).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenizerEntry {
    pub file: String,
    pub sha256: String,
    pub max_length: u32,
    pub stride: u32,
}

#[derive(Deserialize)]
struct Manifest {
    models: Vec<Entry>,
}

/// Finds `name` in the manifest and checks its entry.
pub fn find(manifest: &[u8], name: &str) -> Result<Entry, ApiError> {
    let m: Manifest = serde_json::from_slice(manifest).map_err(|e| {
        ApiError::new(
            500,
            "manifest",
            format!("the model manifest is invalid: {e}"),
        )
    })?;
    let e = m
        .models
        .into_iter()
        .find(|e| e.name == name)
        .ok_or_else(|| {
            ApiError::new(
                404,
                "unknown-model",
                format!("no model named \"{name}\"; GET /api/models lists them"),
            )
        })?;
    let hex = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
    let plain_file = valid_name(&e.file);
    let tokenizer_ok = e.tokenizer.as_ref().is_none_or(|t| {
        valid_name(&t.file) && hex(&t.sha256) && t.max_length >= 4 && t.stride < t.max_length / 2
    });
    if !plain_file
        || !hex(&e.sha256)
        || !tokenizer_ok
        || !matches!(e.format.as_str(), "onnx" | "tflite")
    {
        return Err(ApiError::new(
            500,
            "manifest",
            format!("the manifest entry of \"{name}\" is invalid"),
        ));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/api/models"), Route::Models);
        assert_eq!(route("/api/models/digits"), Route::Model("digits"));
        assert_eq!(route("/api/models/digits/infer"), Route::Infer("digits"));
        for p in [
            "/api",
            "/api/",
            "/api/models/",
            "/api/models/../x/infer",
            "/api/models/%2e%2e/infer",
            "/api/models/.hidden/infer",
            "/api/models/a/infer/x",
            "/api/modelsx",
            "/api/models/a%2fb/infer",
        ] {
            assert_eq!(route(p), Route::NotFound, "{p}");
        }
    }

    #[test]
    fn manifest_entries_are_checked() {
        let m = |file: &str| {
            format!(
                r#"{{"models":[{{"name":"m","file":"{file}","format":"onnx","sha256":"{}"}}]}}"#,
                "a".repeat(64)
            )
        };
        assert_eq!(find(m("m.onnx").as_bytes(), "m").unwrap().file, "m.onnx");
        assert_eq!(
            find(m("m.onnx").as_bytes(), "x").unwrap_err().code,
            "unknown-model"
        );
        let tok = |file: &str, stride: u32| {
            format!(
                r#"{{"models":[{{"name":"m","file":"m.onnx","format":"onnx","sha256":"{0}",
                "tokenizer":{{"file":"{file}","sha256":"{0}","max_length":512,"stride":{stride}}}}}]}}"#,
                "a".repeat(64)
            )
        };
        let t = find(tok("m.tokenizer.json", 64).as_bytes(), "m").unwrap();
        assert_eq!(t.tokenizer.unwrap().max_length, 512);
        for (file, stride) in [("../t.json", 64), ("t.json", 256), (".t", 0)] {
            assert_eq!(
                find(tok(file, stride).as_bytes(), "m").unwrap_err().code,
                "manifest",
                "{file} {stride}"
            );
        }
        for bad in ["../m.onnx", "/etc/passwd", ".m", "a/b"] {
            assert_eq!(
                find(m(bad).as_bytes(), "m").unwrap_err().code,
                "manifest",
                "{bad}"
            );
        }
    }
}
