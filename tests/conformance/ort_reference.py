#!/usr/bin/env python3
"""onnxruntime's own count on the ONNX node suite, by `secure-context conformance`'s rule.

Every case (`model.onnx` + `test_data_set_*/{input,output}_*.pb`) runs through onnxruntime's
CPU provider; inputs are read as onnx's runner reads them (tensor, sequence or optional, by the
model's input type). An output passes when it has the expected element type and shape and
- floats (float16, bfloat16, float32, float64 and the float8 types, compared as float64):
  |expected - actual| <= atol + rtol * |expected|, NaN equals NaN, infinities equal;
- everything else (integers, 4-bit, bool, strings): exactly equal;
- sequences: the same length, element by element; optionals: both empty or both equal.
This is `host/src/compare.rs`'s rule (rtol 1e-3, atol 1e-7), so the two counts compare.

Usage: ort_reference.py SUITE_DIR [--json OUT.json] [--filter SUBSTRING]
Ends with `onnxruntime X.Y.Z: N passed, M failed`.
"""
import argparse
import ctypes
import json
import os
import sys

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

RTOL, ATOL = 1e-3, 1e-7
FLOATS = {
    np.dtype(t)
    for t in (
        np.float16,
        np.float32,
        np.float64,
        ml_dtypes.bfloat16,
        ml_dtypes.float8_e4m3fn,
        ml_dtypes.float8_e4m3fnuz,
        ml_dtypes.float8_e5m2,
        ml_dtypes.float8_e5m2fnuz,
        ml_dtypes.float8_e8m0fnu,
        ml_dtypes.float4_e2m1fn,
    )
}


def read_value(path, type_proto):
    with open(path, "rb") as f:
        data = f.read()
    kind = type_proto.WhichOneof("value")
    if kind == "sequence_type":
        seq = onnx.SequenceProto()
        seq.ParseFromString(data)
        return numpy_helper.to_list(seq)
    if kind == "optional_type":
        opt = onnx.OptionalProto()
        opt.ParseFromString(data)
        return numpy_helper.to_optional(opt)
    t = onnx.TensorProto()
    t.ParseFromString(data)
    return numpy_helper.to_array(t)


def mismatch(want, got):
    """None when `got` matches `want`, else why not."""
    if isinstance(want, list):
        if not isinstance(got, list):
            return f"expected a sequence, got {type(got).__name__}"
        if len(want) != len(got):
            return f"sequence length: expected {len(want)}, got {len(got)}"
        for i, (w, g) in enumerate(zip(want, got)):
            why = mismatch(w, g)
            if why:
                return f"element {i}: {why}"
        return None
    if want is None or got is None:
        return None if want is None and got is None else "optional: one is empty"
    got = np.asarray(got)
    if want.dtype != got.dtype:
        return f"element type: expected {want.dtype}, got {got.dtype}"
    if want.shape != got.shape:
        return f"shape: expected {want.shape}, got {got.shape}"
    if want.dtype in FLOATS:
        w, g = want.astype(np.float64), got.astype(np.float64)
        with np.errstate(invalid="ignore"):
            diff = np.abs(w - g)
        nan = np.isnan(w) | np.isnan(g)
        inf = ~nan & (np.isinf(w) | np.isinf(g))
        ok = np.where(nan, np.isnan(w) & np.isnan(g), np.where(inf, w == g, diff <= ATOL + RTOL * np.abs(w)))
        bad = int((~ok).sum())
        return f"{bad} of {w.size} values differ" if bad else None
    bad = int((want != got).sum()) if want.size else 0
    return f"{bad} of {want.size} values differ" if bad else None


