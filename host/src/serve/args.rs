//! The command line of `secure-context serve`, and the app it names: one component, or a Spin
//! manifest's routes.

use crate::spin_manifest::{App, ComponentSpec, Route};
use anyhow::{bail, Result};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// The component: exports wasi:http/handler@0.3.0 (or wasi:http/incoming-handler@0.2.x).
    #[arg(required_unless_present = "manifest")]
    pub component: Option<PathBuf>,
    /// Serve a Spin app (manifest version 2) instead of one component: its HTTP routes, each
    /// component's source, files and environment (`--env` overrides it for every component).
    #[arg(long, conflicts_with_all = ["component", "dirs"])]
    pub manifest: Option<PathBuf>,
    /// Socket address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Preopen a host directory for the guest, read-only: HOST::GUEST (or HOST, mounted at HOST).
    #[arg(long = "dir", value_name = "HOST::GUEST")]
    pub dirs: Vec<String>,
    /// Set an environment variable for the guest: NAME=VALUE, or NAME to pass the host's value.
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    pub envs: Vec<String>,
    /// WASI options, for command-line compatibility with `wasmtime serve`: only `cli`
    /// (all of wasi:cli is always linked).
    #[arg(short = 'S', value_name = "OPTION")]
    pub wasi: Vec<String>,
    /// Connections served at the same time; more wait to be accepted.
    #[arg(long, default_value_t = 1000)]
    pub max_connections: usize,
    /// Requests each component runs at the same time; more wait their turn (default: twice
    /// the available cores, at least 4).
    #[arg(long)]
    pub max_concurrent: Option<usize>,
    /// Linear memory of one instance (all its memories together), in MiB.
    #[arg(long, default_value_t = 1024)]
    pub max_memory_mb: usize,
}

/// Default `--max-concurrent`: the work is CPU-bound, more in flight only costs memory.
pub(super) fn default_concurrency() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (2 * cores).max(4)
}

/// The app to serve: the manifest's routes, or one component for every path.
pub(super) fn app_from_args(args: &ServeArgs) -> Result<App> {
    for s in &args.wasi {
        if s != "cli" && s != "cli=y" {
            bail!("-S {s}: only `-S cli` is supported (all of wasi:cli is linked)");
        }
    }
    let mut envs = Vec::new();
    for e in &args.envs {
        match e.split_once('=') {
            Some((k, v)) => envs.push((k.to_string(), v.to_string())),
            None => {
                if let Ok(v) = std::env::var(e) {
                    envs.push((e.clone(), v));
                }
            }
        }
    }
    let mut app = match (&args.manifest, &args.component) {
        (Some(m), _) => App::load(m)?,
        (None, Some(c)) => {
            let mut dirs = Vec::new();
            for d in &args.dirs {
                let (host, guest) = d.split_once("::").unwrap_or((d.as_str(), d.as_str()));
                let host = PathBuf::from(host);
                if !host.is_dir() {
                    bail!("--dir {d}: {} is not a directory", host.display());
                }
                dirs.push((host, guest.to_string()));
            }
            App {
                routes: vec![(
                    Route::Prefix(String::new()),
                    ComponentSpec {
                        id: "component".into(),
                        source: c.clone(),
                        dirs,
                        envs: vec![],
                    },
                )],
            }
        }
        (None, None) => bail!("give a component or --manifest"),
    };
    for (_, spec) in &mut app.routes {
        for (k, v) in &envs {
            spec.envs.retain(|(n, _)| n != k);
            spec.envs.push((k.clone(), v.clone()));
        }
    }
    Ok(app)
}
