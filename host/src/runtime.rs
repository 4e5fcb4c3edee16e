//! The `inference` component on wasmtime: compile once (cached on disk), instantiate, and call
//! its wasi-nn exports. A trap (a panic in the guest, a deadline) becomes an `NnError` and the
//! instance is replaced, so the host keeps serving.
use crate::backend::{Backend, GraphDesc, GraphId, IoDesc, Named};
use anyhow::{Context, Result};
use inference::{Dim, Encoding, ErrorCode, NnError, TensorData};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmtime::component::{Component, Linker, ResourceAny};
use wasmtime::{Config, Engine as Wasmtime, Store, Trap};
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "secure-context:inference/engine",
});

use exports::secure_context::inference::introspection as intro;
use exports::wasi::nn::{errors as wit_errors, graph as wit_graph, tensor as wit_tensor};

/// Epoch ticks per second: the deadline's resolution.
const TICKS_PER_SECOND: u64 = 100;

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

struct Instance {
    store: Store<State>,
    bindings: Engine,
}

/// The compiled component and everything needed to make fresh instances of it.
pub struct WasmBackend {
    engine: Wasmtime,
    component: Component,
    linker: Linker<State>,
    instance: Option<Instance>,
    graphs: Vec<Option<(ResourceAny, ResourceAny)>>,
    /// Generation of `instance`; graphs from an older one are gone.
    generation: u64,
    graph_generation: Vec<u64>,
    timeout: Duration,
}

/// Where compiled components are cached: `$SC_CACHE_DIR`, else `$XDG_CACHE_HOME` or `~/.cache`.
fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SC_CACHE_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("secure-context")
}

impl WasmBackend {
    pub fn new(wasm: &Path, timeout: Duration) -> Result<WasmBackend> {
        let engine = Wasmtime::new(&engine_config())?;
        let component = load_component(&engine, wasm)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        // One ticker per process drives every deadline.
        let ticker = engine.weak();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(1000 / TICKS_PER_SECOND));
            match ticker.upgrade() {
                Some(e) => e.increment_epoch(),
                None => break,
            }
        });
        Ok(WasmBackend {
            engine,
            component,
            linker,
            instance: None,
            graphs: vec![],
            generation: 0,
            graph_generation: vec![],
            timeout,
        })
    }

    /// The compute budget of each later call.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    fn instance(&mut self) -> Result<&mut Instance, NnError> {
        if self.instance.is_none() {
            // The engine needs no files, sockets or environment: a bare WASI context.
            let state = State {
                wasi: WasiCtx::builder().inherit_stderr().build(),
                table: ResourceTable::new(),
            };
            let mut store = Store::new(&self.engine, state);
            store.set_epoch_deadline(u64::MAX / 2);
            let bindings = Engine::instantiate(&mut store, &self.component, &self.linker)
                .map_err(|e| NnError::runtime(format!("cannot instantiate the engine: {e:#}")))?;
            self.instance = Some(Instance { store, bindings });
            self.generation += 1;
        }
        Ok(self.instance.as_mut().expect("just set"))
    }

    /// Runs one guest call under the deadline; a trap drops the instance.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut Store<State>, &Engine) -> wasmtime::Result<Result<T, ResourceAny>>,
    ) -> Result<T, NnError> {
        let ticks = (self.timeout.as_millis() as u64 * TICKS_PER_SECOND)
            .div_ceil(1000)
            .max(1);
        let inst = self.instance()?;
        inst.store.set_epoch_deadline(ticks);
        let result = f(&mut inst.store, &inst.bindings);
        inst.store.set_epoch_deadline(u64::MAX / 2);
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(err)) => Err(read_error(inst, err)),
            Err(trap) => {
                self.instance = None;
                Err(trap_error(&trap, self.timeout))
            }
        }
    }

    fn live_graph(&self, id: GraphId) -> Result<(ResourceAny, ResourceAny), NnError> {
        let found = self.graphs.get(id).copied().flatten();
        match found {
            Some(g) if self.graph_generation[id] == self.generation && self.instance.is_some() => {
                Ok(g)
            }
            _ => Err(NnError::new(
                ErrorCode::NotFound,
                "graph is gone (the engine restarted after a trap); load it again",
            )),
        }
    }
}

