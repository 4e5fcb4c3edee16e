"""A local model file as ``model_path`` (issue #16 item 1): checked by the engine as `secure-context
models add` checks it, hashed and pinned at first use, served by the package's own server with the
integrity chain re-pinned, verified by the sandbox; refused with what to do when an edge app serves
the runtime.

The model is a real third-party one: PP-OCR's text-direction classifier from the pinned
rapidocr-onnxruntime==1.4.4 wheel (Apache-2.0; models/fetch.py puts it in models/), copied under
another name to a temporary directory, so it is a file the build's manifest does not list.
End to end: `streamlit run examples/local_model_demo.py` (MODEL_FILE = that copy) driven by
headless Chromium (tests/streamlit/drive.mjs, scenario `image`): a line of text rendered by Pillow
and turned upside down (tests/browser/image_oracle.py) is picked in the frame; Python prints the
class and score, equal to numpy + onnxruntime's on the same picture (to 4 decimals), and the
picture's name, bytes and pixels are found nowhere in the page, its messages, requests or
websocket frames.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from streamlit_secure_context import ModelPathError, prepare
from streamlit_secure_context import component
from streamlit_secure_context.local_model import LocalModels
from streamlit_secure_context.server import AssetServer, find_web_dir

from test_e2e import ARTIFACTS, CLI, ROOT, Procs, drive, wait_http

MODEL = ROOT / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
OPTIONS = {
    "name": "my-text-direction", "labels": ["0", "180"],
    "preprocess": {"kind": "image", "size": [48, 192], "channels": "bgr", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    "postprocess": {"kind": "classes", "top_k": 2},
}
pytestmark = pytest.mark.skipif(not MODEL.exists() or not CLI.exists(), reason="needs models/fetch.py and scripts/build")


def sri(b: bytes) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(b).digest()).decode()


def get(url: str) -> bytes:
    with urllib.request.urlopen(url) as r:
        return r.read()


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("SECURE_CONTEXT_BIN", str(CLI))


@pytest.fixture
def own_model(tmp_path):
    p = tmp_path / "my_classifier.onnx"
    shutil.copyfile(MODEL, p)
    return p


def assert_chain(origin: str, entry: dict, data: bytes) -> None:
    """What the browser will check: sandbox.html pins sandbox.js, which pins the manifest, which pins the model."""
    html, js, manifest = get(origin + "/sandbox.html"), get(origin + "/sandbox.js"), get(origin + "/models/manifest.json")
    assert f'integrity="{sri(js)}"' in html.decode()
    assert sri(manifest) in js.decode()
    served = next(m for m in json.loads(manifest)["models"] if m["name"] == entry["name"])
    assert served["sha256"] == hashlib.sha256(data).hexdigest() and served["integrity"] == sri(data) and served["size"] == len(data)
    assert get(f"{origin}/models/{served['file']}") == data


def test_a_local_file_is_checked_by_the_engine_and_served_pinned(cli, own_model):
    s = AssetServer(find_web_dir(), parents=["http://127.0.0.1:8501"]).start()
    try:
        entry = LocalModels().add(s, own_model, OPTIONS)
        # The entry `secure-context models add` writes: the engine's inputs and outputs, the pins, the options.
        assert entry["name"] == "my-text-direction" and entry["format"] == "onnx" and entry["labels"] == ["0", "180"]
        assert entry["inputs"] == [{"dtype": "float32", "name": "x", "shape": ["?", 3, "?", "?"]}]
        assert entry["preprocess"]["size"] == [48, 192] and entry["postprocess"] == {"kind": "classes", "top_k": 2}
        assert_chain(s.origin, entry, own_model.read_bytes())
        # Every other file is still the build's.
        assert get(s.origin + "/models/digits.onnx") == (ROOT / "build/web/models/digits.onnx").read_bytes()
    finally:
        s.stop()


def test_a_local_tflite_file_too(cli, tmp_path):
    """TFLite through the same check: MediaPipe's selfie segmentation (models/fetch.py), under another name."""
    src = ROOT / "models" / "selfie_segmentation.tflite"
    if not src.exists():
        pytest.skip("needs models/fetch.py")
    mine = tmp_path / "my_segmenter.tflite"
    shutil.copyfile(src, mine)
    s = AssetServer(find_web_dir(), parents=["http://127.0.0.1:8501"]).start()
    try:
        entry = LocalModels().add(s, mine, {"preprocess": {"kind": "image", "size": [256, 256], "layout": "nhwc"},
                                            "postprocess": {"kind": "mask"}})
        assert (entry["name"], entry["file"], entry["format"]) == ("my_segmenter", "my_segmenter.tflite", "tflite")
        assert entry["inputs"] == [{"dtype": "float32", "name": "input_1", "shape": [1, 256, 256, 3]}]
        assert_chain(s.origin, entry, mine.read_bytes())
    finally:
        s.stop()


