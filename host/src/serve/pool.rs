//! Instance pooling: one pre-instantiated component per route, instances made on demand
//! (reused by WASIp3 components, one per request under WASIp2), each request bounded in time
//! and the requests a component runs at once bounded in number.

use super::store::{GuestSetup, Host};
use crate::spin_manifest::{App, ComponentSpec};
use anyhow::{Context as _, Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, GuestTaskId, Linker};
use wasmtime::{Config, Engine, Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyHandler, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState,
    WorkerStatus,
};
use wasmtime_wasi_http::WasiHttpView;

/// Requests one WASIp3 instance handles before it is replaced (wasmtime serve's default).
const P3_MAX_REUSE: usize = 128;
/// Requests one WASIp3 instance handles at the same time (wasmtime serve's default).
const P3_MAX_CONCURRENT_REUSE: usize = 16;
/// An idle instance is dropped after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct Expiration {
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

pub(super) struct Worker {
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
        store.data_mut().took_request(request_id);
        Box::pin(tokio::time::sleep(self.request_timeout))
    }

    fn drop(&self, store: Store<Host>, result: wasmtime::Result<()>) {
        if let Err(e) = result {
            eprintln!("serve: worker failed: {e:?}");
        }
        drop(store);
    }
}

pub(super) struct State {
    pub(super) setup: GuestSetup,
    pub(super) component: Component,
    pub(super) pre: ProxyPre<Host>,
    pub(super) p3: bool,
    pub(super) request_timeout: Duration,
    pub(super) next_instance: AtomicU64,
    pub(super) next_request: AtomicU64,
    pub(super) requests: Semaphore,
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
pub(super) struct Bounds {
    pub(super) max_concurrent: usize,
    pub(super) max_memory: usize,
}

/// Every route with the handler of its component, in match order.
pub(super) struct Router {
    pub(super) app: App,
    pub(super) handlers: Vec<ProxyHandler<State>>,
    pub(super) request_timeout: Duration,
}

/// Builds one engine and linker for every component of the app.
pub(super) fn prepare_router(
    app: App,
    request_timeout: Duration,
    bounds: Bounds,
) -> Result<(Router, Engine)> {
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
