//! `secure-context`: run the inference component on wasmtime from the command line.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use inference::{ElementType, TensorData};
use secure_context::backend::{dummy_input, encoding_for, Backend, Native};
use secure_context::compare::Tolerance;
use secure_context::runtime::{self, component_path};
use secure_context::{bench, conformance, models, npy, serve};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "secure-context",
    version,
    about = "Private ML inference: the secure-context engine on wasmtime"
)]
struct Cli {
    /// The engine component (default: $SC_COMPONENT, else the build's target/wasm32-wasip2/wasm/inference.wasm).
    #[arg(long, global = true)]
    component: Option<PathBuf>,
    /// Stop one inference after this many milliseconds.
    #[arg(long, global = true, default_value_t = 60_000)]
    timeout_ms: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EngineChoice {
    /// The inference component on wasmtime (what the browser runs).
    Wasm,
    /// The same engine compiled into this binary.
    Native,
}

#[derive(Subcommand)]
enum Command {
    /// Run a model on .npy inputs; print a summary and write one NAME.npy per output.
    Run {
        #[arg(long)]
        model: PathBuf,
        /// NAME=FILE.npy, once per input. Without any, fixed-shape inputs get arange(n)/n.
        #[arg(long = "input", value_name = "NAME=FILE.npy")]
        inputs: Vec<String>,
        /// Write outputs here.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = EngineChoice::Wasm)]
        engine: EngineChoice,
    },
    /// Print a model's inputs, outputs and sha256.
    Describe {
        model: PathBuf,
        #[arg(long, value_enum, default_value_t = EngineChoice::Wasm)]
        engine: EngineChoice,
    },
    /// Run ONNX backend test cases on the component and natively; ends with "N passed, N failed".
    Conformance {
        dir: PathBuf,
        /// Only cases whose directory name contains this.
        #[arg(long)]
        filter: Option<String>,
        #[arg(long, default_value_t = 1e-3)]
        rtol: f64,
        #[arg(long, default_value_t = 1e-7)]
        atol: f64,
        /// Write per-case results here as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Print every failure's reason.
        #[arg(long)]
        verbose: bool,
        /// Cases allowed to pass natively and fail in the component, one per line with its reason.
        #[arg(long)]
        known: Option<PathBuf>,
    },
    /// Load time and latency: component on wasmtime, native, and onnxruntime.
    Bench(bench::BenchArgs),
    /// Serve a wasi:http component (the edge app) like `wasmtime serve -Scli`; --timeout-ms bounds a request.
    Serve(serve::ServeArgs),
    /// The model manifest (models/manifest.json): add a model, check or update the manifest.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Print the edge app's header policy and content types (edge-core) for other servers.
    Policy {
        /// As JSON (the only form; scripts/build-web writes it to build/policy.json).
        #[arg(long)]
        json: bool,
    },
    /// Print the wasi-nn tables (carriers, element types and range rules, error codes with
    /// HTTP statuses; components/nn-tables) for the JavaScript and Python code that copies them.
    Tables {
        /// As JSON (the only form).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Load FILE in the engine (refused if it cannot be loaded), copy it next to the manifest and
    /// write its entry: sha256, SRI, format, inputs and outputs as the engine reads them, and the
    /// options given. The edge app and the Streamlit package serve it from the next build.
    Add {
        file: PathBuf,
        /// The model's name (default: from the file name).
        #[arg(long)]
        name: Option<String>,
        /// Class labels: a file (one per line, or a JSON list) or `a,b,c`.
        #[arg(long)]
        labels: Option<String>,
        /// The model's license (an SPDX id, e.g. Apache-2.0).
        #[arg(long)]
        license: Option<String>,
        /// Where the model comes from.
        #[arg(long)]
        source: Option<String>,
        /// Attribution the license asks for.
        #[arg(long)]
        attribution: Option<String>,
        /// How raw input becomes the tensor: JSON or @file.json (fields: static/processing.json).
        #[arg(long)]
        preprocess: Option<String>,
        /// What comes back: JSON or @file.json, e.g. '{"kind": "classes", "softmax": true}'.
        #[arg(long)]
        postprocess: Option<String>,
        /// Replace the entry of the same name.
        #[arg(long)]
        replace: bool,
        #[arg(long, default_value = "models/manifest.json")]
        manifest: PathBuf,
    },
    /// Check every entry against its files and the engine; exit 1 with the differences.
    Check {
        #[arg(long, default_value = "models/manifest.json")]
        manifest: PathBuf,
    },
    /// Rewrite the fields read from the files (sha256, size, SRI, inputs, outputs, ...).
    Update {
        #[arg(long, default_value = "models/manifest.json")]
        manifest: PathBuf,
    },
}

fn models_command(cmd: &ModelsCommand) -> Result<()> {
    match cmd {
        ModelsCommand::Add {
            file,
            name,
            labels,
            license,
            source,
            attribution,
            preprocess,
            postprocess,
            replace,
            manifest,
        } => {
            let opts = models::AddOptions {
                name: name.clone(),
                labels: labels.as_deref().map(models::parse_labels).transpose()?,
                license: license.clone(),
                source: source.clone(),
                attribution: attribution.clone(),
                preprocess: preprocess
                    .as_deref()
                    .map(|a| models::parse_json_arg("preprocess", a))
                    .transpose()?,
                postprocess: postprocess
                    .as_deref()
                    .map(|a| models::parse_json_arg("postprocess", a))
                    .transpose()?,
                replace: *replace,
            };
            let e = models::add(manifest, file, opts)?;
            let io = |k: &str| {
                e[k].as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        format!(
                            "{} {}{}",
                            t["name"],
                            t["dtype"].as_str().unwrap_or("?"),
                            t["shape"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            println!(
                "added {} ({}, {}, sha256 {}) to {}",
                e["name"].as_str().unwrap_or(""),
                e["file"].as_str().unwrap_or(""),
                e["format"].as_str().unwrap_or(""),
                e["sha256"].as_str().unwrap_or(""),
                manifest.display()
            );
            println!("  inputs:  {}\n  outputs: {}", io("inputs"), io("outputs"));
            if e.get("license").is_none() {
                println!("  no --license given: say under which terms you may serve this model");
            }
            println!("served from the next build: scripts/build-web (edge app, scripts/up), scripts/build-python (Streamlit)");
            Ok(())
        }
        ModelsCommand::Check { manifest } => {
            let problems = models::check(manifest)?;
            if problems.is_empty() {
                let n = models::Manifest::open(manifest)?.entries().len();
                println!("{} is up to date ({n} models)", manifest.display());
                return Ok(());
            }
            for p in &problems {
                eprintln!("  - {p}");
            }
            bail!("{} does not match its files ({} problems); fix the entry, or `secure-context models update` if a model file changed", manifest.display(), problems.len())
        }
        ModelsCommand::Update { manifest } => {
            let n = models::update(manifest)?;
            println!("{}: {n} entries rewritten", manifest.display());
            Ok(())
        }
    }
}

fn open_backend(cli: &Cli, choice: EngineChoice) -> Result<Box<dyn Backend>> {
    Ok(match choice {
        EngineChoice::Native => Box::new(Native::default()),
        EngineChoice::Wasm => Box::new(runtime::WasmBackend::new(
            &component_path(cli.component.as_deref()),
            Duration::from_millis(cli.timeout_ms),
        )?),
    })
}

fn summarize(name: &str, t: &TensorData) -> String {
    let mut line = format!("{name}: {}", t.signature());
    if t.ty == ElementType::F32 && !t.data.is_empty() {
        let v: Vec<f32> = t
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let (min, max) = v
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let row = *t.dims.last().unwrap_or(&1) as usize;
        let first = &v[..row.min(v.len()).min(10)];
        let argmax = first
            .iter()
            .enumerate()
            .fold(0, |best, (i, &x)| if x > first[best] { i } else { best });
        line += &format!(" min {min:.6} max {max:.6} mean {mean:.6}; first row argmax {argmax}");
    }
    line
}

fn run(
    cli: &Cli,
    model: &Path,
    inputs: &[String],
    out: Option<&Path>,
    engine: EngineChoice,
) -> Result<()> {
    let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let mut backend = open_backend(cli, engine)?;
    let graph = backend.load(&bytes, encoding_for(model))?;
    let desc = backend.describe(graph)?;
    let mut named = vec![];
    for spec in inputs {
        let (name, file) = spec
            .split_once('=')
            .with_context(|| format!("--input {spec}: expected NAME=FILE.npy"))?;
        named.push((name.to_string(), npy::read(Path::new(file))?));
    }
    if inputs.is_empty() {
        for d in &desc.inputs {
            named.push((d.name.clone(), dummy_input(d)?));
        }
    }
    let started = std::time::Instant::now();
    let outputs = backend.compute(graph, named)?;
    let elapsed = started.elapsed();
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for (name, t) in &outputs {
        println!("{}", summarize(name, t));
        if let Some(dir) = out {
            npy::write(&dir.join(npy::file_name(name)), t)?;
        }
    }
    eprintln!(
        "{} engine, {} model sha256 {}, compute {:.3} ms",
        backend.name(),
        desc.format,
        desc.sha256,
        elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}

fn describe(cli: &Cli, model: &Path, engine: EngineChoice) -> Result<()> {
    let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let mut backend = open_backend(cli, engine)?;
    let graph = backend.load(&bytes, encoding_for(model))?;
    let d = backend.describe(graph)?;
    println!("format {}\nsha256 {}", d.format, d.sha256);
    for i in &d.inputs {
        println!("input  \"{}\" {}", i.name, i.signature());
    }
    for o in &d.outputs {
        println!("output \"{}\" {}", o.name, o.signature());
    }
    Ok(())
}

struct ConformanceArgs<'a> {
    dir: &'a Path,
    filter: Option<&'a str>,
    tol: Tolerance,
    json: Option<&'a Path>,
    verbose: bool,
    known: Option<&'a Path>,
}

/// `case-name  # why` per line: differences that are understood and written down.
fn known_differences(path: Option<&Path>) -> Result<Vec<String>> {
    let Some(path) = path else { return Ok(vec![]) };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split('#').next().map(str::trim))
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

fn conformance(cli: &Cli, a: ConformanceArgs) -> Result<bool> {
    let ConformanceArgs {
        dir,
        filter,
        tol,
        json,
        verbose,
        known,
    } = a;
    let known = known_differences(known)?;
    let cases: Vec<PathBuf> = conformance::find_cases(dir)?
        .into_iter()
        .filter(|c| {
            filter.is_none_or(|f| {
                c.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(f))
            })
        })
        .collect();
    let mut native = Native::default();
    let mut wasm = open_backend(cli, EngineChoice::Wasm)?;
    let (mut n_pass, mut w_pass, mut regressions) = (0, 0, vec![]);
    let mut records = vec![];
    for case in &cases {
        let name = case
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        // Native tract on its own thread (see bench.rs): on the component's thread it slows the
        // JIT-compiled wasm after it many times over.
        let n = std::thread::scope(|s| {
            s.spawn(|| conformance::run_case(&mut native, case, tol))
                .join()
                .expect("the native run panicked")
        });
        let w = conformance::run_case(wasm.as_mut(), case, tol);
        let np = matches!(n, conformance::Outcome::Pass);
        let wp = matches!(w, conformance::Outcome::Pass);
        n_pass += np as usize;
        w_pass += wp as usize;
        if np && !wp {
            if known.contains(&name) {
                println!("KNOWN DIFFERENCE (see the --known file) {name}: {w:?}");
            } else {
                regressions.push(format!("{name}: {w:?}"));
            }
        }
        if verbose {
            if let conformance::Outcome::Fail(why) = &w {
                println!("FAIL {name}: {why}");
            }
        }
        records.push(serde_json::json!({"case": name, "native": outcome_json(&n), "component": outcome_json(&w)}));
    }
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&records)?)?;
    }
    for r in &regressions {
        println!("REGRESSION (passes natively, fails in the component) {r}");
    }
    let total = cases.len();
    println!("native tract: {n_pass} passed, {} failed", total - n_pass);
    println!("component: {w_pass} passed, {} failed", total - w_pass);
    Ok(regressions.is_empty())
}

fn outcome_json(o: &conformance::Outcome) -> serde_json::Value {
    match o {
        conformance::Outcome::Pass => "pass".into(),
        conformance::Outcome::Fail(why) => why.as_str().into(),
    }
}

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run {
            model,
            inputs,
            out,
            engine,
        } => run(&cli, model, inputs, out.as_deref(), *engine),
        Command::Describe { model, engine } => describe(&cli, model, *engine),
        Command::Conformance {
            dir,
            filter,
            rtol,
            atol,
            json,
            verbose,
            known,
        } => {
            let args = ConformanceArgs {
                dir,
                filter: filter.as_deref(),
                tol: Tolerance {
                    rtol: *rtol,
                    atol: *atol,
                },
                json: json.as_deref(),
                verbose: *verbose,
                known: known.as_deref(),
            };
            conformance(&cli, args).and_then(|ok| {
                if ok {
                    Ok(())
                } else {
                    bail!("some cases pass natively but fail in the component")
                }
            })
        }
        Command::Bench(args) => bench::run(args, &component_path(cli.component.as_deref())),
        Command::Serve(args) => serve::serve(args.clone(), Duration::from_millis(cli.timeout_ms)),
        Command::Models(cmd) => models_command(cmd),
        Command::Policy { json } => print_json(*json, edge_core::policy_data::policy_json),
        Command::Tables { json } => print_json(*json, nn_tables::json::tables_json),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// `policy --json`, `tables --json`: data for the code in other languages that cannot link
/// the crate defining it.
fn print_json(json: bool, data: fn() -> serde_json::Value) -> Result<()> {
    if !json {
        eprintln!("error: give --json");
        std::process::exit(2);
    }
    println!("{}", serde_json::to_string_pretty(&data()).expect("JSON"));
    Ok(())
}
