#!/usr/bin/env python3
"""onnxruntime (1 intra-op thread) load time and latency for one model, as JSON.

Inputs follow onnx's backend runner: arange(n)/n, free dimensions set to 1 -- the same inputs
`secure-context bench` gives the engine -- except those given as `--input NAME=FILE.npy` (the
same files `secure-context bench --input` reads).
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort

DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
          "tensor(int32)": np.int32, "tensor(uint8)": np.uint8}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy")
    args = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    t0 = time.perf_counter()
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - t0) * 1e3
    given = dict(spec.split("=", 1) for spec in args.input)
    feeds = {}
    for i in sess.get_inputs():
        if i.name in given:
            feeds[i.name] = np.load(given.pop(i.name))
            continue
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        n = int(np.prod(shape))
        feeds[i.name] = (np.arange(n).reshape(shape) / n).astype(DTYPES[i.type])
    if given:
        raise SystemExit(f"ort_bench.py: the model has no input {sorted(given)}")
    t0 = time.perf_counter()
    sess.run(None, feeds)
    first_ms = (time.perf_counter() - t0) * 1e3
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    pick = lambda q: times[round((len(times) - 1) * q)]
    print(json.dumps({"load_ms": load_ms, "first_ms": first_ms, "median_ms": pick(0.5), "p95_ms": pick(0.95)}))


if __name__ == "__main__":
    main()
