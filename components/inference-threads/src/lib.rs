//! The engine as a core wasm module with a C ABI: the browser's threaded build.
//!
//! A component cannot use threads in the browser (jco implements no thread intrinsics), so this
//! crate builds the same `inference` engine as a core module for `wasm32-wasip1-threads` (shared
//! memory; rayon's pool threads start through the `wasi` `thread-spawn` import) with tract-linalg's
//! multithreaded matrix multiply. Each export is a thin wrapper over the calls `component.rs`
//! makes for wasi-nn; `static/engine-threads.js` turns them back into the object jco's glue gives
//! the worker, so the worker's run path does not fork.
//!
//! The ABI (all on the thread that instantiated the module; pool threads only run tract's
//! parallel kernels):
//! - bytes cross in buffers from `sc_alloc` (the caller frees them with `sc_free`);
//! - a fallible call returns 0 on success and 1 on error; its reply (the value, or on error the
//!   wasi-nn error code's name, a newline and the message) is at `sc_reply_ptr`/`sc_reply_len`
//!   until the next call;
//! - names cross as text, never as numbers: encodings and element types as the WIT spells them
//!   (`onnx`, `FP32`), error codes as `nn-tables` names them: no second table of either.
//! - tensors (compute's request and reply): a u32 count, then per tensor the name, the element
//!   type (each a u32 length and UTF-8 bytes), a u32 rank and that many u32 dims, and the data (a
//!   u32 length and the bytes); every integer little-endian.
mod wire;

use inference::describe::{Dim, IoInfo};
use inference::{Encoding, Format, Graph, Limits, NnError, NnResult, TRACT_VERSION};
use std::alloc::{alloc, dealloc, Layout};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

thread_local! {
    static GRAPHS: RefCell<HashMap<u32, Graph>> = RefCell::new(HashMap::new());
    static NEXT_HANDLE: Cell<u32> = const { Cell::new(1) };
    static REPLY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

const ALIGN: usize = 16;

/// A buffer of `len` bytes for the caller to fill (null when it cannot be had).
#[no_mangle]
pub extern "C" fn sc_alloc(len: usize) -> *mut u8 {
    match Layout::from_size_align(len.max(1), ALIGN) {
        // SAFETY: the layout is non-zero in size.
        Ok(layout) => unsafe { alloc(layout) },
        Err(_) => std::ptr::null_mut(),
    }
}

/// Frees a buffer from `sc_alloc` of the same `len`.
///
/// # Safety
/// `ptr` came from `sc_alloc(len)` and is not used again.
#[no_mangle]
pub unsafe extern "C" fn sc_free(ptr: *mut u8, len: usize) {
    if let Ok(layout) = Layout::from_size_align(len.max(1), ALIGN) {
        if !ptr.is_null() {
            dealloc(ptr, layout);
        }
    }
}

#[no_mangle]
pub extern "C" fn sc_reply_ptr() -> *const u8 {
    REPLY.with(|r| r.borrow().as_ptr())
}

#[no_mangle]
pub extern "C" fn sc_reply_len() -> usize {
    REPLY.with(|r| r.borrow().len())
}

fn reply(result: NnResult<Vec<u8>>) -> i32 {
    let (status, bytes) = match result {
        Ok(bytes) => (0, bytes),
        Err(e) => (
            1,
            format!("{}\n{}", e.code.as_str(), e.message).into_bytes(),
        ),
    };
    REPLY.with(|r| *r.borrow_mut() = bytes);
    status
}

/// # Safety
/// `ptr` points at `len` readable bytes (or `len` is 0).
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, len)
    }
}

fn encoding(name: &str) -> NnResult<Encoding> {
    // wasi-nn's graph-encoding names, as in component.rs's match on the WIT enum.
    Ok(match name {
        "onnx" => Encoding::Onnx,
        "tensorflowlite" => Encoding::TfLite,
        "autodetect" => Encoding::Autodetect,
        "openvino" => Encoding::Other("openvino"),
        "tensorflow" => Encoding::Other("tensorflow"),
        "pytorch" => Encoding::Other("pytorch"),
        "ggml" => Encoding::Other("ggml"),
        other => {
            return Err(NnError::invalid(format!(
                "unknown graph encoding \"{other}\""
            )))
        }
    })
}

fn graph<R>(handle: u32, f: impl FnOnce(&Graph) -> NnResult<R>) -> NnResult<R> {
    GRAPHS.with(|g| match g.borrow().get(&handle) {
        Some(graph) => f(graph),
        None => Err(NnError::invalid(format!(
            "no graph {handle} (dropped or never loaded)"
        ))),
    })
}

/// wasi-nn `graph.load` of one model file; the reply is the graph's handle (u32).
///
/// # Safety
/// `model` and `enc` point at `model_len` and `enc_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn sc_load(
    model: *const u8,
    model_len: usize,
    enc: *const u8,
    enc_len: usize,
) -> i32 {
    let model = bytes(model, model_len);
    let enc = String::from_utf8_lossy(bytes(enc, enc_len)).into_owned();
    reply((|| {
        let g = Graph::load(&[model], encoding(&enc)?, Limits::default())?;
        let handle = NEXT_HANDLE.with(|n| {
            let h = n.get();
            n.set(h.wrapping_add(1).max(1));
            h
        });
        GRAPHS.with(|gs| gs.borrow_mut().insert(handle, g));
        Ok(handle.to_le_bytes().to_vec())
    })())
}

