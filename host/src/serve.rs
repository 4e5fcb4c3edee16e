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

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, GuestTaskId, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreContextMut};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyHandler, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState,
    WorkerStatus,
};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::spin_manifest::{App, ComponentSpec, Route};

/// Requests one WASIp3 instance handles before it is replaced (wasmtime serve's default).
const P3_MAX_REUSE: usize = 128;
/// Requests one WASIp3 instance handles at the same time (wasmtime serve's default).
const P3_MAX_CONCURRENT_REUSE: usize = 16;
/// An idle instance is dropped after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the epoch ticks (request timeouts trap the guest on the next tick).
const EPOCH_TICK: Duration = Duration::from_millis(50);

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
fn default_concurrency() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (2 * cores).max(4)
}

/// The memory one store may hold: every linear memory of the instance counted together (a
/// composed component has one per core module), and tables capped.
#[derive(Debug)]
struct StoreLimit {
    max_bytes: usize,
    used: usize,
    /// The requests this instance has taken (one under WASIp2); all of them fail with it.
    requests: Vec<u64>,
    /// Where they are written down when the limit is hit (the component's, see `State`).
    limited: Arc<Limited>,
}

/// The requests whose instance hit its memory limit, until `handle_request` answers them.
#[derive(Default, Debug)]
struct Limited(std::sync::Mutex<std::collections::HashSet<u64>>);

impl Limited {
    fn add(&self, ids: &[u64]) {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Ids of requests that had already been answered are never taken out: bound them.
        if set.len() > 4096 {
            set.clear();
        }
        set.extend(ids);
    }

    fn take(&self, id: u64) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&id)
    }
}

/// A store reached its memory limit.
#[derive(Debug)]
struct MemoryLimit(usize);

impl std::fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the instance reached its memory limit ({} MiB)",
            self.0 >> 20
        )
    }
}

impl std::error::Error for MemoryLimit {}

/// Elements of one table (function references; the engine needs a few thousand).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl wasmtime::ResourceLimiter for StoreLimit {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let more = desired.saturating_sub(current);
        if self.used.saturating_add(more) > self.max_bytes {
            // A trap with this error, not a failed `memory.grow`: the guest cannot go on, and
            // the runner tells the client why (503 `memory-limit`).
            self.limited.add(&self.requests);
            return Err(wasmtime::Error::new(MemoryLimit(self.max_bytes)));
        }
        self.used += more;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

struct Host {
    table: ResourceTable,
    ctx: WasiCtx,
    http: WasiHttpCtx,
    hooks: DenyOutgoing,
    limit: StoreLimit,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Outgoing HTTP is not part of what the served components may do.
struct DenyOutgoing;

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for DenyOutgoing {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// What each instance's store is made from.
#[derive(Clone, Debug)]
struct GuestSetup {
    dirs: Vec<(PathBuf, String)>,
    envs: Vec<(String, String)>,
    max_memory: usize,
    limited: Arc<Limited>,
}

/// The app to serve: the manifest's routes, or one component for every path.
fn app_from_args(args: &ServeArgs) -> Result<App> {
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

impl GuestSetup {
    fn new_store(&self, engine: &Engine, instance_id: u64) -> Result<Store<Host>> {
        let mut b = WasiCtxBuilder::new();
        b.inherit_stdout().inherit_stderr();
        // As wasmtime serve does by default: file reads run on the calling thread instead of
        // a hop to tokio's blocking pool (preopens are local, read-only files; request
        // timeouts still end a guest at the next epoch tick).
        b.allow_blocking_current_thread(true);
        for (k, v) in &self.envs {
            b.env(k, v);
        }
        b.env("INSTANCE_ID", instance_id.to_string());
        for (host, guest) in &self.dirs {
            b.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("preopening {}", host.display()))?;
        }
        let mut store = Store::new(
            engine,
            Host {
                table: ResourceTable::new(),
                ctx: b.build(),
                http: WasiHttpCtx::new(),
                hooks: DenyOutgoing,
                limit: StoreLimit {
                    max_bytes: self.max_memory,
                    used: 0,
                    requests: vec![],
                    limited: self.limited.clone(),
                },
            },
        );
        store.limiter(|h| &mut h.limit);
        Ok(store)
    }
}

struct Expiration {
    request_timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let timeout = match status {
            WorkerStatus::Idle => IDLE_TIMEOUT,
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.request_timeout,
        };
        match start.checked_add(timeout) {
            Some(deadline) => {
                let deadline = tokio::time::Instant::from_std(deadline);
                if deadline != self.sleep.deadline() {
                    self.sleep.as_mut().reset(deadline);
                }
                self.sleep.as_mut().poll(cx)
            }
            None => Poll::Pending,
        }
    }
}

struct Worker {
    max_reuse: usize,
    max_concurrent: usize,
    request_timeout: Duration,
}

impl WorkerState for Worker {
    type StoreData = Host;
    type RequestData = u64;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_reuse {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, Host>,
        request_id: u64,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + 'static + Send + Sync>> {
        store.data_mut().limit.requests.push(request_id);
        Box::pin(tokio::time::sleep(self.request_timeout))
    }

