"""The server-side API on text: `POST /api/models/pii/infer` with `{"text": ...}` runs the same
tokenizer component and engine the browser runs, composed into build/api/api.wasm by `wac plug`
(scripts/build-api). Its windows must be Hugging Face `tokenizers`' (ids and code-point
offsets), its logits bit-identical to the engine component called directly (wasmtime, same ids)
and within reference.ATOL of onnxruntime; bad text requests get a clear 4xx; the server never
logs the text.

The component is served alone (`secure-context serve build/api/api.wasm`) with a models
directory made here: the manifest's text model and its tokenizer, and digits. While the engine
needs it (reference.STRIP_VALUE_INFO), that directory holds the stripped copy of the model with a
manifest entry pinning it: a test fixture; scripts/up serves build/web/models as built.
"""

import copy
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

import reference as ref_

sys.path.insert(0, str(ref_.REPO / "examples" / "python"))
from run import Engine  # noqa: E402

API = ref_.REPO / "build" / "api" / "api.wasm"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    entry = copy.deepcopy(ref_.ENTRY)
    data = ref_.engine_model_bytes()
    (d / entry["file"]).write_bytes(data)
    entry.update(ref_.file_digest(d / entry["file"]))
    (d / entry["tokenizer"]["file"]).write_bytes(ref_.tokenizer_file().read_bytes())
    digits = next(m for m in ref_.MANIFEST["models"] if m["name"] == "digits")
    (d / digits["file"]).write_bytes((ref_.REPO / "models" / digits["file"]).read_bytes())
    (d / "manifest.json").write_text(json.dumps({"version": 1, "models": [digits, entry]}))
    return d


@pytest.fixture(scope="module")
def api(models_dir, tmp_path_factory):
    assert API.is_file(), f"{API} missing: scripts/build-api"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path_factory.mktemp("log") / "server.log"
    log = open(log_path, "w+")
    sc = os.environ.get("SC_BIN", str(ref_.REPO / "target" / "release" / "secure-context"))
    p = subprocess.Popen([sc, "serve", "-Scli", "--dir", f"{models_dir}::/models", "--env", "SC_API=on",
                          "--addr", f"127.0.0.1:{port}", str(API)], stdout=log, stderr=log)
    deadline = time.time() + 180
    while True:
        log.seek(0)
        if "Serving HTTP" in log.read():
            break
        assert p.poll() is None and time.time() < deadline, "server did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", log_path
    p.terminate()
    p.wait(10)
    log.close()


def post(origin, model, body, ctype="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(f"{origin}/api/models/{model}/infer", data=data, method="POST",
                                 headers={"content-type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def engine_graph():
    e = Engine()
    return e, e.load(ref_.engine_model_bytes())


@pytest.mark.parametrize("i", range(len(ref_.TEXTS)))
def test_text_infer_matches(api, engine_graph, i):
    origin, _ = api
    text = ref_.TEXTS[i]
    status, out = post(origin, "pii", {"text": text})
    assert status == 200, out
    hf = ref_.hf_windows(text)
    assert [w["ids"] for w in out["windows"]] == [w["ids"] for w in hf]
    tok = ref_.Tokenizer.from_file(str(ref_.tokenizer_file()))
    tok.enable_truncation(ref_.MAX_LENGTH, stride=ref_.STRIDE)
    e = tok.encode(text)
    assert [w["offsets"] for w in out["windows"]] == [[list(o) for o in w.offsets] for w in [e, *e.overflowing]]
    assert out["model"] == "pii" and len(out["sha256"]) == 64
    lg = out["outputs"]["logits"]
    got = np.array(lg["data"], np.float32).reshape(lg["shape"])
    engine, graph = engine_graph
    direct = engine.run(graph, ref_.feeds(hf))["logits"]
    assert got.view(np.uint32).tolist() == direct.view(np.uint32).tolist(), "API vs engine component"
    full, _ = ref_.ort_sessions()
    ref = full.run(["logits"], ref_.feeds(hf))[0]
    valid = ref_.feeds(hf)["attention_mask"].astype(bool)
    assert float(np.abs(got - ref)[valid].max()) <= ref_.ATOL


def test_bad_text_requests(api):
    origin, log_path = api
    cases = [
        ("pii", {"text": 5}, 400, "bad-json"),
        ("pii", {"text": ""}, 400, "bad-json"),
        ("pii", {"text": "a", "inputs": {}}, 400, "bad-json"),
        ("pii", {"text": "x" * ((1 << 20) + 1)}, 413, "too-large"),
        ("digits", {"text": "hello"}, 400, "bad-json"),
        ("nope", {"text": "hello"}, 404, "unknown-model"),
    ]
    for model, body, want_status, want_code in cases:
        status, out = post(origin, model, body)
        assert (status, out["error"]["code"]) == (want_status, want_code), (model, str(body)[:40], out)
    # Tensors still work next to text, and the server kept serving.
    status, out = post(origin, "pii", {"text": "Call Jane Roe at 555-0100."})
    assert status == 200 and out["outputs"]["logits"]["shape"][0] == 1
    log = log_path.read_text()
    for probe in ["Jane Roe", "Gonzalez", "Whitfield", "hello"]:
        assert probe not in log, "the server logged request text"
