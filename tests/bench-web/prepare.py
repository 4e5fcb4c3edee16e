#!/usr/bin/env python3
"""Puts the benchmark's models into a bench site (run by scripts/bench-web).

  prepare.py SITE CACHE

Copies into SITE/models/ (next to build/web's digits.onnx):
  squeezenet.onnx, resnet50.onnx  onnx's light_squeezenet / light_resnet50, from the installed
                                  onnx wheel (pinned in requirements-test.txt)
  ppocr-det.onnx                  PP-OCRv4 det from the rapidocr-onnxruntime wheel (Apache-2.0),
                                  fetched into CACHE with pip, with its input fixed at 1x3x640x640
                                  (the model's H and W are free; a fixed shape lets every engine plan
                                  once and makes the figures comparable)
and benches build/web's PII model as it is (pii-rampart.onnx: Rampart BERT, 6 layers, 4-bit
MatMulNBits weights: the transformer and the quantized model), on the first two of tests/text/notes.py's
notes joined into one text (about 200 tokens): our engine gets the text (tokenized in the sandbox's worker, as a page
runs it), onnxruntime-web the ids `tokenizers` (Python) makes of it from the same tokenizer.json,
so outputs agree only if both tokenizations do;
adds them to SITE/models/manifest.json with sha256/size/SRI as models/manifest.json has them, and
writes SITE/bench/config.json: per model its file, input name/shape and output name (a text
model: its text, and its int64 inputs as ids).
"""
import base64
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile

import onnx
from tokenizers import Tokenizer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "text"))
from notes import NOTES  # noqa: E402

RAPIDOCR = "rapidocr-onnxruntime==1.4.4"
DET_IN_WHEEL = "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"
DET_SIDE = 640
# Text models of build/web's manifest (models/fetch.py put them there) benched on a fixed text.
TEXT_MODELS = ["pii"]


def det_model(cache: str) -> onnx.ModelProto:
    wheels = glob.glob(os.path.join(cache, "rapidocr_onnxruntime-1.4.4-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", RAPIDOCR, "-d", cache],
                       check=True)
        wheels = glob.glob(os.path.join(cache, "rapidocr_onnxruntime-1.4.4-*.whl"))
    if not wheels:
        sys.exit(f"prepare.py: pip did not leave a {RAPIDOCR} wheel in {cache}")
    with zipfile.ZipFile(wheels[0]) as z:
        m = onnx.load_from_string(z.read(DET_IN_WHEEL))
    fixed = {m.graph.input[0].name: [1, 3, DET_SIDE, DET_SIDE], m.graph.output[0].name: [1, 1, DET_SIDE, DET_SIDE]}
    for v in list(m.graph.input) + list(m.graph.output):
        if v.name in fixed:
            for d, n in zip(v.type.tensor_type.shape.dim, fixed[v.name]):
                d.ClearField("dim_param")
                d.dim_value = n
    onnx.checker.check_model(m)
    return m


def io_spec(m: onnx.ModelProto) -> dict:
    inits = {i.name for i in m.graph.initializer}
    ins = [i for i in m.graph.input if i.name not in inits]
    if len(ins) != 1:
        sys.exit(f"prepare.py: expected one data input, got {[i.name for i in ins]}")
    dims = ins[0].type.tensor_type.shape.dim
    if any(not d.dim_value and not d.dim_param for d in dims):
        sys.exit(f"prepare.py: input {ins[0].name} has dimensions of unknown size")
    # Named free dimensions (digits' batch) are set to 1, as `secure-context bench` does.
    shape = [d.dim_value or 1 for d in dims]
    return {"input": ins[0].name, "shape": shape, "output": m.graph.output[0].name}