/// How the engine component is compiled and run. Relaxed SIMD on, in its fast (non-deterministic)
/// lowering: `f32x4.relaxed_madd` becomes a hardware FMA where the CPU has one, as in V8, so the
/// browser and the server compute the same bits on the same machine (tested). Epoch interruption
/// is the deadline.
pub fn engine_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.wasm_relaxed_simd(true);
    config.relaxed_simd_deterministic(false);
    config.epoch_interruption(true);
    config
}

pub fn component_path(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("SC_COMPONENT") {
        return PathBuf::from(p);
    }
    // target/release/secure-context -> target/wasm32-wasip2/wasm/inference.wasm
    let beside = std::env::current_exe().ok().and_then(|exe| {
        Some(
            exe.parent()?
                .parent()?
                .join("wasm32-wasip2/wasm/inference.wasm"),
        )
    });
    beside
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("target/wasm32-wasip2/wasm/inference.wasm"))
}

/// Compiles a component, or reads the compiled form this host cached for the same bytes and
/// engine configuration (a second start then takes milliseconds).
pub fn load_component(engine: &Wasmtime, wasm: &Path) -> Result<Component> {
    let bytes = std::fs::read(wasm)
        .with_context(|| format!("reading {} (build it first: scripts/build)", wasm.display()))?;
    let mut h = Sha256::new();
    h.update(&bytes);
    // The compiled form depends on wasmtime's version and config as well as on the input.
    let mut compat = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    h.update(compat.finish().to_le_bytes());
    let key: String = h
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    let stem = wasm
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("component");
    let cached = cache_dir().join(format!("{stem}-{key}.cwasm"));
    if cached.exists() {
        // Safety: the file is one this host wrote, named by the hash of its source and engine.
        if let Ok(c) = unsafe { Component::deserialize_file(engine, &cached) } {
            return Ok(c);
        }
    }
    let component = Component::new(engine, &bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("compiling {}", wasm.display()))?;
    if let Ok(serialized) = component.serialize() {
        let _ = std::fs::create_dir_all(cache_dir());
        let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, serialized).is_ok() {
            let _ = std::fs::rename(&tmp, &cached);
        }
    }
    Ok(component)
}

fn trap_error(trap: &wasmtime::Error, timeout: Duration) -> NnError {
    if trap.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return NnError::new(
            ErrorCode::Timeout,
            format!(
                "inference took longer than {} ms and was stopped",
                timeout.as_millis()
            ),
        );
    }
    NnError::runtime(format!("the engine trapped and was restarted: {trap:#}"))
}

fn read_error(inst: &mut Instance, err: ResourceAny) -> NnError {
    let e = inst.bindings.wasi_nn_errors().error();
    let code = e.call_code(&mut inst.store, err);
    let data = e.call_data(&mut inst.store, err);
    let _ = err.resource_drop(&mut inst.store);
    match (code, data) {
        (Ok(code), Ok(data)) => NnError::new(code.into(), data),
        _ => NnError::runtime("the engine failed while reporting an error"),
    }
}

// The one conversion between the tables and this binding's WIT types.
nn_tables::wit_conversions!(
    tensor_type = wit_tensor::TensorType,
    error_code = wit_errors::ErrorCode,
);

fn io_desc(t: intro::TensorInfo) -> IoDesc {
    IoDesc {
        name: t.name,
        element_type: t.element_type,
        carrier: t.carrier.map(Into::into),
        shape: t.shape.map(|dims| {
            dims.into_iter()
                .map(|d| match d {
                    intro::Dimension::Fixed(n) => Dim::Fixed(n),
                    intro::Dimension::Symbolic(s) => Dim::Symbolic(s),
                    intro::Dimension::Unknown => Dim::Unknown,
                })
                .collect()
        }),
    }
}

