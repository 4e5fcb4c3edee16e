"""Shared fixtures for the Python test suite (run from anywhere: pytest tests/python)."""

import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def models_dir(repo_root) -> Path:
    return repo_root / "models"


@pytest.fixture(scope="session")
def manifest(models_dir) -> dict:
    return json.loads((models_dir / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def digits_test_set(models_dir):
    import numpy as np

    return (np.load(models_dir / "digits-test" / "x.npy"),
            np.load(models_dir / "digits-test" / "y.npy"))


@pytest.fixture(scope="session")
def ort_digits(models_dir):
    """onnxruntime session for digits.onnx, pinned to one thread so its float
    summation order (and so its output) is reproducible run to run."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(models_dir / "digits.onnx"), so,
                                providers=["CPUExecutionProvider"])


@pytest.fixture(scope="session")
def browser_digits(repo_root):
    """The browser worker's digits outputs, left by scripts/test-browser: float32 [450, 10], row i
    = held-out image i run alone."""
    import os

    import numpy as np

    path = repo_root / "tests" / "artifacts" / "browser-digits-probabilities.bin"
    if not path.exists():
        if os.environ.get("SC_ALLOW_SKIP") == "1":
            pytest.skip("run scripts/test-browser first")
        pytest.fail(f"{path} is missing: run scripts/test-browser first")
    return np.fromfile(path, dtype="<f4").reshape(450, 10)
