"""Operators and types the engine adds to tract (components/inference/src/onnx_ops/), on small
models generated here with onnx.helper, through the host CLI on both engines (the component and
native), against onnxruntime. The ONNX node suite covers each operator alone; these cover what
exporters emit around them: statically known sequences rewritten into tensors, blocked 4-bit
weights, float8 outputs.

Binary: $SC_BIN (default target/release/secure-context); missing is a failure unless
SC_ALLOW_SKIP=1 (see test_engine_parity.py).
"""

import os
import subprocess
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

TIMEOUT_S = 120
ENGINES = ["wasm", "native"]


@pytest.fixture(scope="module")
def sc_bin(repo_root) -> Path:
    path = Path(os.environ.get("SC_BIN", "target/release/secure-context"))
    if not path.is_absolute():
        path = repo_root / path
    if not (path.is_file() and os.access(path, os.X_OK)):
        msg = f"host CLI not found at {path}"
        if os.environ.get("SC_ALLOW_SKIP") == "1":
            pytest.skip(msg)
        pytest.fail(msg + "; set SC_ALLOW_SKIP=1 to skip instead", pytrace=False)
    return path


def run(sc_bin, repo_root, tmp_path, model, inputs, engine):
    model_path = tmp_path / "model.onnx"
    onnx.save(model, model_path)
    args = [str(sc_bin), "run", "--model", str(model_path), "--engine", engine]
    for name, value in inputs.items():
        p = tmp_path / f"{name}.npy"
        np.save(p, value)
        args += ["--input", f"{name}={p}"]
    out = tmp_path / f"out-{engine}"
    out.mkdir()
    r = subprocess.run(args + ["--out", str(out)], cwd=repo_root, capture_output=True, text=True,
                       timeout=TIMEOUT_S)
    assert r.returncode == 0, f"{engine}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return {o.name: np.load(out / f"{o.name}.npy") for o in model.graph.output}


def reference(model, inputs):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in model.graph.output], s.run(None, inputs)))


def model_of(nodes, inputs, outputs, initializers=(), opset=21):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10
    onnx.checker.check_model(m)
    return m


@pytest.mark.parametrize("engine", ENGINES)
def test_static_sequences_become_tensors(sc_bin, repo_root, tmp_path, engine):
    # torch.stack([a, b]) and torch.split(x, [1, 2], dim=1)[1] as exporters write them.
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "b"], ["s"]),
        helper.make_node("ConcatFromSequence", ["s"], ["stacked"], axis=0, new_axis=1),
        helper.make_node("SequenceLength", ["s"], ["n"]),
        helper.make_node("SplitToSequence", ["a", "sizes"], ["parts"], axis=1),
        helper.make_node("SequenceAt", ["parts", "one"], ["second"]),
    ]
    model = model_of(
        nodes,
        [helper.make_tensor_value_info("a", f, [2, 3]), helper.make_tensor_value_info("b", f, [2, 3])],
        [helper.make_tensor_value_info("stacked", f, [2, 2, 3]),
         helper.make_tensor_value_info("n", TensorProto.INT64, []),
         helper.make_tensor_value_info("second", f, [2, 2])],
        [numpy_helper.from_array(np.array([1, 2], np.int64), "sizes"),
         numpy_helper.from_array(np.array(1, np.int64), "one")],
    )
    rng = np.random.default_rng(1)
    inputs = {"a": rng.standard_normal((2, 3), np.float32), "b": rng.standard_normal((2, 3), np.float32)}
    got, want = run(sc_bin, repo_root, tmp_path, model, inputs, engine), reference(model, inputs)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.parametrize("engine", ENGINES)
def test_blocked_int4_weights(sc_bin, repo_root, tmp_path, engine):
    # A 4-bit weight matrix with one scale per block of 4 rows: DequantizeLinear, then MatMul.
    rng = np.random.default_rng(2)
    w = rng.integers(-8, 8, (8, 3)).astype(ml_dtypes.int4)
    scale = rng.uniform(0.01, 0.1, (2, 3)).astype(np.float32)
    nodes = [
        helper.make_node("DequantizeLinear", ["w", "scale"], ["wf"], axis=0, block_size=4),
        helper.make_node("MatMul", ["x", "wf"], ["y"]),
    ]
    model = model_of(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(scale, "scale")],
    )
    inputs = {"x": rng.standard_normal((2, 8), np.float32)}
    got, want = run(sc_bin, repo_root, tmp_path, model, inputs, engine), reference(model, inputs)
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_float8_output_rides_in_f32(sc_bin, repo_root, tmp_path, engine):
    # QuantizeLinear to float8 e4m3fn: the output comes back as f32 values on the float8 grid.
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"])]
    model = model_of(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])],
        [helper.make_tensor_value_info("q", TensorProto.FLOAT8E4M3FN, [6])],
        [numpy_helper.from_array(np.array(0.5, np.float32), "scale"),
         helper.make_tensor("zp", TensorProto.FLOAT8E4M3FN, [], [0])],
    )
    x = np.array([0.1, -3.3, 100.0, 1e6, -0.0, 7.77], np.float32)
    got = run(sc_bin, repo_root, tmp_path, model, {"x": x}, engine)["q"]
    # onnxruntime hands float8 back as its bytes.
    want = reference(model, {"x": x})["q"].view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
