//! `secure-context bench`: per model, load time and latency of the component on wasmtime, the
//! same engine native, and onnxruntime (1 thread, via scripts/ort_bench.py), in one run.
use crate::backend::{dummy_input, encoding_for};
use crate::backend::{Backend, Native};
use crate::runtime::WasmBackend;
use anyhow::{Context, Result};
use inference::TensorData;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// NAME=PATH of a model to measure; repeat. Inputs not given with --input are arange(n)/n,
    /// free dims set to 1.
    #[arg(long = "model", value_name = "NAME=PATH", required = true)]
    models: Vec<String>,
    /// MODEL:INPUT=FILE.npy: this input of that model (the NAME of its --model) from a file, for
    /// every engine alike (e.g. a text model's int64 token ids, which arange cannot make).
    #[arg(long = "input", value_name = "MODEL:INPUT=FILE.npy")]
    inputs: Vec<String>,
    /// Timed runs per engine and model (after one warm-up run).
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Also measure onnxruntime with this Python script (prints JSON); skip when absent.
    #[arg(long, default_value = "scripts/ort_bench.py")]
    ort_script: PathBuf,
    /// Write results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Do not measure the component's gzip and brotli sizes (brotli -11 of the whole component
    /// takes about 40 s of CPU).
    #[arg(long)]
    skip_sizes: bool,
}

struct Figures {
    load_ms: f64,
    /// The first compute: includes optimizing a plan for symbolic-shape models.
    first_ms: f64,
    median_ms: f64,
    p95_ms: f64,
}

/// One model's inputs given as files: (input name, its path, its tensor).
type Given = Vec<(String, PathBuf, TensorData)>;

/// The `--input` files of the model named `model`.
fn given_inputs(specs: &[String], model: &str) -> Result<Given> {
    let mut out = vec![];
    for spec in specs {
        let (target, file) = spec
            .split_once('=')
            .with_context(|| format!("--input {spec}: expected MODEL:INPUT=FILE.npy"))?;
        let (m, input) = target
            .split_once(':')
            .with_context(|| format!("--input {spec}: expected MODEL:INPUT=FILE.npy"))?;
        if m == model {
            let path = PathBuf::from(file);
            let tensor = crate::npy::read(&path)?;
            out.push((input.to_string(), path, tensor));
        }
    }
    Ok(out)
}

fn measure(
    backend: &mut dyn Backend,
    bytes: &[u8],
    path: &Path,
    given: &Given,
    runs: usize,
) -> Result<Figures> {
    let started = Instant::now();
    let graph = backend.load(bytes, encoding_for(path))?;
    let load_ms = ms(started.elapsed());
    let desc = backend.describe(graph)?;
    if let Some((name, ..)) = given
        .iter()
        .find(|(n, ..)| !desc.inputs.iter().any(|d| &d.name == n))
    {
        anyhow::bail!("--input: {} has no input \"{name}\"", path.display());
    }
    let inputs: Vec<_> = desc
        .inputs
        .iter()
        .map(|d| match given.iter().find(|(n, ..)| n == &d.name) {
            Some((_, _, t)) => Ok((d.name.clone(), t.clone())),
            None => Ok((d.name.clone(), dummy_input(d)?)),
        })
        .collect::<Result<_>>()?;
    let t = Instant::now();
    backend.compute(graph, inputs.clone())?;
    let first_ms = ms(t.elapsed());
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        backend.compute(graph, inputs.clone())?;
        times.push(ms(t.elapsed()));
    }
    backend.unload(graph);
    times.sort_by(f64::total_cmp);
    Ok(Figures {
        load_ms,
        first_ms,
        median_ms: percentile(&times, 0.5),
        p95_ms: percentile(&times, 0.95),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn onnxruntime(script: &Path, model: &Path, given: &Given, runs: usize) -> Option<Figures> {
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(model)
        .arg("--runs")
        .arg(runs.to_string());
    for (name, file, _) in given {
        cmd.arg("--input").arg(format!("{name}={}", file.display()));
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!(
            "onnxruntime bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(Figures {
        load_ms: v["load_ms"].as_f64()?,
        first_ms: v["first_ms"].as_f64()?,
        median_ms: v["median_ms"].as_f64()?,
        p95_ms: v["p95_ms"].as_f64()?,
    })
}

fn sizes(wasm: &Path) -> Result<(usize, usize, usize)> {
    let raw = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&raw)?;
    let gz = gz.finish()?.len();
    let mut br = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 24,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &raw[..], &mut br, &params)?;
    Ok((raw.len(), gz, br.len()))
}

