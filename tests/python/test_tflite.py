"""The engine's TFLite path (tract-tflite) agrees with the reference runtime, ai-edge-litert.

Model: models/tiny-conv.tflite, built without TensorFlow by models/make_tflite_fixture.py.
Binary: $SC_BIN (default target/release/secure-context, relative to the repo root); a
missing binary fails unless SC_ALLOW_SKIP=1, as in test_engine_parity.py.
"""

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType

ENGINES = ["native", "wasm"]
MAX_ABS_DIFF = 1e-5
TIMEOUT_S = 120
MODEL = "tiny-conv.tflite"
INPUT_SHAPE = (1, 8, 8, 1)


@pytest.fixture(scope="module")
def sc_bin(repo_root) -> Path:
    path = Path(os.environ.get("SC_BIN", "target/release/secure-context"))
    if not path.is_absolute():
        path = repo_root / path
    if not (path.is_file() and os.access(path, os.X_OK)):
        msg = f"host CLI not found at {path} (build it with cargo build --release, or set SC_BIN)"
        if os.environ.get("SC_ALLOW_SKIP") == "1":
            pytest.skip(msg)
        pytest.fail(msg + "; set SC_ALLOW_SKIP=1 to skip instead", pytrace=False)
    return path


@pytest.fixture(scope="module")
def model(models_dir) -> Path:
    return models_dir / MODEL


@pytest.fixture(scope="module")
def litert(model):
    """LiteRT with its reference kernels (no XNNPACK delegate), one thread."""
    interp = Interpreter(model_path=str(model), num_threads=1,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()

    def run(x):
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"]).copy()

    run.input, run.output = inp, out
    return run


def _cases():
    """Deterministic inputs: held-out digits, edge cases, and seeded noise."""
    x = np.load(Path(__file__).resolve().parents[2] / "models" / "digits-test" / "x.npy")
    cases = {f"digit{i}": x[i].reshape(INPUT_SHAPE) for i in range(5)}
    cases["zeros"] = np.zeros(INPUT_SHAPE, np.float32)
    cases["ones"] = np.ones(INPUT_SHAPE, np.float32)
    cases["uniform"] = np.random.default_rng(0).uniform(0, 1, INPUT_SHAPE)
    # Out of the training range, negative too: large logits stress the softmax.
    cases["wide"] = np.random.default_rng(1).normal(0, 4, INPUT_SHAPE)
    return {k: np.ascontiguousarray(v, np.float32) for k, v in cases.items()}


CASES = _cases()


def run_cli(sc_bin, repo_root, *args):
    return subprocess.run([str(sc_bin), *map(str, args)], cwd=repo_root,
                          capture_output=True, text=True, timeout=TIMEOUT_S)


def run_model(sc_bin, repo_root, tmp_path, model_path, x, engine):
    x_path = tmp_path / "x.npy"
    np.save(x_path, x)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    r = run_cli(sc_bin, repo_root, "run", "--engine", engine, "--model", model_path,
                "--input", f"input={x_path}", "--out", out_dir)
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    out = out_dir / "probabilities.npy"
    assert out.is_file(), f"CLI did not write {out}; stderr:\n{r.stderr}"
    prob = np.load(out)
    assert prob.dtype == np.float32 and prob.shape == (1, 10)
    return prob, r


def sha256sum(path):
    if shutil.which("sha256sum"):
        out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True,
                             check=True).stdout
        return out.split()[0]
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reference_runtime_sees_the_documented_io(litert, manifest):
    entry = next(m for m in manifest["models"] if m["file"] == MODEL)
    assert entry["format"] == "tflite"
    assert entry["inputs"] == [{"name": litert.input["name"], "dtype": "float32",
                                "shape": [int(d) for d in litert.input["shape"]]}]
    assert entry["outputs"] == [{"name": litert.output["name"], "dtype": "float32",
                                 "shape": [int(d) for d in litert.output["shape"]]}]
    assert litert.input["dtype"] == np.float32 and litert.output["dtype"] == np.float32


