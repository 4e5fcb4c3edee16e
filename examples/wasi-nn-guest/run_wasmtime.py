"""Run a wasi:cli command component with the `wasmtime` package (PyPI), like `wasmtime run`.

    python3 examples/wasi-nn-guest/run_wasmtime.py [--dir DIR]... COMPONENT [ARGS...]

Used for the wasi-nn guest composed with the engine (build/bindings/guest/classify.wasm): the
composition imports only WASI p2, so Wasmtime's own WASI is all it needs, no wasi-nn on the host.
Each --dir is preopened read-only under its own name (default: the current directory as `.`);
stdout and stderr are inherited, and the exit status is the command's.
"""

import argparse
import sys

import wasmtime
import wasmtime.component as wc

RUN = "wasi:cli/run@0.2.0"  # what Rust's wasm32-wasip2 std exports for `fn main`


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", action="append", default=[], help="a directory to preopen (read-only)")
    ap.add_argument("component")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)

    config = wasmtime.Config()
    config.cache = True  # compiling the engine takes ~20 s once
    engine = wasmtime.Engine(config)
    linker = wc.Linker(engine)
    linker.add_wasip2()
    wasi = wasmtime.WasiConfig()
    wasi.argv = [a.component, *a.args]
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    for d in a.dir or ["."]:
        wasi.preopen_dir(d, d, fs_mutable=False)
    store = wasmtime.Store(engine)
    store.set_wasi(wasi)
    instance = linker.instantiate(store, wc.Component.from_file(engine, a.component))
    run_idx = instance.get_export_index(store, RUN)
    func_idx = run_idx and instance.get_export_index(store, "run", run_idx)
    if func_idx is None:
        print(f"error: {a.component} exports no {RUN}: not a command", file=sys.stderr)
        return 2
    func = instance.get_func(store, func_idx)
    try:
        result = func(store)
    except wasmtime.ExitTrap as e:  # std::process::exit / ExitCode from main
        return e.code
    func.post_return(store)
    # `run: func() -> result`: the bare None is ok, a tagged `err` is failure.
    return 1 if isinstance(result, wc.Variant) and result.tag == "err" else 0


if __name__ == "__main__":
    sys.exit(main())
