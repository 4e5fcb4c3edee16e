//! The accept loop: binds the address, ticks the engine's epoch, serves each connection over
//! HTTP/1.1 until Ctrl-C or SIGTERM.

use super::args::{default_concurrency, ServeArgs};
use super::linger::linger;
use super::pool::{prepare_router, Bounds, Router};
use super::request::handle_request;
use crate::spin_manifest::App;
use anyhow::{Context as _, Result};
use hyper::server::conn::http1;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime_wasi_http::io::TokioIo;

/// How often the epoch ticks (request timeouts trap the guest on the next tick).
const EPOCH_TICK: Duration = Duration::from_millis(50);

/// Prepares every component, binds the address, then accepts connections (at most
/// `--max-connections` at once) until Ctrl-C or SIGTERM.
pub(super) async fn run(args: ServeArgs, app: App, request_timeout: Duration) -> Result<()> {
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
