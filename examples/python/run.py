"""Run a model through the engine component from Python, with the `wasmtime` package (PyPI).

    python3 examples/python/run.py --model models/digits.onnx \
        --input input=models/digits-test/x.npy --out /tmp/out-py

The engine is target/wasm32-wasip2/wasm/inference.wasm, driven only through its standard
wasi:nn exports (graph.load, init-execution-context, compute, tensor data), exactly as the
`secure-context run` host does. Each output is written to DIR/NAME.npy; errors print as
`error: <wasi-nn code>: <message>` and exit with status 1.
"""

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import wasmtime
import wasmtime.component as wc

NN = "0.2.0-rc-2024-10-28"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_ENGINE = REPO / "target" / "wasm32-wasip2" / "wasm" / "inference.wasm"

# wasi-nn tensor-type <-> numpy dtype (little-endian, as wasi-nn tensor data is).
# BF16 has no numpy dtype: it is carried as its raw 16-bit words. A copy of the tables in
# components/nn-tables (`secure-context tables --json`), kept here so this file stands alone;
# tests/bindings checks it.
DTYPES = {"FP16": "<f2", "FP32": "<f4", "FP64": "<f8", "BF16": "<u2",
          "U8": "u1", "I32": "<i4", "I64": "<i8"}
TENSOR_TYPES = {np.dtype(v): k for k, v in DTYPES.items() if k != "BF16"}


class NnError(Exception):
    """A wasi-nn `error` resource, read out: its code and its message."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code


class Engine:
    """One instance of the engine component, called through wasi:nn."""

    def __init__(self, component: Path = DEFAULT_ENGINE):
        config = wasmtime.Config()
        config.cache = True  # the first compile takes ~20 s; later starts load it from disk
        engine = wasmtime.Engine(config)
        linker = wc.Linker(engine)
        linker.add_wasip2()  # the engine imports only WASI p2 (clocks, random, stdio...)
        self.store = wasmtime.Store(engine)
        self.store.set_wasi(wasmtime.WasiConfig())  # no files, no env, no args
        self.instance = linker.instantiate(self.store, wc.Component.from_file(engine, str(component)))

    def _call(self, interface: str, name: str, *args):
        idx = self.instance.get_export_index(self.store, f"wasi:nn/{interface}@{NN}")
        func = self.instance.get_func(self.store, self.instance.get_export_index(self.store, name, idx))
        result = func(self.store, *args)
        func.post_return(self.store)
        return result

    def _ok(self, result):
        """Unwraps a `result<T, error>`, turning the error resource into NnError."""
        # wasmtime-py returns a tagged Variant only when ok and err lift to the same Python
        # class (both resources); otherwise the bare value, and then a resource is the error.
        if isinstance(result, wc.Variant):
            if result.tag == "ok":
                return result.payload
            err = result.payload
        elif isinstance(result, wc.ResourceAny):
            err = result
        else:
            return result
        code = self._call("errors", "[method]error.code", err)
        message = self._call("errors", "[method]error.data", err)
        err.drop(self.store)
        raise NnError(code, message)

    def load(self, model: bytes, encoding: str = "onnx"):
        return self._ok(self._call("graph", "load", [model], encoding, "cpu"))

    def run(self, graph, inputs: dict) -> dict:
        """Runs one inference: {name: ndarray} in, {name: ndarray} out."""
        ctx = self._ok(self._call("graph", "[method]graph.init-execution-context", graph))
        named = []
        for name, array in inputs.items():
            ty = TENSOR_TYPES.get(array.dtype.newbyteorder("<"))
            if ty is None:
                raise ValueError(f"input {name!r}: wasi-nn has no tensor type for dtype {array.dtype}")
            data = np.ascontiguousarray(array, dtype=DTYPES[ty]).tobytes()
            tensor = self._call("tensor", "[constructor]tensor", list(array.shape), ty, data)
            named.append((name, tensor))
        outputs = self._ok(self._call("inference", "[method]graph-execution-context.compute", ctx, named))
        result = {}
        for name, tensor in outputs:
            dims = self._call("tensor", "[method]tensor.dimensions", tensor)
            ty = self._call("tensor", "[method]tensor.ty", tensor)
            data = self._call("tensor", "[method]tensor.data", tensor)
            result[name] = np.frombuffer(data, dtype=DTYPES[ty]).reshape(dims)
            tensor.drop(self.store)
        ctx.drop(self.store)
        return result


def encoding_for(path: Path) -> str:
    return {".onnx": "onnx", ".tflite": "tensorflowlite"}.get(path.suffix.lower(), "autodetect")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--input", action="append", required=True, metavar="NAME=FILE.npy")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--engine", type=Path, default=DEFAULT_ENGINE, help="the engine component")
    args = ap.parse_args(argv)

    if not args.engine.is_file():
        ap.error(f"{args.engine} not found: build the engine first (scripts/build)")
    inputs = {}
    for spec in args.input:
        name, sep, file = spec.partition("=")
        if not sep or not name:
            ap.error(f"--input {spec!r}: expected NAME=FILE.npy")
        try:
            inputs[name] = np.load(file)
        except (OSError, ValueError) as e:
            ap.error(f"--input {spec!r}: {e}")

    try:
        engine = Engine(args.engine)
        graph = engine.load(args.model.read_bytes(), encoding_for(args.model))
        outputs = engine.run(graph, inputs)
    except (NnError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, array in outputs.items():
        # Same file naming as `secure-context run`.
        np.save(args.out / f"{re.sub(r'[^A-Za-z0-9._-]', '_', name)}.npy", array)
        flat = array.reshape(array.shape[0], -1) if array.ndim > 1 else array.reshape(1, -1)
        print(f"{name}: {array.dtype}{list(array.shape)}; first row argmax {int(np.argmax(flat[0]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