# Element types numpy has no dtype of its own for: onnxruntime's Python API takes and gives them
# only as OrtValues of raw bytes (in the TensorProto's packed layout).
RAW_TYPES = {
    onnx.TensorProto.BFLOAT16,
    onnx.TensorProto.FLOAT8E4M3FN,
    onnx.TensorProto.FLOAT8E4M3FNUZ,
    onnx.TensorProto.FLOAT8E5M2,
    onnx.TensorProto.FLOAT8E5M2FNUZ,
    onnx.TensorProto.FLOAT8E8M0,
    onnx.TensorProto.FLOAT4E2M1,
    onnx.TensorProto.INT4,
    onnx.TensorProto.UINT4,
    onnx.TensorProto.INT2,
    onnx.TensorProto.UINT2,
}
ORT_TYPE_NAMES = {
    f"tensor({onnx.TensorProto.DataType.Name(t).lower()})": t for t in onnx.TensorProto.DataType.values()
}


def elem_type(value_info):
    t = value_info.type
    return t.tensor_type.elem_type if t.WhichOneof("value") == "tensor_type" else None


def to_ort_value(array, onnx_type):
    raw = numpy_helper.from_array(array).raw_data
    v = ort.OrtValue.ortvalue_from_shape_and_type(list(array.shape), onnx_type)
    if raw:
        ctypes.memmove(v.data_ptr(), raw, len(raw))
    return v


def from_ort_value(v):
    t = onnx.TensorProto()
    t.data_type = ORT_TYPE_NAMES[v.data_type()]
    t.dims.extend(v.shape())
    t.raw_data = ctypes.string_at(v.data_ptr(), v.tensor_size_in_bytes()) if v.tensor_size_in_bytes() else b""
    return numpy_helper.to_array(t)


def run(sess, inputs, outputs, feeds):
    if not any(elem_type(x) in RAW_TYPES for x in list(inputs) + list(outputs)):
        return sess.run(None, feeds)
    ort_feeds = {i.name: to_ort_value(feeds[i.name], elem_type(i)) for i in inputs if i.name in feeds}
    got = sess.run_with_ort_values([o.name for o in outputs], ort_feeds)
    return [from_ort_value(v) for v in got]


def numbered(d, prefix):
    files = [f for f in os.listdir(d) if f.startswith(prefix + "_") and f.endswith(".pb")]
    return [os.path.join(d, f) for f in sorted(files, key=lambda f: int(f[len(prefix) + 1 : -3]))]


def run_case(case):
    model = onnx.load(os.path.join(case, "model.onnx"))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4
    try:
        sess = ort.InferenceSession(os.path.join(case, "model.onnx"), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - any refusal is a failure with its reason
        return f"load: {str(e).splitlines()[0][:300]}"
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    outputs = list(model.graph.output)
    sets = sorted(d for d in os.listdir(case) if d.startswith("test_data_set"))
    if not sets:
        return "no test_data_set_* directory"
    for s in sets:
        d = os.path.join(case, s)
        feeds = {}
        for i, p in enumerate(numbered(d, "input")):
            feeds[inputs[i].name] = read_value(p, inputs[i].type)
        try:
            got = run(sess, inputs, outputs, feeds)
        except Exception as e:  # noqa: BLE001
            return f"compute: {str(e).splitlines()[0][:300]}"
        want = [read_value(p, outputs[i].type) for i, p in enumerate(numbered(d, "output"))]
        if len(want) != len(got):
            return f"expected {len(want)} outputs, got {len(got)}"
        for i, (w, g) in enumerate(zip(want, got)):
            why = mismatch(w, g)
            if why:
                return f"output {i} \"{outputs[i].name}\": {why}"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("suite")
    ap.add_argument("--json")
    ap.add_argument("--filter")
    a = ap.parse_args()
    cases = sorted(
        c for c in os.listdir(a.suite) if os.path.isfile(os.path.join(a.suite, c, "model.onnx"))
    )
    if a.filter:
        cases = [c for c in cases if a.filter in c]
    records, passed = [], 0
    for c in cases:
        try:
            why = run_case(os.path.join(a.suite, c))
        except Exception as e:  # noqa: BLE001 - a case the reader itself cannot take
            why = f"error: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        passed += why is None
        records.append({"case": c, "onnxruntime": "pass" if why is None else why})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(records, f, indent=1)
    print(f"onnxruntime {ort.__version__}: {passed} passed, {len(cases) - passed} failed")


if __name__ == "__main__":
    sys.exit(main())