    fn drop(&self, store: Store<Host>, result: wasmtime::Result<()>) {
        if let Err(e) = result {
            eprintln!("serve: worker failed: {e:?}");
        }
        drop(store);
    }
}

struct State {
    setup: GuestSetup,
    component: Component,
    pre: ProxyPre<Host>,
    p3: bool,
    request_timeout: Duration,
    next_instance: AtomicU64,
    next_request: AtomicU64,
    requests: Semaphore,
}

impl HandlerState for State {
    type StoreData = Host;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<Host, Expiration, Worker>> {
        let id = self.next_instance.fetch_add(1, Ordering::Relaxed);
        let mut store = self
            .setup
            .new_store(self.component.engine(), id)
            .map_err(wasmtime::Error::from_anyhow)?;
        // As wasmtime serve does with a timeout: a running guest yields at every epoch tick,
        // so the request timeout (`on_request_start`) can end it.
        store.epoch_deadline_async_yield_and_update(1);
        store.set_epoch_deadline(1);
        let proxy = self.pre.instantiate_async(&mut store).await?;
        let (max_reuse, max_concurrent) = if self.p3 {
            (P3_MAX_REUSE, P3_MAX_CONCURRENT_REUSE)
        } else {
            (1, 1)
        };
        Ok(Instance {
            store,
            proxy,
            view: WasiHttpView::http,
            expiration: Expiration {
                request_timeout: self.request_timeout,
                sleep: Box::pin(tokio::time::sleep(Duration::MAX / 4)),
            },
            state: Worker {
                max_reuse,
                max_concurrent,
                request_timeout: self.request_timeout,
            },
        })
    }
}

/// Pre-instantiates one component (compiled once, then from the on-disk cache).
fn prepare(
    engine: &Engine,
    linker: &Linker<Host>,
    spec: &ComponentSpec,
    request_timeout: Duration,
    bounds: Bounds,
) -> Result<State> {
    let component = crate::runtime::load_component(engine, &spec.source)?;
    let instance = linker.instantiate_pre(&component)?;
    let (pre, p3) = match wasmtime_wasi_http::p3::bindings::ServicePre::new(instance.clone()) {
        Ok(pre) => (ProxyPre::P3(pre), true),
        Err(_) => (
            ProxyPre::P2(
                wasmtime_wasi_http::p2::bindings::ProxyPre::new(instance)
                    .map_err(anyhow::Error::from)
                    .with_context(|| format!("{}: the component exports neither wasi:http/handler@0.3 nor wasi:http/incoming-handler@0.2", spec.source.display()))?,
            ),
            false,
        ),
    };
    Ok(State {
        setup: GuestSetup {
            dirs: spec.dirs.clone(),
            envs: spec.envs.clone(),
            max_memory: bounds.max_memory,
            limited: Arc::default(),
        },
        component,
        pre,
        p3,
        request_timeout,
        next_instance: AtomicU64::new(0),
        next_request: AtomicU64::new(0),
        requests: Semaphore::new(bounds.max_concurrent.max(1)),
    })
}

/// What one component may take: requests at once, memory per instance.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    max_concurrent: usize,
    max_memory: usize,
}