def test_reference_runtime_classifies_held_out_digits(litert, digits_test_set):
    # The fixture is a real (if small) classifier, not just random weights.
    x, y = digits_test_set
    pred = np.array([litert(img.reshape(INPUT_SHAPE)).argmax() for img in x])
    assert float((pred == y).mean()) >= 0.95


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_litert(sc_bin, repo_root, tmp_path, model, litert, engine, case):
    x = CASES[case]
    prob, _ = run_model(sc_bin, repo_root, tmp_path, model, x, engine)
    ref = litert(x)
    diff = float(np.abs(prob - ref).max())
    assert diff <= MAX_ABS_DIFF, f"{engine} vs ai-edge-litert on {case}: max abs diff {diff:.3g}"
    assert prob.argmax() == ref.argmax()
    np.testing.assert_allclose(prob.sum(), 1.0, atol=1e-5)


@pytest.mark.parametrize("engine", ENGINES)
def test_describe(sc_bin, repo_root, model, engine):
    r = run_cli(sc_bin, repo_root, "describe", "--engine", engine, model)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "format tflite" in lines, r.stdout
    assert 'input  "input" f32[1,8,8,1]' in lines, r.stdout
    assert 'output "probabilities" f32[1,10]' in lines, r.stdout
    assert sum(line.startswith(("input ", "output ")) for line in lines) == 2, r.stdout


@pytest.mark.parametrize("engine", ENGINES)
def test_sha256_matches_sha256sum(sc_bin, repo_root, tmp_path, model, engine):
    # A .tflite path loads with the explicit `tensorflowlite` encoding.
    want = sha256sum(model)
    d = run_cli(sc_bin, repo_root, "describe", "--engine", engine, model)
    assert d.returncode == 0, d.stderr
    assert f"sha256 {want}" in d.stdout.splitlines(), d.stdout
    _, r = run_model(sc_bin, repo_root, tmp_path, model, CASES["digit0"], engine)
    m = re.search(r"tflite model sha256 ([0-9a-f]{64})", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    assert m.group(1) == want


@pytest.mark.parametrize("engine", ENGINES)
def test_autodetect_without_extension(sc_bin, repo_root, tmp_path, model, litert, engine):
    bare = tmp_path / "tiny-conv"  # no extension: the engine must sniff "TFL3"
    shutil.copyfile(model, bare)
    d = run_cli(sc_bin, repo_root, "describe", "--engine", engine, bare)
    assert d.returncode == 0, d.stderr
    assert "format tflite" in d.stdout.splitlines(), d.stdout
    assert f"sha256 {sha256sum(model)}" in d.stdout.splitlines(), d.stdout
    x = CASES["digit1"]
    prob, _ = run_model(sc_bin, repo_root, tmp_path, bare, x, engine)
    assert float(np.abs(prob - litert(x)).max()) <= MAX_ABS_DIFF


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", ["truncated.tflite", "truncated"])
def test_truncated_flatbuffer_is_rejected(sc_bin, repo_root, tmp_path, model, engine, name):
    # The header (with "TFL3") survives, so the extensionless copy is still sniffed as
    # TFLite; the flatbuffer verifier must then reject the offsets that point past the end.
    data = model.read_bytes()
    bad = tmp_path / name
    bad.write_bytes(data[:len(data) // 2])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    r = run_cli(sc_bin, repo_root, "run", "--engine", engine, "--model", bad, "--out", out_dir)
    assert r.returncode != 0, f"truncated model accepted; stdout:\n{r.stdout}"
    assert "error: invalid-argument: " in r.stderr, r.stderr
    assert "TFLite" in r.stderr, r.stderr
    assert not any(out_dir.iterdir())


@pytest.mark.parametrize("engine", ENGINES)
def test_nchw_input_is_rejected(sc_bin, repo_root, tmp_path, model, engine):
    # The ONNX digits model takes NCHW; feeding that layout here must fail clearly.
    x_path = tmp_path / "nchw.npy"
    np.save(x_path, np.zeros((1, 1, 8, 8), np.float32))
    r = run_cli(sc_bin, repo_root, "run", "--engine", engine, "--model", model,
                "--input", f"input={x_path}")
    assert r.returncode != 0
    assert ('error: invalid-argument: input "input": expected f32[1,8,8,1], got f32[1,1,8,8]'
            in r.stderr), r.stderr