def text_spec(site: str, entry: dict) -> dict:
    """The bench text as the sandbox tokenizes it (one window: no truncation), and its ids as int64 feeds."""
    text = "\n\n".join(NOTES[:2])
    tok = Tokenizer.from_file(os.path.join(site, "models", entry["tokenizer"]["file"]))
    tok.enable_truncation(entry["tokenizer"]["max_length"], stride=entry["tokenizer"]["stride"])
    e = tok.encode(text)
    if e.overflowing:
        sys.exit("prepare.py: the bench text does not fit one window")
    n = len(e.ids)
    feeds = {"input_ids": e.ids, "attention_mask": e.attention_mask, "token_type_ids": [0] * n}
    names = [i["name"] for i in entry["inputs"]]
    if sorted(names) != sorted(feeds):
        sys.exit(f"prepare.py: {entry['name']} inputs are {names}, expected {sorted(feeds)}")
    return {"text": text, "inputs": [{"name": k, "dtype": "int64", "shape": [1, n], "data": feeds[k]} for k in names],
            "output": entry["outputs"][0]["name"]}


def main() -> None:
    site, cache = sys.argv[1], sys.argv[2]
    os.makedirs(cache, exist_ok=True)
    models_dir = os.path.join(site, "models")
    light = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    shutil.copy(os.path.join(light, "light_squeezenet.onnx"), os.path.join(models_dir, "squeezenet.onnx"))
    shutil.copy(os.path.join(light, "light_resnet50.onnx"), os.path.join(models_dir, "resnet50.onnx"))
    onnx.save(det_model(cache), os.path.join(models_dir, "ppocr-det.onnx"))

    sources = {
        "digits": ("digits.onnx", "models/digits.onnx (this repo)", "MIT"),
        "squeezenet": ("squeezenet.onnx", "onnx==1.22.0 wheel: backend/test/data/light/light_squeezenet.onnx", "Apache-2.0"),
        "resnet50": ("resnet50.onnx", "onnx==1.22.0 wheel: backend/test/data/light/light_resnet50.onnx", "Apache-2.0"),
        "ppocr-det": ("ppocr-det.onnx", f"{RAPIDOCR} wheel: {DET_IN_WHEEL}, input fixed at 1x3x{DET_SIDE}x{DET_SIDE}", "Apache-2.0"),
    }
    manifest_path = os.path.join(models_dir, "manifest.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    manifest["models"] = [m for m in manifest["models"] if m["name"] not in sources or m["name"] == "digits"]
    config = {"models": []}
    for name, (file, source, lic) in sources.items():
        path = os.path.join(models_dir, file)
        data = open(path, "rb").read()
        digest = hashlib.sha256(data)
        spec = io_spec(onnx.load_from_string(data))
        config["models"].append({"name": name, "file": file, "size": len(data), "sha256": digest.hexdigest(),
                                 "source": source, "license": lic, **spec})
        if name != "digits":  # already in models/manifest.json
            manifest["models"].append({
                "name": name, "file": file, "format": "onnx", "size": len(data), "license": lic, "source": source,
                "sha256": digest.hexdigest(), "integrity": "sha256-" + base64.b64encode(digest.digest()).decode(),
            })
    for name in TEXT_MODELS:
        entry = next(m for m in manifest["models"] if m["name"] == name)
        data = open(os.path.join(models_dir, entry["file"]), "rb").read()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            sys.exit(f"prepare.py: {entry['file']} does not match its manifest entry")
        config["models"].append({"name": name, "file": entry["file"], "size": len(data), "sha256": entry["sha256"],
                                 "source": entry["fetched_from"]["package"] + " wheel: " + entry["fetched_from"]["member"],
                                 "license": entry["license"], **text_spec(site, entry)})
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    os.makedirs(os.path.join(site, "bench"), exist_ok=True)
    with open(os.path.join(site, "bench", "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    for m in config["models"]:
        io = f"{m['input']} {m['shape']}" if "input" in m else " ".join(f"{i['name']} {i['shape']}" for i in m["inputs"])
        print(f"{m['name']:<11} {m['size']:>9} bytes  {io}")


if __name__ == "__main__":
    main()