fn fig_json(f: &Option<Figures>) -> serde_json::Value {
    match f {
        Some(f) => {
            json!({"load_ms": f.load_ms, "first_ms": f.first_ms, "median_ms": f.median_ms, "p95_ms": f.p95_ms})
        }
        None => serde_json::Value::Null,
    }
}

pub fn run(args: &BenchArgs, wasm: &Path) -> Result<()> {
    let mut component = WasmBackend::new(wasm, Duration::from_secs(600))?;
    let mut native = Native::default();
    let mut rows = vec![];
    println!(
        "{:<12} {:<12} {:>9} {:>9} {:>10} {:>9} {:>8}",
        "model", "engine", "load ms", "first ms", "median ms", "p95 ms", "vs ort"
    );
    for spec in &args.models {
        let (name, path) = spec
            .split_once('=')
            .with_context(|| format!("--model {spec}: expected NAME=PATH"))?;
        let path = Path::new(path);
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let given = given_inputs(&args.inputs, name)?;
        let w = measure(&mut component, &bytes, path, &given, args.runs)?;
        // Native tract on its own thread: run on the component's thread, it leaves the CPU in a
        // state that slows the JIT-compiled wasm after it many times over (README "ONNX
        // conformance").
        let n = std::thread::scope(|s| {
            s.spawn(|| measure(&mut native, &bytes, path, &given, args.runs))
                .join()
                .expect("the native run panicked")
        })?;
        let o = if args.ort_script.is_file() {
            onnxruntime(&args.ort_script, path, &given, args.runs)
        } else {
            None
        };
        for (engine, f) in [
            ("component", Some(&w)),
            ("native", Some(&n)),
            ("onnxruntime", o.as_ref()),
        ] {
            let Some(f) = f else { continue };
            let ratio = o
                .as_ref()
                .map_or("-".into(), |o| format!("{:.2}x", f.median_ms / o.median_ms));
            println!(
                "{:<12} {:<12} {:>9.2} {:>9.2} {:>10.3} {:>9.3} {:>8}",
                name, engine, f.load_ms, f.first_ms, f.median_ms, f.p95_ms, ratio
            );
        }
        rows.push(json!({
            "model": name, "file": path.display().to_string(), "bytes": bytes.len(),
            "inputs_from": given.iter().map(|(n, f, _)| json!({"input": n, "file": f.display().to_string()})).collect::<Vec<_>>(),
            "component": fig_json(&Some(w)), "native": fig_json(&Some(n)), "onnxruntime": fig_json(&o),
        }));
    }
    println!(
        "(ms; median of {} runs after one warm-up; onnxruntime with 1 intra-op thread)",
        args.runs
    );
    // After the runs, so that a bad model or input is refused at once.
    let engine_bytes = if args.skip_sizes {
        serde_json::Value::Null
    } else {
        let (raw, gz, br) = sizes(wasm)?;
        println!(
            "engine component {}: {raw} bytes raw, {gz} gzip -9, {br} brotli -11",
            wasm.display()
        );
        json!({"raw": raw, "gzip": gz, "brotli": br})
    };
    if let Some(path) = &args.json {
        let doc = json!({
            "engine_bytes": engine_bytes,
            "runs": args.runs,
            "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), "arch": std::env::consts::ARCH},
            "models": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(())
}
