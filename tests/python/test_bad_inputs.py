"""Bad input gets a clear error and changes nothing -- on the component (wasm) and natively.

Each case runs `secure-context run` and asserts the wasi-nn error code and the message a person
acts on. Fixture models are built with onnx.helper at test time.
"""
import os
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

ENGINES = ["wasm", "native"]


def sc_bin(root):
    return os.environ.get("SC_BIN", str(root / "target" / "release" / "secure-context"))


def run(root, *args, engine="wasm", timeout=120):
    cmd = [sc_bin(root), "run", "--engine", engine, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def save(model, path):
    onnx.save(model, str(path))
    return path


def model_of(nodes, inputs, outputs, inits=(), opset=13):
    graph = helper.make_graph(nodes, "fixture", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


@pytest.fixture
def digits(repo_root):
    return repo_root / "models" / "digits.onnx"


def npy(tmp_path, name, array):
    p = tmp_path / f"{name}.npy"
    np.save(p, array)
    return p


def expect_error(result, code, *fragments):
    assert result.returncode != 0, f"expected failure, got success: {result.stdout}"
    err = result.stderr
    assert f"error: {code}: " in err, err
    for f in fragments:
        assert f in err, f"{f!r} not in {err!r}"


@pytest.mark.parametrize("engine", ENGINES)
class TestBadModels:
    def test_garbage_bytes(self, repo_root, tmp_path, engine):
        p = tmp_path / "garbage.onnx"
        p.write_bytes(b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" * 10)
        expect_error(run(repo_root, "--model", p, engine=engine), "invalid-argument", "not a valid ONNX model")

    def test_truncated_model(self, repo_root, tmp_path, digits, engine):
        p = tmp_path / "truncated.onnx"
        p.write_bytes(digits.read_bytes()[:5000])
        expect_error(run(repo_root, "--model", p, engine=engine), "invalid-argument", "not a valid ONNX model")

    def test_empty_model(self, repo_root, tmp_path, engine):
        p = tmp_path / "empty.onnx"
        p.write_bytes(b"")
        expect_error(run(repo_root, "--model", p, engine=engine), "invalid-argument", "model is empty")

    def test_unrecognized_format(self, repo_root, tmp_path, engine):
        p = tmp_path / "model.bin"
        p.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 64)
        expect_error(run(repo_root, "--model", p, engine=engine), "invalid-encoding", "neither an ONNX model nor a TFLite")

    def test_unknown_operator(self, repo_root, tmp_path, engine):
        m = model_of(
            [helper.make_node("FrobnicateTensor", ["x"], ["y"], name="frob")],
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        )
        p = save(m, tmp_path / "unknown_op.onnx")
        expect_error(run(repo_root, "--model", p, engine=engine), "unsupported-operation", "FrobnicateTensor", 'node "frob"')

    def test_intermediate_too_large(self, repo_root, tmp_path, engine):
        # y = x[:, None] * x[None, :] -- 20000 x 20000 floats from a 20000-float input.
        ax0 = helper.make_tensor("ax0", TensorProto.INT64, [1], [0])
        ax1 = helper.make_tensor("ax1", TensorProto.INT64, [1], [1])
        m = model_of(
            [
                helper.make_node("Unsqueeze", ["x", "ax1"], ["col"]),
                helper.make_node("Unsqueeze", ["x", "ax0"], ["row"]),
                helper.make_node("Mul", ["col", "row"], ["y"], name="outer"),
            ],
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "n"])],
            inits=[ax0, ax1],
        )
        p = save(m, tmp_path / "outer.onnx")
        x = npy(tmp_path, "x", np.ones(20000, np.float32))
        expect_error(run(repo_root, "--model", p, "--input", f"x={x}", engine=engine), "too-large", "more than the limit")
        small = npy(tmp_path, "small", np.arange(3, dtype=np.float32))
        ok = run(repo_root, "--model", p, "--input", f"x={small}", engine=engine)
        assert ok.returncode == 0, ok.stderr
        assert "y: f32[3,3]" in ok.stdout


