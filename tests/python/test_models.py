"""The shipped models, their manifest and the digits held-out set agree with each other."""

import base64
import hashlib
import json
import os
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


SC = Path(os.environ.get("SC_BIN", Path(__file__).resolve().parents[2] / "target" / "release" / "secure-context"))


def sc_models(*args):
    return subprocess.run([str(SC), "models", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_manifest_check_passes(models_dir):
    r = sc_models("check", "--manifest", models_dir / "manifest.json")
    assert r.returncode == 0, r.stdout + r.stderr


def test_manifest_check_detects_stale_file(models_dir, tmp_path):
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy, ignore=shutil.ignore_patterns("__pycache__"))
    model = onnx.load(str(copy / "digits.onnx"))
    model.doc_string += " (edited)"  # still a valid model, just different bytes
    onnx.save(model, str(copy / "digits.onnx"))

    r = sc_models("check", "--manifest", copy / "manifest.json")
    assert r.returncode == 1
    assert "digits.sha256: the manifest has" in r.stderr and "models update" in r.stderr, r.stderr
    r = sc_models("update", "--manifest", copy / "manifest.json")
    assert r.returncode == 0, r.stderr
    assert sc_models("check", "--manifest", copy / "manifest.json").returncode == 0
    entry = next(m for m in json.loads((copy / "manifest.json").read_text())["models"] if m["name"] == "digits")
    assert entry["sha256"] == hashlib.sha256((copy / "digits.onnx").read_bytes()).hexdigest()


def test_manifest_check_detects_hand_edits(models_dir, tmp_path):
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy, ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / "manifest.json"
    text = path.read_text()
    doc = json.loads(text)
    cases = {
        "a typo in a field name": (lambda e: e.update(postprocesss={"kind": "classes"}), 'unknown field "postprocesss"'),
        "a read field typed by hand": (lambda e: e["inputs"][0].update(shape=[1, 1, 8, 9]), "digits.inputs: the manifest has"),
        "a preprocess that does not fit the model": (
            lambda e: e.update(preprocess={"kind": "image", "size": [28, 28], "channels": "gray"}),
            'preprocess makes a tensor [1, 1, 28, 28], but the model\'s input is "input" f32[batch,1,8,8]'),
        "labels the output cannot have": (
            lambda e: e.update(labels=["a", "b"], postprocess={"kind": "classes"}), "2 labels, but output"),
    }
    for what, (edit, message) in cases.items():
        d = json.loads(text)
        edit(next(m for m in d["models"] if m["name"] == "digits"))
        path.write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")
        r = sc_models("check", "--manifest", path)
        assert r.returncode == 1 and message in r.stderr, (what, r.stderr)
    # The same content in another layout: only the written form is accepted.
    path.write_text(json.dumps(doc))
    r = sc_models("check", "--manifest", path)
    assert r.returncode == 1 and "written form" in r.stderr, r.stderr


def _symbolic_model(path):
    """A small ONNX classifier with a named batch dim: x [n, 4] -> softmax(x W) [n, 3]."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["l"]), helper.make_node("Softmax", ["l"], ["p"], axis=-1)],
                          "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                          [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["n", 3])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))


def test_models_add_writes_what_the_engine_reads(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    _symbolic_model(mine / "Tiny Model.onnx")
    (mine / "good.onnx").write_bytes((mine / "Tiny Model.onnx").read_bytes())
    manifest = tmp_path / "site" / "manifest.json"
    manifest.parent.mkdir()
    r = sc_models("add", mine / "Tiny Model.onnx", "--manifest", manifest)
    assert r.returncode == 1 and "rename it" in r.stderr, r.stderr
    r = sc_models("add", mine / "good.onnx", "--manifest", manifest, "--name", "tiny", "--labels", "cat,dog,bird",
                  "--license", "MIT", "--source", "made by the test", "--postprocess", '{"kind": "classes", "top_k": 2}')
    assert r.returncode == 0, r.stderr
    assert 'inputs:  "x" float32["n",4]' in r.stdout, r.stdout
    doc = json.loads(manifest.read_text())
    (e,) = doc["models"]
    data = (mine / "good.onnx").read_bytes()
    digest = hashlib.sha256(data).digest()
    assert e["sha256"] == digest.hex() and e["size"] == len(data)
    assert e["integrity"] == "sha256-" + base64.b64encode(digest).decode()
    assert e["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["n", 4]}]
    assert e["outputs"] == [{"name": "p", "dtype": "float32", "shape": ["n", 3]}]
    assert e["format"] == "onnx" and e["labels"] == ["cat", "dog", "bird"] and e["license"] == "MIT"
    assert e["postprocess"] == {"kind": "classes", "top_k": 2}
    assert (manifest.parent / "good.onnx").read_bytes() == data, "the model is copied next to the manifest"
    assert sc_models("check", "--manifest", manifest).returncode == 0
    # The same name again is refused unless replaced.
    r = sc_models("add", mine / "good.onnx", "--manifest", manifest, "--name", "tiny")
    assert r.returncode == 1 and "already a model named" in r.stderr


def test_models_add_refuses_what_cannot_run_and_changes_nothing(tmp_path, models_dir):
    manifest = tmp_path / "manifest.json"
    shutil.copy(models_dir / "manifest.json", manifest)
    for f in ("digits.onnx", "tiny-conv.tflite"):
        shutil.copy(models_dir / f, tmp_path / f)
    before = manifest.read_bytes()
    junk = tmp_path / "in" / "junk.onnx"
    junk.parent.mkdir()
    junk.write_bytes(b"\x08\x07" + bytes(range(256)) * 4)
    bad = [
        (["add", junk], "the engine cannot load"),
        (["add", models_dir / "digits.onnx", "--name", "x", "--preprocess", '{"kind": "image", "size": [8, 8]}'],
         'preprocess makes a tensor [1, 3, 8, 8], but the model\'s input is "input" f32[batch,1,8,8]'),
        (["add", models_dir / "digits.onnx", "--name", "x", "--preprocess", '{"kind": "image", "size": [8, 8], "colour": 1}'],
         "preprocess.colour: not a field of image"),
        (["add", models_dir / "digits.onnx", "--name", "x", "--postprocess", '{"kind": "boxes", "boxes": "probabilities"}'],
         "postprocess.scores is required"),
        (["add", models_dir / "digits.onnx", "--name", "../x"], 'name "../x"'),
    ]
    for args, message in bad:
        r = sc_models(*args, "--manifest", manifest)
        assert r.returncode == 1 and message in r.stderr and "nothing was added" in r.stderr, (args, r.stderr)
    assert "invalid-argument: not a valid ONNX model" in sc_models("add", junk, "--manifest", manifest).stderr
    assert manifest.read_bytes() == before
    assert not (tmp_path / "junk.onnx").exists()


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
    for key in ("source", "license"):
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
        # A negative dim_value (PaddlePaddle's exports write -1) is a free dim, as is a missing
        # one; no shape at all is an unknown rank (null in the manifest).
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else (d.dim_param or "?")
                 for d in tt.shape.dim] if tt.HasField("shape") else None
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)).name
        out.append({"name": v.name, "dtype": dtype, "shape": shape})
    return out


@pytest.mark.parametrize("name", sorted(n for n, e in ENTRIES.items() if e["format"] == "onnx"))
def test_entry_io_matches_onnx_graph(name, models_dir):
    entry = ENTRIES[name]
    graph = onnx.load(str(models_dir / entry["file"])).graph
    weights = {i.name for i in graph.initializer}
    assert entry["inputs"] == _graph_io(graph.input, weights)
    # An output whose shape the engine cannot tell before a run is listed with shape null (Silero
    # VAD's, behind an If; PaddlePaddle exports' outputs declared with a -1 dim, text-direction's
    # [-1, 2]: a known limit); its name and type must still be the graph's.
    declared = _graph_io(graph.output, weights)
    assert [{**o, "shape": None} if e["shape"] is None else o for o, e in zip(declared, entry["outputs"])] == entry["outputs"]
    # The last output dim of a classifier is the label count (where the engine knows it).
    if "labels" in entry and entry["outputs"][0]["shape"]:
        assert entry["outputs"][0]["shape"][-1] == len(entry["labels"])


@pytest.mark.parametrize("name", sorted(n for n, e in ENTRIES.items() if e["format"] == "tflite"))
def test_entry_io_matches_litert(name, models_dir):
    """The engine's reading of a TFLite model (the manifest's inputs/outputs) is LiteRT's."""
    from ai_edge_litert.interpreter import Interpreter

    entry = ENTRIES[name]
    it = Interpreter(model_path=str(models_dir / entry["file"]))
    io = lambda ds: [{"name": d["name"], "dtype": np.dtype(d["dtype"]).name, "shape": [int(x) for x in d["shape"]]} for d in ds]
    assert entry["inputs"] == io(it.get_input_details())
    assert entry["outputs"] == io(it.get_output_details())


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
