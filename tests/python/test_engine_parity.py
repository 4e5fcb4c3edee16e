"""The native host CLI (tract) gives the same answers as onnxruntime on digits.onnx.

Binary: $SC_BIN (default target/release/secure-context, relative to the repo root).
A missing binary is a failure, not a skip, unless SC_ALLOW_SKIP=1 — otherwise a
broken build could make CI go green by silently skipping the parity check.
"""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

MIN_ACCURACY = 0.97
MAX_ABS_DIFF = 1e-5
TIMEOUT_S = 120


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


def run_cli(sc_bin, repo_root, x_path, out_dir):
    return subprocess.run(
        [str(sc_bin), "run", "--model", "models/digits.onnx",
         "--input", f"input={x_path}", "--out", str(out_dir)],
        cwd=repo_root, capture_output=True, text=True, timeout=TIMEOUT_S,
    )


def run_and_load(sc_bin, repo_root, tmp_path, x):
    x_path = tmp_path / "x.npy"
    np.save(x_path, x)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    r = run_cli(sc_bin, repo_root, x_path, out_dir)
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    out = out_dir / "probabilities.npy"
    assert out.is_file(), f"CLI did not write {out}; stderr:\n{r.stderr}"
    return np.load(out)


def test_full_test_set_matches_onnxruntime(sc_bin, repo_root, tmp_path, digits_test_set,
                                           ort_digits):
    x, y = digits_test_set
    prob = run_and_load(sc_bin, repo_root, tmp_path, x)
    assert prob.dtype == np.float32
    assert prob.shape == (450, 10)
    acc = float((prob.argmax(axis=1) == y).mean())
    assert acc >= MIN_ACCURACY, f"held-out accuracy via CLI {acc:.4f}"
    ref = ort_digits.run(["probabilities"], {"input": x})[0]
    diff = float(np.abs(prob - ref).max())
    assert diff <= MAX_ABS_DIFF, f"max abs diff vs onnxruntime {diff:.3g}"


def test_single_image_matches_onnxruntime(sc_bin, repo_root, tmp_path, digits_test_set,
                                          ort_digits):
    # batch=1 exercises the symbolic batch dim at its smallest value, which is
    # where a shape specialised at load time would first go wrong.
    x = np.ascontiguousarray(digits_test_set[0][:1])
    prob = run_and_load(sc_bin, repo_root, tmp_path, x)
    assert prob.dtype == np.float32 and prob.shape == (1, 10)
    ref = ort_digits.run(["probabilities"], {"input": x})[0]
    assert float(np.abs(prob - ref).max()) <= MAX_ABS_DIFF
    assert prob.argmax() == digits_test_set[1][0]


def test_rejects_wrong_shaped_input(sc_bin, repo_root, tmp_path):
    x_path = tmp_path / "flat.npy"
    np.save(x_path, np.zeros((1, 64), np.float32))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    r = run_cli(sc_bin, repo_root, x_path, out_dir)
    assert r.returncode != 0, f"wrong-shaped input accepted; stdout:\n{r.stdout}"
    # e.g. `input "input": expected f32[?,1,8,8], got f32[1,64]`
    assert 'input "input"' in r.stderr, r.stderr
    assert "expected" in r.stderr, r.stderr
    assert "got f32[1,64]" in r.stderr, r.stderr
    assert not (out_dir / "probabilities.npy").exists()
