//! A manifest entry's `preprocess` / `postprocess`, checked against the one definition of their
//! fields (`static/processing.json`, which the sandbox's `static/processing.js` and the Streamlit
//! package read too), and against the model the engine read: the input a preprocess feeds must
//! take the tensor it makes, the outputs a postprocess reads must exist.

use crate::backend::{GraphDesc, IoDesc};
use inference::Dim;
use serde_json::{Map, Value};
use std::sync::OnceLock;

const SCHEMA_JSON: &str = include_str!("../../static/processing.json");

fn schema() -> &'static Value {
    static S: OnceLock<Value> = OnceLock::new();
    S.get_or_init(|| serde_json::from_str(SCHEMA_JSON).expect("static/processing.json is JSON"))
}

/// Checks `spec` against its section's table; returns it with the defaults filled in.
pub fn check(section: &str, spec: &Value) -> Result<Map<String, Value>, String> {
    let kinds = schema()[section]
        .as_object()
        .ok_or_else(|| format!("processing.json has no section {section}"))?;
    let obj = spec
        .as_object()
        .ok_or_else(|| format!("{section} must be an object with a \"kind\""))?;
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let table = kinds.get(kind).and_then(Value::as_object).ok_or_else(|| {
        format!(
            "{section}.kind {}: use {}",
            obj.get("kind").map_or("missing".into(), |k| k.to_string()),
            kinds.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    for key in obj.keys() {
        if key != "kind" && !table.contains_key(key) {
            return Err(format!(
                "{section}.{key}: not a field of {kind} ({})",
                table.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let mut out = Map::new();
    out.insert("kind".into(), kind.into());
    // Enums first: a `numbers` field's length depends on one.
    let mut order: Vec<(&String, &Value)> = table.iter().collect();
    order.sort_by_key(|(_, f)| f["type"] != "enum");
    for (key, f) in order {
        let place = format!("{section}.{key}");
        match obj.get(key) {
            Some(v) => {
                let v = field(&place, f, v, &out)?;
                out.insert(key.clone(), v);
            }
            None if f["required"] == true => return Err(format!("{place} is required for {kind}")),
            None => {
                if let Some(d) = f.get("default") {
                    let v = field(&place, f, d, &out)?;
                    out.insert(key.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

fn field(place: &str, f: &Value, v: &Value, sofar: &Map<String, Value>) -> Result<Value, String> {
    let (min, max) = (f["min"].as_f64(), f["max"].as_f64());
    let in_range = |x: f64| min.is_none_or(|m| x >= m) && max.is_none_or(|m| x <= m);
    let range = if min.is_some() || max.is_some() {
        let show = |b: Option<f64>, inf: &str| b.map_or(inf.to_string(), |x| x.to_string());
        format!(" in [{}, {}]", show(min, "-inf"), show(max, "inf"))
    } else {
        String::new()
    };
    let int = |v: &Value| {
        v.as_i64().or_else(|| {
            v.as_f64()
                .filter(|x| x.fract() == 0.0 && x.abs() < 9e15)
                .map(|x| x as i64)
        })
    };
    match f["type"].as_str().unwrap_or("") {
        "string" => match v.as_str() {
            Some(s) if !s.is_empty() && s.chars().count() <= 256 => Ok(v.clone()),
            _ => Err(format!("{place} must be a name of 1..256 characters")),
        },
        "bool" => v
            .as_bool()
            .map(Value::from)
            .ok_or_else(|| format!("{place} must be true or false")),
        "int" => match int(v) {
            Some(i) if in_range(i as f64) => Ok(i.into()),
            _ => Err(format!("{place} must be an integer{range}")),
        },
        "number" => match v.as_f64() {
            Some(x) if x.is_finite() && in_range(x) => Ok(v.clone()),
            _ => Err(format!("{place} must be a number{range}")),
        },
        "enum" => {
            let values = f["values"].as_array().cloned().unwrap_or_default();
            if values.contains(v) {
                Ok(v.clone())
            } else {
                let names: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
                Err(format!("{place} {v}: use {}", names.join(", ")))
            }
        }
        "int-pair" => match v.as_array() {
            Some(a)
                if a.len() == 2 && a.iter().all(|x| int(x).is_some_and(|i| in_range(i as f64))) =>
            {
                Ok(Value::Array(
                    a.iter().map(|x| int(x).unwrap().into()).collect(),
                ))
            }
            _ => Err(format!("{place} must be [a, b], integers{range}")),
        },
        "numbers" => {
            let by = &f["length_from"];
            let on = by["field"].as_str().unwrap_or("");
            let n = sofar
                .get(on)
                .and_then(Value::as_str)
                .and_then(|k| by["lengths"][k].as_u64())
                .unwrap_or(0) as usize;
            let list: Vec<Value> = match v {
                Value::Number(_) => vec![v.clone(); n],
                Value::Array(a) => a.clone(),
                _ => vec![],
            };
            if list.len() != n || !list.iter().all(|x| x.as_f64().is_some_and(f64::is_finite)) {
                return Err(format!(
                    "{place} must be a number or {n} numbers (one per {on} channel)"
                ));
            }
            if f["nonzero"] == true && list.iter().any(|x| x.as_f64() == Some(0.0)) {
                return Err(format!("{place} must not be 0"));
            }
            Ok(Value::Array(list))
        }
        other => Err(format!(
            "{place}: processing.json has no field type {other}"
        )),
    }
}

fn dims_text(d: &IoDesc) -> String {
    format!("\"{}\" {}", d.name, d.signature())
}

fn named<'a>(
    list: &'a [IoDesc],
    name: Option<&str>,
    what: &str,
    place: &str,
) -> Result<&'a IoDesc, String> {
    match name {
        Some(n) => list.iter().find(|d| d.name == n).ok_or_else(|| {
            let names: Vec<&str> = list.iter().map(|d| d.name.as_str()).collect();
            format!(
                "{place}: the model has no {what} \"{n}\" ({what}s: {})",
                names.join(", ")
            )
        }),
        None => list
            .first()
            .ok_or_else(|| format!("{place}: the model has no {what}")),
    }
}

/// Whether a fixed-size tensor `want` fits the model's declaration (symbolic dims take anything).
fn fits(d: &IoDesc, want: &[u64]) -> bool {
    match &d.shape {
        None => true,
        Some(dims) => {
            dims.len() == want.len()
                && dims.iter().zip(want).all(|(d, &w)| match d {
                    Dim::Fixed(n) => *n == w,
                    _ => true,
                })
        }
    }
}

/// An audio preprocess's other inputs: the sample-rate scalar and the recurrent state, which
/// the sandbox feeds (static/sandbox-audio.js); the names must be the model's.
fn check_audio_extras(s: &Map<String, Value>, g: &GraphDesc) -> Result<(), String> {
    let name = |k: &str| s.get(k).and_then(Value::as_str);
    if let Some(n) = name("rate_input") {
        let d = named(&g.inputs, Some(n), "input", "preprocess.rate_input")?;
        if d.shape.as_ref().is_some_and(|dims| !dims.is_empty()) {
            return Err(format!(
                "preprocess.rate_input: input {} is not a scalar",
                dims_text(d)
            ));
        }
    }
    match (name("state_input"), name("state_output")) {
        (None, None) => {}
        (Some(i), Some(o)) => {
            named(&g.inputs, Some(i), "input", "preprocess.state_input")?;
            named(&g.outputs, Some(o), "output", "preprocess.state_output")?;
        }
        _ => return Err("preprocess: state_input and state_output go together".into()),
    }
    let fed = ["input", "rate_input", "state_input"].map(name);
    let main = g.inputs.first().map(|d| d.name.as_str());
    for d in &g.inputs {
        let n = Some(d.name.as_str());
        // With no `input` named, the model's first input takes the samples.
        let is_fed = fed.contains(&n) || (fed[0].is_none() && n == main);
        if !is_fed {
            return Err(format!(
                "preprocess: the model's input {} is fed by nothing (input, rate_input, state_input)",
                dims_text(d)
            ));
        }
    }
    Ok(())
}

/// The preprocess and postprocess of an entry against the model and its labels.
pub fn check_against_model(
    pre: Option<&Value>,
    post: Option<&Value>,
    labels: Option<usize>,
    g: &GraphDesc,
) -> Result<(), String> {
    if let Some(pre) = pre {
        let s = check("preprocess", pre)?;
        let input = named(
            &g.inputs,
            s.get("input").and_then(Value::as_str),
            "input",
            "preprocess.input",
        )?;
        if s.get("input").is_none() && g.inputs.len() != 1 {
            return Err(format!(
                "preprocess.input: the model has {} inputs; name the one the {} feeds",
                g.inputs.len(),
                s["kind"].as_str().unwrap_or("")
            ));
        }
        if input.carrier != Some(inference::ElementType::F32) {
            return Err(format!(
                "preprocess: input {} is not float32",
                dims_text(input)
            ));
        }
        let want: Vec<u64> = match s["kind"].as_str() {
            Some("image") => {
                let h = s["size"][0].as_u64().unwrap_or(0);
                let w = s["size"][1].as_u64().unwrap_or(0);
                let c = if s["channels"] == "gray" { 1 } else { 3 };
                if s["layout"] == "nhwc" {
                    vec![1, h, w, c]
                } else {
                    vec![1, c, h, w]
                }
            }
            _ => match s.get("window").and_then(Value::as_u64) {
                Some(n) => vec![1, n + s.get("context").and_then(Value::as_u64).unwrap_or(0)],
                None => vec![],
            },
        };
        if !want.is_empty() && !fits(input, &want) {
            return Err(format!(
                "preprocess makes a tensor [{}], but the model's input is {}",
                want.iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                dims_text(input)
            ));
        }
        if want.is_empty() && input.shape.as_ref().is_some_and(|d| d.len() != 2) {
            return Err(format!(
                "preprocess: audio goes in as [1, samples]; the model's input is {}",
                dims_text(input)
            ));
        }
        if s["kind"] == "audio" {
            check_audio_extras(&s, g)?;
        }
    }
    if let Some(post) = post {
        let s = check("postprocess", post)?;
        let out_of = |key: &str| s.get(key).and_then(Value::as_str);
        match s["kind"].as_str() {
            Some("boxes") => {
                named(&g.outputs, out_of("boxes"), "output", "postprocess.boxes")?;
                named(&g.outputs, out_of("scores"), "output", "postprocess.scores")?;
            }
            Some(kind) => {
                let o = named(&g.outputs, out_of("output"), "output", "postprocess.output")?;
                let last = o.shape.as_ref().and_then(|d| d.last().cloned());
                if let (Some("classes"), Some(Dim::Fixed(k)), Some(n)) = (Some(kind), last, labels)
                {
                    if k as usize != n {
                        return Err(format!(
                            "postprocess: {n} labels, but output {} has {k} classes",
                            dims_text(o)
                        ));
                    }
                }
                if kind == "mask" && o.shape.as_ref().is_some_and(|d| d.len() != 4) {
                    return Err(format!(
                        "postprocess: a mask output is [1, H, W, C] or [1, C, H, W]; {} is not",
                        dims_text(o)
                    ));
                }
            }
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_errors() {
        let s = check(
            "preprocess",
            &json!({"kind": "image", "size": [224, 224], "mean": [0.5, 0.5, 0.5]}),
        )
        .unwrap();
        assert_eq!(s["resize"], "stretch");
        assert_eq!(s["std"], json!([1, 1, 1]));
        let gray = check(
            "preprocess",
            &json!({"kind": "image", "size": [8, 8], "channels": "gray", "mean": 0.5}),
        )
        .unwrap();
        assert_eq!(gray["mean"], json!([0.5]));
        for (bad, why) in [
            (json!({"kind": "image"}), "preprocess.size is required"),
            (json!({"kind": "image", "size": [0, 4]}), "preprocess.size"),
            (
                json!({"kind": "image", "size": [4, 4], "resize": "zoom"}),
                "preprocess.resize \"zoom\": use stretch, crop, letterbox",
            ),
            (
                json!({"kind": "image", "size": [4, 4], "mean": [1, 2]}),
                "preprocess.mean must be a number or 3 numbers",
            ),
            (
                json!({"kind": "image", "size": [4, 4], "std": 0}),
                "preprocess.std must not be 0",
            ),
            (
                json!({"kind": "image", "size": [4, 4], "sise": 1}),
                "preprocess.sise: not a field of image",
            ),
            (
                json!({"kind": "video"}),
                "preprocess.kind \"video\": use audio, image",
            ),
            (
                json!({"kind": "audio", "sample_rate": 16000.5}),
                "preprocess.sample_rate must be an integer in [1000, 384000]",
            ),
        ] {
            let e = check("preprocess", &bad).unwrap_err();
            assert!(e.contains(why), "{e} / {why}");
        }
        assert!(
            check("postprocess", &json!({"kind": "boxes", "boxes": "b"}))
                .unwrap_err()
                .contains("postprocess.scores is required")
        );
    }

    /// Silero VAD's shape of graph: samples, a scalar sample rate, a recurrent state.
    fn silero() -> GraphDesc {
        let io = |name: &str, ty, shape: Vec<Dim>| IoDesc {
            name: name.into(),
            element_type: String::new(),
            carrier: Some(ty),
            shape: Some(shape),
        };
        let f32 = inference::ElementType::F32;
        let free = || Dim::Symbolic("n".into());
        GraphDesc {
            format: "onnx".into(),
            sha256: String::new(),
            inputs: vec![
                io("input", f32, vec![free(), free()]),
                io("state", f32, vec![Dim::Fixed(2), free(), Dim::Fixed(128)]),
                io("sr", inference::ElementType::I64, vec![]),
            ],
            outputs: vec![
                io("output", f32, vec![free(), Dim::Fixed(1)]),
                io("stateN", f32, vec![free(), free(), free()]),
            ],
        }
    }

    #[test]
    fn audio_inputs_fed_by_the_preprocess() {
        let g = silero();
        let pre = |extra: Value| {
            let mut p = json!({"kind": "audio", "input": "input", "sample_rate": 16000, "window": 512, "context": 64});
            p.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            p
        };
        let post = json!({"kind": "scores", "output": "output"});
        let full = json!({"rate_input": "sr", "state_input": "state", "state_output": "stateN"});
        check_against_model(Some(&pre(full)), Some(&post), None, &g).unwrap();
        for (extra, why) in [
            (json!({"rate_input": "sr"}), "input \"state\""),
            (
                json!({"rate_input": "sr", "state_input": "state"}),
                "state_input and state_output go together",
            ),
            (
                json!({"rate_input": "rate", "state_input": "state", "state_output": "stateN"}),
                "preprocess.rate_input: the model has no input \"rate\"",
            ),
            (
                json!({"rate_input": "state", "state_input": "state", "state_output": "stateN"}),
                "is not a scalar",
            ),
            (
                json!({"rate_input": "sr", "state_input": "state", "state_output": "hn"}),
                "preprocess.state_output: the model has no output \"hn\"",
            ),
        ] {
            let e = check_against_model(Some(&pre(extra)), Some(&post), None, &g).unwrap_err();
            assert!(e.contains(why), "{e} / {why}");
        }
    }
}
