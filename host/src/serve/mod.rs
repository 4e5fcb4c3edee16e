//! `secure-context serve`: serves a `wasi:http` component over HTTP/1.1 the way
//! `wasmtime serve -Scli --dir HOST::GUEST --env K=V --addr ADDR x.wasm` (wasmtime-cli 48.0.8,
//! `src/commands/serve.rs`) does, on the same crate (`wasmtime-wasi-http` 48.0.8 and its
//! `handler` module): `wasi:http/handler@0.3.0` (WASIp3, spin-sdk 7) and
//! `wasi:http/incoming-handler@0.2` (WASIp2) components, all of `wasi:cli` linked (`-Scli`).
//!
//! With `--manifest spin.toml` it serves a Spin app instead: every `[[trigger.http]]` route with
//! its component, files and environment, matched as Spin matches routes (`spin_manifest`), so
//! the app runs locally with the same binaries and mounts its manifest gives Spin.
//!
//! Differences, all on the safe side: preopened directories are read-only, outgoing HTTP is
//! refused (`HTTP-request-denied`), the host environment is never inherited (only `--env`),
//! and requests are bounded in time (`--timeout-ms`), number (`--max-connections`), requests a
//! component runs at once (`--max-concurrent`, the others wait) and memory (`--max-memory-mb`
//! for all the linear memories of one instance's store: a request that needs more fails, the
//! server does not), so the server's memory is bounded by concurrency times that limit.
//! Responses the host makes itself (no route, a trap, a timeout) are JSON errors under the
//! edge app's header policy (`edge_core::policy`), like every response the app makes.

//!
//! The parts: `args` (the command line and the app it names), `store` (one instance's store and
//! its limits), `pool` (components, instances and their bounds), `listen` (the accept loop),
//! `request` (one request, routed and bounded), `reply` (the host's own responses) and
//! `linger` (lingering close).

mod args;
mod linger;
mod listen;
mod pool;
mod reply;
mod request;
mod store;

pub use args::ServeArgs;

use anyhow::Result;
use std::time::Duration;

/// Runs the server until Ctrl-C (or SIGTERM).
pub fn serve(args: ServeArgs, request_timeout: Duration) -> Result<()> {
    let app = args::app_from_args(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(listen::run(args, app, request_timeout))
}