#[no_mangle]
pub extern "C" fn sc_drop(handle: u32) {
    GRAPHS.with(|g| g.borrow_mut().remove(&handle));
}

/// The introspection `describe`, as JSON in the shape jco gives the WIT record (static/engine-threads.js).
#[no_mangle]
pub extern "C" fn sc_describe(handle: u32) -> i32 {
    reply(graph(handle, |g| Ok(describe_json(g).into_bytes())))
}

/// wasi-nn `compute`: the request and the reply are tensors in the wire format above.
///
/// # Safety
/// `req` points at `req_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn sc_compute(handle: u32, req: *const u8, req_len: usize) -> i32 {
    let req = bytes(req, req_len);
    reply(graph(handle, |g| {
        let inputs = wire::decode(req)?;
        Ok(wire::encode(&g.compute(inputs)?))
    }))
}

#[no_mangle]
pub extern "C" fn sc_engine_version() -> i32 {
    reply(Ok(format!("tract {TRACT_VERSION}").into_bytes()))
}

/// Starts the pool of `n` threads tract's matrix multiplies run on (once: later calls return
/// the first pool's size). Returns the pool's thread count, 1 when there is no pool.
#[no_mangle]
pub extern "C" fn sc_threads(n: u32) -> u32 {
    pool::init(n as usize) as u32
}

/// How many pool threads have started running (rayon's start handler).
#[no_mangle]
pub extern "C" fn sc_threads_started() -> u32 {
    pool::started() as u32
}

/// What wasi-libc's `crt1-reactor.o` `_initialize` does, which a Rust cdylib does not link: set up
/// the main thread's thread pointer (wasi-libc's pthread locks are keyed by its tid: without it
/// the first `pthread_create` waits forever) and run the constructors. The adapter calls it once,
/// first, on the main instance only (a pool thread's instance starts in `wasi_thread_start`).
#[cfg(all(target_os = "wasi", target_env = "p1"))]
#[no_mangle]
pub extern "C" fn _initialize() {
    use std::sync::atomic::{AtomicBool, Ordering};
    extern "C" {
        fn __wasi_init_tp();
        fn __wasm_call_ctors();
    }
    static DONE: AtomicBool = AtomicBool::new(false);
    if !DONE.swap(true, Ordering::SeqCst) {
        // SAFETY: wasi-libc's own start-up sequence, once, before any other export runs.
        unsafe {
            __wasi_init_tp();
            __wasm_call_ctors();
        }
    }
}

#[cfg(all(target_os = "wasi", target_env = "p1"))]
mod pool {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, OnceLock};
    use tract_linalg::multithread::{set_default_executor, Executor};

    static SIZE: OnceLock<usize> = OnceLock::new();
    static STARTED: AtomicUsize = AtomicUsize::new(0);

    pub fn init(n: usize) -> usize {
        *SIZE.get_or_init(|| {
            if n < 2 {
                return 1;
            }
            // Pool threads run tract's kernels only, never the graph: 1 MiB of stack each, as the
            // main thread has. A pool that cannot start (thread-spawn refused) leaves the engine
            // single-threaded rather than failing.
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .stack_size(1 << 20)
                .thread_name(|i| format!("secure-context-pool-{i}"))
                .start_handler(|_| {
                    STARTED.fetch_add(1, Ordering::SeqCst);
                })
                .build();
            match pool {
                Ok(pool) => {
                    let size = pool.current_num_threads();
                    set_default_executor(Executor::MultiThread(Arc::new(pool)));
                    size
                }
                Err(_) => 1,
            }
        })
    }

    pub fn started() -> usize {
        STARTED.load(Ordering::SeqCst)
    }
}

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
mod pool {
    pub fn init(_n: usize) -> usize {
        1
    }

    pub fn started() -> usize {
        0
    }
}

fn describe_json(g: &Graph) -> String {
    let info = g.info();
    let encoding = match info.format {
        Format::Onnx => "onnx",
        Format::TfLite => "tensorflowlite",
    };
    let list = |ios: &[IoInfo]| ios.iter().map(io_json).collect::<Vec<_>>().join(",");
    format!(
        "{{\"encoding\":\"{encoding}\",\"sha256\":{},\"inputs\":[{}],\"outputs\":[{}]}}",
        json_string(&info.sha256),
        list(&info.inputs),
        list(&info.outputs)
    )
}

fn io_json(io: &IoInfo) -> String {
    let carrier = io
        .carrier()
        .map_or("null".to_string(), |c| json_string(c.wit_name()));
    let shape = match &io.shape {
        None => "null".to_string(),
        Some(dims) => {
            let dims: Vec<String> = dims
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => format!("{{\"tag\":\"fixed\",\"val\":{n}}}"),
                    Dim::Symbolic(s) => {
                        format!("{{\"tag\":\"symbolic\",\"val\":{}}}", json_string(s))
                    }
                    Dim::Unknown => "{\"tag\":\"unknown\"}".to_string(),
                })
                .collect();
            format!("[{}]", dims.join(","))
        }
    };
    format!(
        "{{\"name\":{},\"elementType\":{},\"carrier\":{carrier},\"shape\":{shape}}}",
        json_string(&io.name),
        json_string(&io.element_name())
    )
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn an_unknown_encoding_is_invalid_argument() {
        let e = encoding("keras").unwrap_err();
        assert_eq!(e.code, inference::ErrorCode::InvalidArgument);
    }
}
