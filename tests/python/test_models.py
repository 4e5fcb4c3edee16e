"""The shipped models, their manifest and the digits held-out set agree with each other."""

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

MIN_DIGITS_ACCURACY = 0.97

# Parametrise over the manifest as committed, so a new model gets these checks for free.
_MANIFEST = json.loads(
    (Path(__file__).resolve().parents[2] / "models" / "manifest.json").read_text(encoding="utf-8"))
ENTRIES = {m["name"]: m for m in _MANIFEST["models"]}


def run_manifest_check(models_dir):
    return subprocess.run([sys.executable, str(models_dir / "manifest.py"), "--check"],
                          capture_output=True, text=True, timeout=120)


def test_manifest_check_passes(models_dir):
    r = run_manifest_check(models_dir)
    assert r.returncode == 0, r.stdout + r.stderr


def test_manifest_check_detects_stale_file(models_dir, tmp_path):
    # Work on a copy: manifest.py resolves everything relative to its own location.
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy, ignore=shutil.ignore_patterns("__pycache__"))
    model = onnx.load(str(copy / "digits.onnx"))
    model.doc_string += " (edited)"  # still a valid model, just different bytes
    onnx.save(model, str(copy / "digits.onnx"))

    r = run_manifest_check(copy)
    assert r.returncode == 1
    assert "stale" in r.stderr and "sha256" in r.stderr, r.stderr


def test_manifest_layout(manifest):
    assert manifest["version"] == 1
    names = [m["name"] for m in manifest["models"]]
    assert names == sorted(names) and len(set(names)) == len(names)


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_entry_matches_file(name, models_dir):
    entry = ENTRIES[name]
    path = models_dir / entry["file"]
    assert path.is_file(), f"{path} listed in manifest but missing"
    assert entry["format"] in ("onnx", "tflite")
    data = path.read_bytes()
    digest = hashlib.sha256(data).digest()
    assert entry["size"] == len(data)
    assert entry["sha256"] == digest.hex()
    assert entry["integrity"] == "sha256-" + base64.b64encode(digest).decode()
    for key in ("labels", "source", "license"):
        assert entry[key], f"{name}: empty {key}"
    ts = entry.get("test_set")
    if ts:
        assert (models_dir / ts["inputs"]).is_file()
        assert (models_dir / ts["labels"]).is_file()
        assert len(np.load(models_dir / ts["labels"])) == ts["count"]


def _graph_io(values, weights):
    out = []
    for v in values:
        if v.name in weights:
            continue
        tt = v.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                 for d in tt.shape.dim]
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)).name
        out.append({"name": v.name, "dtype": dtype, "shape": shape})
    return out


@pytest.mark.parametrize("name", sorted(n for n, e in ENTRIES.items() if e["format"] == "onnx"))
def test_entry_io_matches_onnx_graph(name, models_dir):
    entry = ENTRIES[name]
    graph = onnx.load(str(models_dir / entry["file"])).graph
    weights = {i.name for i in graph.initializer}
    assert entry["inputs"] == _graph_io(graph.input, weights)
    assert entry["outputs"] == _graph_io(graph.output, weights)
    # The last output dim of a classifier is the label count.
    assert entry["outputs"][0]["shape"][-1] == len(entry["labels"])


def test_digits_model_metadata(models_dir):
    # tract only accepts models up to a given IR/opset; these are what we promise.
    model = onnx.load(str(models_dir / "digits.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 13)]
    assert model.producer_name == "secure-context"
    assert ENTRIES["digits"]["labels"] == [str(d) for d in range(10)]


def test_digits_test_set_is_the_documented_split(digits_test_set):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = digits_test_set
    assert x.dtype == np.float32 and x.shape == (450, 1, 8, 8)
    assert y.dtype == np.int64 and y.shape == (450,)
    d = load_digits()
    _, x_te, _, y_te = train_test_split(d.images, d.target, test_size=450,
                                        random_state=0, stratify=d.target)
    np.testing.assert_array_equal(x, (x_te.astype(np.float32) / 16)[:, None])
    np.testing.assert_array_equal(y, y_te)


def test_digits_accuracy_onnxruntime(ort_digits, digits_test_set):
    x, y = digits_test_set
    prob = ort_digits.run(["probabilities"], {"input": x})[0]
    assert prob.shape == (450, 10) and prob.dtype == np.float32
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=1e-5)
    acc = float((prob.argmax(axis=1) == y).mean())
    assert acc >= MIN_DIGITS_ACCURACY, f"held-out accuracy {acc:.4f}"
