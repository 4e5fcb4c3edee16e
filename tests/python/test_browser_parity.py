"""The browser and the command line run the same engine: bit-identical outputs.

scripts/test-browser leaves the worker's digits outputs in tests/artifacts/ (float32 LE,
[450,10], row i = held-out image i run alone). Here `secure-context run` (the same
inference.wasm on wasmtime) runs the same images one by one; every bit must match.
"""
import os
import subprocess

import numpy as np

SAMPLE = range(0, 450, 9)  # 50 images across the set


def test_browser_outputs_are_bit_identical_to_the_cli(repo_root, tmp_path, browser_digits, digits_test_set):
    browser = browser_digits
    x, _ = digits_test_set
    sc = os.environ.get("SC_BIN", str(repo_root / "target" / "release" / "secure-context"))
    for i in SAMPLE:
        np.save(tmp_path / "x.npy", x[i : i + 1])
        out = tmp_path / f"out{i}"
        r = subprocess.run([sc, "run", "--model", str(repo_root / "models" / "digits.onnx"),
                            "--input", f"input={tmp_path / 'x.npy'}", "--out", str(out)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        cli = np.load(out / "probabilities.npy").reshape(10)
        assert cli.view(np.uint32).tolist() == browser[i].view(np.uint32).tolist(), f"image {i}"


def test_the_browser_fallback_build_is_bit_identical_to_the_cli_on_it(repo_root, tmp_path, digits_test_set):
    """Chromium with relaxed SIMD switched off runs the simd128-only engine (scripts/test-browser
    leaves its outputs beside the others); `secure-context --component inference-baseline.wasm`
    runs that same build."""
    path = repo_root / "tests" / "artifacts" / "browser-digits-probabilities-baseline.bin"
    if not path.exists():
        if os.environ.get("SC_ALLOW_SKIP") == "1":
            import pytest

            pytest.skip("run scripts/test-browser first")
        raise AssertionError(f"{path} is missing: run scripts/test-browser first")
    browser = np.fromfile(path, dtype="<f4").reshape(-1, 10)
    x, _ = digits_test_set
    sc = os.environ.get("SC_BIN", str(repo_root / "target" / "release" / "secure-context"))
    baseline = repo_root / "target" / "wasm32-wasip2" / "wasm" / "inference-baseline.wasm"
    for i in SAMPLE:
        np.save(tmp_path / "x.npy", x[i : i + 1])
        out = tmp_path / f"out{i}"
        r = subprocess.run([sc, "--component", str(baseline), "run", "--model", str(repo_root / "models" / "digits.onnx"),
                            "--input", f"input={tmp_path / 'x.npy'}", "--out", str(out)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        cli = np.load(out / "probabilities.npy").reshape(10)
        assert cli.view(np.uint32).tolist() == browser[i].view(np.uint32).tolist(), f"image {i}"
