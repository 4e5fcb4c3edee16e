//! `classify MODEL NAME=INPUT.npy...`: loads a model through wasi-nn, runs it on the inputs
//! and prints every output (its type, shape, argmax, and its raw little-endian bytes in hex so
//! another runner's result can be compared bit for bit).
//!
//! Written only against the standard wasi:nn@0.2.0-rc-2024-10-28 WIT: it runs on any host or
//! composition that provides wasi-nn.

use std::process::ExitCode;

wit_bindgen::generate!({
    // The standard wasi-nn WIT, unchanged (the file shipped in wasmtime-wasi-nn).
    path: "../../wit/deps/wasi-nn",
    world: "wasi:nn/ml",
});

use wasi::nn::errors::{Error, ErrorCode};
use wasi::nn::graph::{self, ExecutionTarget, GraphEncoding};
use wasi::nn::tensor::{Tensor, TensorType};

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let [model, inputs @ ..] = args.as_slice() else {
        return Err("usage: classify MODEL NAME=INPUT.npy [NAME=INPUT.npy...]".into());
    };
    if inputs.is_empty() {
        return Err("usage: classify MODEL NAME=INPUT.npy [NAME=INPUT.npy...]".into());
    }
    let bytes = std::fs::read(model).map_err(|e| format!("{model}: {e}"))?;
    let encoding = match model.rsplit('.').next() {
        Some("onnx") => GraphEncoding::Onnx,
        Some("tflite") => GraphEncoding::Tensorflowlite,
        _ => GraphEncoding::Autodetect,
    };
    let mut named = Vec::new();
    for spec in inputs {
        let (name, file) = spec
            .split_once('=')
            .filter(|(n, _)| !n.is_empty())
            .ok_or_else(|| format!("{spec}: expected NAME=INPUT.npy"))?;
        let data = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
        let (ty, dims, data) = parse_npy(&data).map_err(|e| format!("{file}: {e}"))?;
        named.push((name.to_string(), Tensor::new(&dims, ty, &data)));
    }

    let graph = graph::load(&[bytes], encoding, ExecutionTarget::Cpu).map_err(nn)?;
    let ctx = graph.init_execution_context().map_err(nn)?;
    for (name, out) in ctx.compute(named).map_err(nn)? {
        let (ty, dims, data) = (out.ty(), out.dimensions(), out.data());
        let mut line = format!("{name}: {}{dims:?}", type_name(ty));
        if ty == TensorType::Fp32 {
            let values: Vec<f32> = data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            // One class per row (the last dimension holds the scores): the index of the
            // largest score, the first one on ties.
            let row = dims.last().map_or(1, |&d| d.max(1) as usize);
            let classes: Vec<usize> = values.chunks(row).map(argmax).collect();
            line += &format!(" classes {classes:?}");
        }
        println!("{line}");
        let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
        println!("{name} bytes: {hex}");
    }
    Ok(())
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// A wasi-nn error resource, read out as `code: message`.
fn nn(e: Error) -> String {
    let code = match e.code() {
        ErrorCode::InvalidArgument => "invalid-argument",
        ErrorCode::InvalidEncoding => "invalid-encoding",
        ErrorCode::Timeout => "timeout",
        ErrorCode::RuntimeError => "runtime-error",
        ErrorCode::UnsupportedOperation => "unsupported-operation",
        ErrorCode::TooLarge => "too-large",
        ErrorCode::NotFound => "not-found",
        ErrorCode::Security => "security",
        ErrorCode::Unknown => "unknown",
    };
    format!("{code}: {}", e.data())
}

fn type_name(ty: TensorType) -> &'static str {
    match ty {
        TensorType::Fp16 => "FP16",
        TensorType::Fp32 => "FP32",
        TensorType::Fp64 => "FP64",
        TensorType::Bf16 => "BF16",
        TensorType::U8 => "U8",
        TensorType::I32 => "I32",
        TensorType::I64 => "I64",
    }
}

/// A C-order .npy file (versions 1 to 3) as a wasi-nn tensor: type, dimensions, LE bytes.
fn parse_npy(b: &[u8]) -> Result<(TensorType, Vec<u32>, Vec<u8>), String> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".into());
    }
    let (len, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        _ if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        _ => return Err("truncated .npy header".into()),
    };
    let header = b
        .get(start..start + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("unreadable .npy header")?;
    let field = |key: &str| {
        header
            .split_once(&format!("'{key}':"))
            .map(|(_, rest)| rest.trim_start())
            .ok_or(format!("the .npy header has no '{key}'"))
    };
    if field("fortran_order")?.starts_with("True") {
        return Err("Fortran-order arrays are not supported".into());
    }
    let descr = field("descr")?.trim_start_matches('\'');
    let descr = &descr[..descr.find('\'').ok_or("bad descr")?];
    let ty = match descr {
        "<f2" => TensorType::Fp16,
        "<f4" => TensorType::Fp32,
        "<f8" => TensorType::Fp64,
        "|u1" | "<u1" => TensorType::U8,
        "<i4" => TensorType::I32,
        "<i8" => TensorType::I64,
        other => return Err(format!("wasi-nn has no tensor type for dtype {other}")),
    };
    let shape = field("shape")?;
    let shape = &shape[1..shape.find(')').ok_or("bad shape")?];
    let dims = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().map_err(|_| format!("bad dimension {s:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((ty, dims, b[start + len..].to_vec()))
}