impl Backend for WasmBackend {
    fn name(&self) -> &'static str {
        "wasm"
    }

    fn load(&mut self, model: &[u8], encoding: Encoding) -> Result<GraphId, NnError> {
        use wit_graph::GraphEncoding as G;
        let enc = match encoding {
            Encoding::Onnx => G::Onnx,
            Encoding::TfLite => G::Tensorflowlite,
            Encoding::Autodetect => G::Autodetect,
            Encoding::Other(name) => {
                return Err(NnError::new(
                    ErrorCode::InvalidEncoding,
                    format!("unknown encoding {name}"),
                ))
            }
        };
        let builders = [model.to_vec()];
        let graph = self.call(|store, b| {
            b.wasi_nn_graph().call_load(
                &mut *store,
                &builders,
                enc,
                wit_graph::ExecutionTarget::Cpu,
            )
        })?;
        let ctx = self.call(|store, b| {
            b.wasi_nn_graph()
                .graph()
                .call_init_execution_context(&mut *store, graph)
        })?;
        self.graphs.push(Some((graph, ctx)));
        self.graph_generation.push(self.generation);
        Ok(self.graphs.len() - 1)
    }

    fn describe(&mut self, graph: GraphId) -> Result<GraphDesc, NnError> {
        let (g, _) = self.live_graph(graph)?;
        let info = self.call(|store, b| {
            b.secure_context_inference_introspection()
                .call_describe(&mut *store, g)
                .map(Ok)
        })?;
        Ok(GraphDesc {
            format: match info.encoding {
                wit_graph::GraphEncoding::Tensorflowlite => "tflite".into(),
                _ => "onnx".into(),
            },
            sha256: info.sha256,
            inputs: info.inputs.into_iter().map(io_desc).collect(),
            outputs: info.outputs.into_iter().map(io_desc).collect(),
        })
    }

    fn compute(&mut self, graph: GraphId, inputs: Named) -> Result<Named, NnError> {
        let (_, ctx) = self.live_graph(graph)?;
        let mut named = Vec::with_capacity(inputs.len());
        for (name, t) in inputs {
            let handle = self.call(|store, b| {
                b.wasi_nn_tensor()
                    .tensor()
                    .call_constructor(&mut *store, &t.dims, t.ty.into(), &t.data)
                    .map(Ok)
            })?;
            named.push((name, handle));
        }
        let outputs = self.call(|store, b| {
            b.wasi_nn_inference()
                .graph_execution_context()
                .call_compute(&mut *store, ctx, &named)
        })?;
        let mut result = Vec::with_capacity(outputs.len());
        for (name, handle) in outputs {
            let t = self.call(|store, b| {
                let tensor = b.wasi_nn_tensor().tensor();
                let dims = tensor.call_dimensions(&mut *store, handle)?;
                let ty = tensor.call_ty(&mut *store, handle)?;
                let data = tensor.call_data(&mut *store, handle)?;
                handle.resource_drop(&mut *store)?;
                Ok(Ok(TensorData::new(dims, ty.into(), data)))
            })?;
            result.push((name, t));
        }
        Ok(result)
    }

    fn unload(&mut self, graph: GraphId) {
        if let Ok((g, ctx)) = self.live_graph(graph) {
            if let Some(inst) = self.instance.as_mut() {
                let _ = ctx.resource_drop(&mut inst.store);
                let _ = g.resource_drop(&mut inst.store);
            }
        }
        if let Some(slot) = self.graphs.get_mut(graph) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inference::ElementType;

    /// A WIT case name as the bindings spell it: `FP16` -> `Fp16`, `too-large` -> `TooLarge`.
    fn camel(wit: &str) -> String {
        wit.split('-')
            .map(|w| {
                let w = w.to_lowercase();
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default()
            })
            .collect::<Vec<String>>()
            .concat()
    }

    /// Each of `all` converts to the generated case of the same WIT name, and back.
    fn pairs_by_name<T, W>(all: &[T], generated: &str, wit_name: fn(T) -> &'static str)
    where
        T: Copy + PartialEq + std::fmt::Debug + From<W>,
        W: Copy + std::fmt::Debug + From<T>,
    {
        for &t in all {
            let w = W::from(t);
            let expected = format!("{generated}::{}", camel(wit_name(t)));
            assert_eq!(format!("{w:?}"), expected);
            assert_eq!(T::from(w), t);
        }
    }

    /// `nn_tables::wit_conversions!` against wasmtime's generated types (the order of the cases
    /// is checked against the WIT by nn-tables itself).
    #[test]
    fn wit_conversions_pair_cases_by_name() {
        let types = ElementType::ALL;
        pairs_by_name::<_, wit_tensor::TensorType>(&types, "TensorType", ElementType::wit_name);
        let codes = ErrorCode::ALL;
        pairs_by_name::<_, wit_errors::ErrorCode>(&codes, "ErrorCode", ErrorCode::as_str);
    }
}