def test_a_file_the_engine_cannot_load_is_refused_with_its_error(cli, tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07" + bytes(range(256)) * 4)
    s = AssetServer(find_web_dir(), parents=["http://127.0.0.1:8501"])
    with pytest.raises(ModelPathError) as e:
        LocalModels().add(s, bad, None)
    msg = str(e.value)
    assert msg.startswith(f"model_path {str(bad)!r} refused by `secure-context models add` (the engine's check): "
                          f"the engine cannot load {bad}: invalid-argument: not a valid ONNX model"), msg
    assert "broken" not in get_manifest_names(s)


def get_manifest_names(s: AssetServer) -> list[str]:
    return [m["name"] for m in json.loads(s._bytes("models/manifest.json"))["models"]]


def test_pinned_at_first_use_a_changed_file_is_refused(cli, own_model):
    s = AssetServer(find_web_dir(), parents=["http://127.0.0.1:8501"])
    models = LocalModels()
    models.add(s, own_model, OPTIONS)
    # The same file declared otherwise (an edited call): its entry is replaced, not duplicated.
    relabelled = models.add(s, own_model, {**OPTIONS, "labels": ["up", "down"]})
    assert relabelled["labels"] == ["up", "down"]
    served = [m for m in json.loads(s._bytes("models/manifest.json"))["models"] if m["name"] == OPTIONS["name"]]
    assert [m["labels"] for m in served] == [["up", "down"]]
    data = bytearray(own_model.read_bytes())
    data[-1] ^= 1
    own_model.write_bytes(bytes(data))
    with pytest.raises(ModelPathError, match=r"changed since this app pinned it .* restart the app"):
        models.add(s, own_model, OPTIONS)


def test_options_are_checked(cli, own_model):
    s = AssetServer(find_web_dir(), parents=["http://127.0.0.1:8501"])
    for bad, msg in [({"nme": "x"}, "unknown key"), ({"name": "no spaces"}, "model_options\\['name'\\]"),
                     ({"labels": "0,180"}, "labels"), ({"preprocess": "image"}, "preprocess"),
                     ({"name": "digits"}, "already served")]:
        with pytest.raises(ModelPathError, match=msg):
            try:
                LocalModels().add(s, own_model, bad)
            except ValueError as e:  # the server's refusal of a taken name
                raise ModelPathError(str(e)) from None
    # A preprocess the engine's checks refuse (processing.json) comes back with the CLI's message.
    with pytest.raises(ModelPathError, match=r"refused by `secure-context models add` .*preprocess\.size must be"):
        LocalModels().add(s, own_model, {"preprocess": {"kind": "image", "size": [0, 4]}})


def test_served_by_an_edge_app_says_exactly_what_to_do(own_model, monkeypatch):
    with pytest.raises(ModelPathError) as e:
        prepare(str(own_model), base_url="https://edge.example/", input="image", model_options=OPTIONS)
    msg = str(e.value)
    assert "is a file on this machine, but the runtime is served by the edge app at https://edge.example/" in msg
    assert f"`secure-context models add {own_model} --name my-text-direction --labels 0,180 --preprocess " in msg
    assert "rebuild (`scripts/build-web`) and deploy the edge app, then pass model_path='my-text-direction'" in msg
    # model_options without a local file is a mistake, said so.
    with pytest.raises(ModelPathError, match="model_options describes a local model file"):
        prepare("digits", base_url="https://edge.example/", model_options=OPTIONS)


def test_without_the_cli_it_says_how_to_get_it(own_model, monkeypatch):
    monkeypatch.delenv("SECURE_CONTEXT_BIN", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    s = AssetServer(find_web_dir(), parents=["http://127.0.0.1:8501"])
    with pytest.raises(ModelPathError, match=r"`secure-context` CLI was not found: build it .* SECURE_CONTEXT_BIN="):
        LocalModels().add(s, own_model, OPTIONS)


# ---------------------------------------------------------------- end to end, real Streamlit

@pytest.fixture(scope="module")
def line(tmp_path_factory):
    d = tmp_path_factory.mktemp("line")
    subprocess.run([sys.executable, str(ROOT / "tests" / "browser" / "image_oracle.py"), "text-direction", str(d / "ref"),
                    "--images", "text-lines"], check=True)
    ref = json.loads((d / "ref" / "reference.json").read_text())
    img = next(i for i in ref["images"] if i["file"] == "line01-180.png")
    name = f"private-line-{uuid.uuid4().hex[:12]}.png"
    shutil.copyfile(d / "ref" / img["file"], d / name)
    raw = (d / name).read_bytes()
    pixels = np.asarray(Image.open(d / name).convert("RGB"))
    hexes = [raw[o:o + 24].hex() for o in range(100, len(raw) - 24, len(raw) // 8)]
    hexes += [pixels[y, 20:28].tobytes().hex() for y in range(14, pixels.shape[0] - 10, 8)]
    hexes = list(dict.fromkeys(hexes))
    top = img["result"]["classes"][0][0]
    assert top["label"] == "180"
    answer = f"Text direction: {top['label']} degrees, score {top['score']:.4f}"
    spec = d / "private.json"
    spec.write_text(json.dumps({"file": str(d / name), "strings": [name], "hex": hexes, "controls": [f"{top['score']:.4f}"]}))
    model = d / "my_classifier.onnx"
    shutil.copyfile(MODEL, model)
    return {"spec": spec, "answer": answer, "model": model}


def test_a_local_model_file_in_a_real_streamlit_app(line, tmp_path):
    procs = Procs(tmp_path)
    try:
        url = procs.streamlit("examples/local_model_demo.py", env={"MODEL_FILE": str(line["model"]), "SECURE_CONTEXT_BIN": str(CLI)})
        wait_http(url + "/_stcore/health")
        ARTIFACTS.mkdir(exist_ok=True)
        out = drive("image", url + "/", ARTIFACTS / "streamlit-local-model.png",
                    extra_env={"DRIVE_PRIVATE": str(line["spec"]), "DRIVE_TIMEOUT_MS": "120000", "DRIVE_PYTHON_TEXT": "Text direction:"})
    finally:
        procs.close()
    assert out["pythonSaw"].startswith(line["answer"]), (out["pythonSaw"], line["answer"])
    sha = hashlib.sha256(line["model"].read_bytes()).hexdigest()
    assert f"model sha256 {sha[:12]}" in out["pythonSaw"]
    assert out["frameResult"].startswith("180 "), out["frameResult"]
    runtime = out["inputFrameSrc"].split("/sandbox.html")[0]
    assert runtime != url and runtime.startswith("http://127.0.0.1:")
    priv = out["privacy"]
    assert priv["leaks"] == [], priv["leaks"]
    assert priv["inputResults"] and all(r["result"]["kind"] == "classes" for r in priv["inputResults"]), priv
    assert all(where for where in priv["controls"].values()), priv["controls"]