/// Every route with the handler of its component, in match order.
struct Router {
    app: App,
    handlers: Vec<ProxyHandler<State>>,
    request_timeout: Duration,
}

/// Builds one engine and linker for every component of the app.
fn prepare_router(app: App, request_timeout: Duration, bounds: Bounds) -> Result<(Router, Engine)> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.epoch_interruption(true);
    let engine = Engine::new(&config)?;
    let mut linker: Linker<Host> = Linker::new(&engine);
    // `-Scli`: every wasi:cli@0.2 and @0.3 interface, then HTTP.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    let mut handlers = Vec::new();
    for (_, spec) in &app.routes {
        let state = prepare(&engine, &linker, spec, request_timeout, bounds)
            .with_context(|| format!("component {:?}", spec.id))?;
        handlers.push(ProxyHandler::new(state));
    }
    Ok((
        Router {
            app,
            handlers,
            request_timeout,
        },
        engine,
    ))
}

/// Runs the server until Ctrl-C (or SIGTERM).
pub fn serve(args: ServeArgs, request_timeout: Duration) -> Result<()> {
    let app = app_from_args(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args, app, request_timeout))
}

async fn run(args: ServeArgs, app: App, request_timeout: Duration) -> Result<()> {
    let bounds = Bounds {
        max_concurrent: args.max_concurrent.unwrap_or_else(default_concurrency),
        max_memory: args.max_memory_mb.saturating_mul(1 << 20),
    };
    let (router, engine) = prepare_router(app, request_timeout, bounds)?;
    let router = Arc::new(router);

    let socket = match args.addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket
        .bind(args.addr)
        .with_context(|| format!("binding {}", args.addr))?;
    let listener = socket.listen(1024)?;
    for ((route, spec), h) in router.app.routes.iter().zip(&router.handlers) {
        let world = if h.state().p3 {
            "wasi:http/handler@0.3.0"
        } else {
            "wasi:http/incoming-handler@0.2"
        };
        eprintln!(
            "route {route:?} -> {} ({}, {world})",
            spec.id,
            spec.source.display()
        );
    }
    eprintln!("Serving HTTP on http://{}/", listener.local_addr()?);

    let ticking = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let ticker = {
        let ticking = ticking.clone();
        std::thread::spawn(move || {
            while ticking.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
    };

    let connections = Arc::new(Semaphore::new(args.max_connections.max(1)));
    let shutdown = async {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r?,
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await?;
        anyhow::Ok(())
    };
    tokio::pin!(shutdown);
    loop {
        let (permit, stream) = tokio::select! {
            r = &mut shutdown => { r?; break; }
            v = async {
                let permit = connections.clone().acquire_owned().await?;
                let (stream, _) = listener.accept().await?;
                anyhow::Ok((permit, stream))
            } => match v {
                Ok(v) => v,
                Err(e) => { eprintln!("serve: accept: {e}"); continue; }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        tokio::spawn(async move {
            handle_client(stream, &router).await;
            drop(permit);
        });
    }
    ticking.store(false, Ordering::Relaxed);
    let _ = ticker.join();
    Ok(())
}

async fn handle_client(mut stream: tokio::net::TcpStream, router: &Router) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let result = http1::Builder::new()
        .timer(TokioTimer)
        .keep_alive(true)
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(
            TokioIo::new(&mut stream),
            hyper::service::service_fn(move |req| async move {
                Ok::<_, Infallible>(handle_request(router, local, req).await)
            }),
        )
        .await;
    if let Err(e) = result {
        if !e.is_incomplete_message() {
            eprintln!("serve: connection: {e}");
        }
    }
    linger(stream).await;
}

/// How long, and how many bytes, a closing connection still reads and discards.
const LINGER: Duration = Duration::from_secs(5);
const LINGER_BYTES: usize = 32 << 20;

/// Lingering close (RFC 9112 section 9.6). A reply sent before the request body was read (the
/// API refusing a large body at its first bad element) is followed by hyper's shutdown of our
/// write side; if the socket were then closed with the client's body still arriving, the kernel
/// would answer with a reset, and the client's kernel would drop the reply it has not read yet.
/// So the rest of the body is read and discarded, within a bound, before the socket is closed.
async fn linger(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = LINGER_BYTES;
    let drain = async {
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// hyper's timer (for `header_read_timeout`: a client that never finishes its request
/// headers is dropped after 30 s), on tokio.
#[derive(Clone, Copy, Debug)]
struct TokioTimer;

struct TokioSleep(Pin<Box<tokio::time::Sleep>>);

impl Future for TokioSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for TokioSleep {}

impl hyper::rt::Timer for TokioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TokioSleep(Box::pin(tokio::time::sleep(duration))))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TokioSleep(Box::pin(tokio::time::sleep_until(
            tokio::time::Instant::from_std(deadline),
        ))))
    }
}

/// A response the host makes itself: a JSON error (the API's form) under the app's header
/// policy. No detail of a failure leaves the server.
fn host_error(status: u16, code: &str, message: &str) -> hyper::Response<WasiBody> {
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    let mut r = hyper::Response::new(
        Full::new(Bytes::from(body))
            .map_err(|_| unreachable!())
            .boxed_unsync(),
    );
    *r.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = r.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    edge_core::policy::apply(
        headers,
        edge_core::policy::Kind::Resource,
        &edge_core::config::Config::default(),
    );
    r
}

async fn handle_request(
    router: &Router,
    local: SocketAddr,
    mut req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<WasiBody> {
    let Some(i) = router.app.route(req.uri().path()) else {
        return host_error(404, "not-found", "no route serves this path");
    };
    // A wasi:http 0.2 request must have an authority. HTTP/1.1 requires a Host header (RFC
    // 9112 §3.2: answer 400 without one); an HTTP/1.0 client may omit it, and gets this
    // server's own address, as it asked this server.
    if req.uri().authority().is_none() && !req.headers().contains_key(http::header::HOST) {
        if req.version() != http::Version::HTTP_10 {
            return host_error(
                400,
                "bad-request",
                "an HTTP/1.1 request needs a Host header",
            );
        }
        if let Ok(v) = http::HeaderValue::from_str(&local.to_string()) {
            req.headers_mut().insert(http::header::HOST, v);
        }
    }
    let handler = &router.handlers[i];
    let start = Instant::now();
    let id = handler.state().next_request.fetch_add(1, Ordering::Relaxed);
    let result = async {
        let _permit = handler.state().requests.acquire().await?;
        let mut req = req.map(|body| body.map_err(|e| e.into()).boxed_unsync());
        with_authority(&mut req);
        handler.handle(id, req).await
    }
    .await;
    let limited = handler.state().setup.limited.take(id);
    match result {
        Ok(r) => r,
        Err(e) if start.elapsed() >= router.request_timeout => {
            eprintln!("serve: request timed out: {e:?}");
            host_error(
                504,
                "timeout",
                &format!(
                    "the request ran longer than its budget ({} ms)",
                    router.request_timeout.as_millis()
                ),
            )
        }
        Err(e) if limited => {
            eprintln!("serve: request {id}: {e:#}");
            host_error(
                503,
                "memory-limit",
                "the request needed more memory than one instance may use (--max-memory-mb)",
            )
        }
        Err(e) => {
            eprintln!("serve: error: {e:?}");
            host_error(500, "internal", "the component failed; see the server log")
        }
    }
}

/// As Spin does (and `wasmtime serve` does not): an origin-form request reaches the guest with
/// scheme `http` and the `Host` header as its authority, so the component can tell which host
/// the client asked for. A Host that is not a valid authority, or more than one, is left out.
fn with_authority<B>(req: &mut hyper::Request<B>) {
    if req.uri().authority().is_some()
        || req.headers().get_all(http::header::HOST).iter().count() != 1
    {
        return;
    }
    let Some(authority) = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
    else {
        return;
    };
    let mut parts = req.uri().clone().into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}