@pytest.mark.parametrize("engine", ENGINES)
class TestBadInputs:
    def test_wrong_shape(self, repo_root, tmp_path, digits, engine):
        x = npy(tmp_path, "x", np.zeros((1, 64), np.float32))
        expect_error(run(repo_root, "--model", digits, "--input", f"input={x}", engine=engine),
                     "invalid-argument", 'input "input": expected f32[batch,1,8,8], got f32[1,64]')

    def test_wrong_fixed_dim(self, repo_root, tmp_path, digits, engine):
        x = npy(tmp_path, "x", np.zeros((1, 1, 8, 9), np.float32))
        expect_error(run(repo_root, "--model", digits, "--input", f"input={x}", engine=engine),
                     "invalid-argument", 'input "input": expected f32[batch,1,8,8], got f32[1,1,8,9]')

    def test_wrong_dtype(self, repo_root, tmp_path, digits, engine):
        x = npy(tmp_path, "x", np.zeros((1, 1, 8, 8), np.int64))
        expect_error(run(repo_root, "--model", digits, "--input", f"input={x}", engine=engine),
                     "invalid-argument", 'input "input": expected f32[batch,1,8,8], got i64[1,1,8,8]')

    def test_wrong_name(self, repo_root, tmp_path, digits, engine):
        x = npy(tmp_path, "x", np.zeros((1, 1, 8, 8), np.float32))
        expect_error(run(repo_root, "--model", digits, "--input", f"image={x}", engine=engine),
                     "not-found", 'unknown input "image"', '"input" f32[batch,1,8,8]')

    def test_missing_input(self, repo_root, tmp_path, engine):
        m = model_of(
            [helper.make_node("Add", ["a", "b"], ["c"])],
            [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2]),
             helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("c", TensorProto.FLOAT, [2])],
        )
        p = save(m, tmp_path / "add.onnx")
        a = npy(tmp_path, "a", np.ones(2, np.float32))
        expect_error(run(repo_root, "--model", p, "--input", f"a={a}", engine=engine),
                     "invalid-argument", 'missing input "b" (f32[2])')

    def test_absurd_dimensions(self, repo_root, tmp_path, digits, engine):
        # A header claiming 2^24 images: refused as too-large before any allocation.
        p = tmp_path / "huge.npy"
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (16777216, 1, 8, 8), }"
        header += " " * (118 - len(header)) + "\n"
        p.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
        r = run(repo_root, "--model", digits, "--input", f"input={p}", engine=engine)
        assert r.returncode != 0
        # The .npy reader sees the missing data first; either way nothing is allocated or run.
        assert "error:" in r.stderr

    def test_out_of_range_narrow_type(self, repo_root, tmp_path, engine):
        # int8 input travels as i32 in wasi-nn and is range-checked, never wrapped.
        m = model_of(
            [helper.make_node("Identity", ["x"], ["y"])],
            [helper.make_tensor_value_info("x", TensorProto.INT8, [2])],
            [helper.make_tensor_value_info("y", TensorProto.INT8, [2])],
        )
        p = save(m, tmp_path / "i8.onnx")
        bad = npy(tmp_path, "bad", np.array([1, 300], np.int32))
        expect_error(run(repo_root, "--model", p, "--input", f"x={bad}", engine=engine),
                     "invalid-argument", 'input "x": value 300 does not fit in i8')
        good = npy(tmp_path, "good", np.array([-128, 127], np.int32))
        out = tmp_path / "out"
        r = run(repo_root, "--model", p, "--input", f"x={good}", "--out", out, engine=engine)
        assert r.returncode == 0, r.stderr
        assert np.load(out / "y.npy").tolist() == [-128, 127]

    def test_nan_and_inf_compute_without_trapping(self, repo_root, tmp_path, digits, engine):
        # NaN/Inf are values ONNX defines (IsNaN, IsInf): the engine computes, never traps.
        x = np.zeros((2, 1, 8, 8), np.float32)
        x[0, 0, 0, 0] = np.nan
        x[1, 0, 0, 0] = np.inf
        out = tmp_path / "out"
        r = run(repo_root, "--model", digits, "--input", f"input={npy(tmp_path, 'x', x)}", "--out", out, engine=engine)
        assert r.returncode == 0, r.stderr
        assert np.load(out / "probabilities.npy").shape == (2, 10)


@pytest.mark.parametrize("engine", ENGINES)
def test_hostile_output_names_stay_in_out_dir(repo_root, tmp_path, engine):
    m = model_of(
        [helper.make_node("Identity", ["x"], ["../../escape"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("../../escape", TensorProto.FLOAT, [1])],
    )
    p = save(m, tmp_path / "names.onnx")
    out = tmp_path / "a" / "b" / "out"
    r = run(repo_root, "--model", p, "--input", f"x={npy(tmp_path, 'x', np.ones(1, np.float32))}", "--out", out, engine=engine)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == [".._.._escape.npy"]
    assert not (tmp_path / "escape.npy").exists()


def test_timeout_stops_the_component(repo_root, tmp_path):
    # A 1 ms budget on a real convolutional model: the deadline traps the guest and the host
    # reports wasi-nn's timeout code instead of hanging or crashing.
    model = repo_root / "build" / "conformance" / "light" / "light_resnet50" / "model.onnx"
    if not model.exists():
        pytest.fail("run tests/conformance/prepare_suites.py build/conformance first")
    r = subprocess.run([sc_bin(repo_root), "--timeout-ms", "1", "run", "--model", str(model)],
                       capture_output=True, text=True, timeout=300)
    expect_error(r, "timeout", "longer than 1 ms")
