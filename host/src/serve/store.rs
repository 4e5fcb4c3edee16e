//! One instance's store: WASI and wasi:http contexts with read-only preopens, no outgoing
//! HTTP, and a memory limit over all of the instance's linear memories.

use anyhow::{Context as _, Result};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

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
pub(super) struct Limited(std::sync::Mutex<std::collections::HashSet<u64>>);

impl Limited {
    fn add(&self, ids: &[u64]) {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Ids of requests that had already been answered are never taken out: bound them.
        if set.len() > 4096 {
            set.clear();
        }
        set.extend(ids);
    }

    pub(super) fn take(&self, id: u64) -> bool {
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

pub(super) struct Host {
    table: ResourceTable,
    ctx: WasiCtx,
    http: WasiHttpCtx,
    hooks: DenyOutgoing,
    limit: StoreLimit,
}

impl Host {
    /// A request this instance takes: it fails with the instance if memory runs out.
    pub(super) fn took_request(&mut self, request_id: u64) {
        self.limit.requests.push(request_id);
    }
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
pub(super) struct GuestSetup {
    pub(super) dirs: Vec<(PathBuf, String)>,
    pub(super) envs: Vec<(String, String)>,
    pub(super) max_memory: usize,
    pub(super) limited: Arc<Limited>,
}

impl GuestSetup {
    pub(super) fn new_store(&self, engine: &Engine, instance_id: u64) -> Result<Store<Host>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_requests_are_taken_once() {
        let l = Limited::default();
        l.add(&[3, 4]);
        assert!(l.take(3));
        assert!(!l.take(3));
        assert!(l.take(4));
        assert!(!l.take(5));
    }
}
