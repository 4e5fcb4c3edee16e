"""The Python API without a browser: model_path, inference_params, the local server, the middleware."""

import asyncio
import json
import re
import urllib.request
from pathlib import Path

import pytest

import streamlit_secure_context as ssc
from streamlit_secure_context import InferenceParamsError, ModelPathError, SecurityConfigError, prepare
from streamlit_secure_context.config import build_inputs
from streamlit_secure_context.component import resolve_model
from streamlit_secure_context.isolation import CrossOriginIsolationMiddleware
from streamlit_secure_context import server as local_server
from streamlit_secure_context.server import AssetServer, AssetsError, find_web_dir

ROOT = Path(__file__).resolve().parents[2]
DIGITS_INPUTS = [{"name": "input", "dtype": "float32", "shape": ["batch", 1, 8, 8]}]
MANIFEST = json.loads((ROOT / "models" / "manifest.json").read_text())
BASE = "http://127.0.0.1:9/"


@pytest.fixture(scope="module")
def server():
    s = AssetServer(find_web_dir(), parents=["http://127.0.0.1:8501"]).start()
    yield s
    s.stop()


def get(url):
    try:
        with urllib.request.urlopen(url) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, b""


# ---------------------------------------------------------------- model_path

def test_model_by_name():
    assert resolve_model("digits", BASE, MANIFEST)["file"] == "digits.onnx"


@pytest.mark.parametrize("path", ["http://127.0.0.1:9/models/digits.onnx", "/models/digits.onnx", "models/digits.onnx"])
def test_model_by_url_on_the_serving_origin(path):
    assert resolve_model(path, BASE, MANIFEST)["name"] == "digits"


BAD_MODELS = [
    ("https://example.com/model.tflite", "model_path 'https://example.com/model.tflite' is not on the serving origin http://127.0.0.1:9"),
    ("resnet", "model_path 'resnet': no model of that name in http://127.0.0.1:9/models/manifest.json (models: digits"),
    ("/models/other.onnx", "model_path '/models/other.onnx': 'other.onnx' is not listed in http://127.0.0.1:9/models/manifest.json"),
    ("/static/digits.onnx", "model_path '/static/digits.onnx': models are served from http://127.0.0.1:9/models/<file>"),
    ("/models/digits.onnx?v=2", "model_path '/models/digits.onnx?v=2': a model URL has no query or fragment"),
    ("", "model_path must be a manifest name or a model URL, got ''"),
    (None, "model_path must be a manifest name or a model URL, got None"),
]


@pytest.mark.parametrize("path,message", BAD_MODELS)
def test_bad_model_path(path, message):
    with pytest.raises(ModelPathError, match=re.escape(message)):
        resolve_model(path, BASE, MANIFEST)


# ---------------------------------------------------------------- inference_params

def test_flat_list_takes_the_manifest_shape():
    out = build_inputs({"input": [0.5] * 64}, DIGITS_INPUTS)
    assert out == {"input": {"data": [0.5] * 64, "shape": [1, 1, 8, 8]}}


def test_batch_is_inferred_and_nested_lists_flattened():
    nested = [[[[0.0] * 8] * 8]] * 3
    assert build_inputs({"input": nested}, DIGITS_INPUTS)["input"]["shape"] == [3, 1, 8, 8]


def test_numpy_arrays_are_accepted():
    np = pytest.importorskip("numpy")
    out = build_inputs({"input": np.ones((1, 1, 8, 8), np.float32)}, DIGITS_INPUTS)
    assert out["input"]["shape"] == [1, 1, 8, 8] and len(out["input"]["data"]) == 64


def test_inputs_by_name_and_shape_override():
    assert build_inputs({"input": {"input": [1.0] * 64}}, DIGITS_INPUTS)["input"]["shape"] == [1, 1, 8, 8]
    assert build_inputs({"input": [1.0] * 128, "shape": [2, 1, 8, 8]}, DIGITS_INPUTS)["input"]["shape"] == [2, 1, 8, 8]


BAD_PARAMS = [
    ({"input": [1, 2, 3]}, "input 'input': 3 values do not fill a whole number of 1x8x8 samples (the model's shape is [batch, 1, 8, 8])"),
    ({"inputs": [1]}, "inference_params: unknown key 'inputs'; known keys: input, shape"),
    ({}, "inference_params needs 'input' (or pass inference_params=None for the in-browser input mode)"),
    ([1, 2], "inference_params must be a dict like {'input': [...]}, got list"),
    ({"input": [float("nan")] * 64}, "is not finite (NaN and infinities cannot travel as JSON)"),
    ({"input": ["a"] * 64}, "expected numbers or (nested) lists of numbers, got str"),
    ({"input": [True] * 64}, "booleans are not numbers"),
    ({"input": []}, "inference_params: input 'input' is empty"),
    ({"input": {"x": [1.0] * 64}}, "inference_params['input']: the model has no input 'x' (inputs: input)"),
    ({"input": [1.0] * 64, "shape": [1, 64]}, "inference_params['shape'] has rank 2, the model's input 'input' has rank 4"),
    ({"input": [1.0] * 64, "shape": [1, 1, 4, 16]}, "inference_params['shape']: dimension 2 is 4, the model wants 8"),
    ({"input": [1.0] * 64, "shape": [2, 1, 8, 8]}, "inference_params['shape'] [2, 1, 8, 8] holds 128 values, input has 64"),
    ({"input": [1.0] * 64, "shape": "1,1,8,8"}, "inference_params['shape'] must be a list of positive integers"),
]


@pytest.mark.parametrize("params,message", BAD_PARAMS)
def test_bad_inference_params(params, message):
    with pytest.raises(InferenceParamsError, match=re.escape(message)):
        build_inputs(params, DIGITS_INPUTS)


# ---------------------------------------------------------------- prepare() against the local server

def test_prepare_data_mode(server):
    d = prepare("digits", {"coop": "same-origin", "coep": "require-corp"}, {"input": [0.0] * 64},
                base_url=server.origin, parent_origin="http://127.0.0.1:8501")
    assert d["mode"] == "data" and d["model"] == "digits" and d["problems"] == []
    assert d["sandboxUrl"] == server.origin + "/sandbox.html"
    assert d["config"]["requireIsolation"] is True and d["labels"][:3] == ["0", "1", "2"]
    again = prepare("digits", {"coop": "same-origin", "coep": "require-corp"}, {"input": [0.0] * 64}, base_url=server.origin)
    other = prepare("digits", {"coop": "same-origin", "coep": "require-corp"}, {"input": [1.0] * 64}, base_url=server.origin)
    assert again["request"] == d["request"] != other["request"]


def test_prepare_client_mode(server):
    d = prepare("models/digits.onnx", None, None, base_url=server.origin, return_result=False)
    assert d["mode"] == "client" and d["inputs"] is None and d["inputSpec"]["name"] == "input" and d["returnResult"] is False


def test_prepare_text_model_client_mode(server):
    d = prepare("pii", None, None, base_url=server.origin)
    assert d["mode"] == "client" and d["text"] is True and d["inputSpec"] is None
    assert prepare("digits", None, None, base_url=server.origin)["text"] is False
    with pytest.raises(InferenceParamsError, match="takes text, typed or pasted by the user in the browser"):
        prepare("pii", None, {"input": [1, 2, 3]}, base_url=server.origin)


def test_prepare_input_kind(server):
    # input= picks what the user gives in the frame; the default follows the manifest entry.
    assert prepare("selfie", None, None, base_url=server.origin)["inputKind"] == "image"
    assert prepare("digits", None, None, base_url=server.origin)["inputKind"] == "tensor"
    assert prepare("pii", None, None, base_url=server.origin)["inputKind"] == "text"
    assert prepare("silero-vad", None, None, base_url=server.origin)["inputKind"] == "audio"
    d = prepare("selfie", None, None, base_url=server.origin, input="image")
    assert d["inputKind"] == "image" and d["mode"] == "client"
    assert d["request"] != prepare("selfie", None, None, base_url=server.origin, input="tensor")["request"]


@pytest.mark.parametrize("model,kind,params,message", [
    ("digits", "image", None, "declares no image preprocess"),
    ("digits", "text", None, "names no tokenizer"),
    ("pii", "tensor", None, "takes text"),
    ("selfie", "image", {"input": [0.0]}, "use inference_params=None"),
    ("digits", "camera", None, "declares no image preprocess"),
    ("selfie", "audio", None, "declares no audio preprocess"),
    ("digits", "microphone", None, "declares no audio preprocess"),
    ("silero-vad", "microphone", {"input": [0.0]}, "use inference_params=None"),
    ("selfie", "video", None, "input must be one of tensor, image, text, camera, audio, microphone"),
    ("selfie", 3, None, "input must be one of"),
])
def test_prepare_bad_input_kind(server, model, kind, params, message):
    with pytest.raises(InferenceParamsError, match=message):
        prepare(model, None, params, base_url=server.origin, input=kind)


def test_prepare_camera_rate(server):
    d = prepare("selfie", None, None, base_url=server.origin, input="camera")
    assert d["inputKind"] == "camera" and d["inputRate"] == 1.0
    assert prepare("selfie", None, None, base_url=server.origin, input="camera", rate=4)["inputRate"] == 4.0
    for bad in (0, -1, 31, True, "2"):
        with pytest.raises(InferenceParamsError, match="rate"):
            prepare("selfie", None, None, base_url=server.origin, input="camera", rate=bad)
    with pytest.raises(InferenceParamsError, match="with input='camera' or input='microphone'"):
        prepare("selfie", None, None, base_url=server.origin, input="image", rate=2)


def test_prepare_microphone_rate(server):
    # A model with several inputs (Silero VAD: samples, sr, state) runs in the frame when its
    # audio preprocess says how each is fed.
    d = prepare("silero-vad", None, None, base_url=server.origin, input="microphone")
    assert d["inputKind"] == "microphone" and d["inputRate"] == 1.0 and d["mode"] == "client"
    assert prepare("silero-vad", None, None, base_url=server.origin, input="microphone", rate=5)["inputRate"] == 5.0
    assert prepare("silero-vad", None, None, base_url=server.origin, input="audio")["inputRate"] is None
    with pytest.raises(InferenceParamsError, match="rate"):
        prepare("silero-vad", None, None, base_url=server.origin, input="audio", rate=2)


def test_prepare_reports_a_weaker_served_policy(server):
    d = prepare("digits", {"csp": {"script-src": ["'self'"]}}, {"input": [0.0] * 64}, base_url=server.origin)
    assert d["problems"] == ["CSP script-src: the served policy allows 'wasm-unsafe-eval', which security_config does not "
                             "(the engine cannot run without 'wasm-unsafe-eval' in script-src)"]


def test_prepare_raises_before_any_network_on_a_bad_config():
    with pytest.raises(SecurityConfigError, match="'unsafe-inline' is unsafe"):
        prepare("digits", {"csp": {"script-src": ["'unsafe-inline'"]}}, None, base_url="http://127.0.0.1:9/")


@pytest.mark.parametrize("base,message", [
    ("ftp://x/", "base_url must be an http(s) URL"),
    ("https://edge.example/?a=1", "base_url must be an http(s) URL without query"),
])
def test_bad_base_url(base, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        prepare("digits", None, None, base_url=base)


def test_unreachable_edge():
    with pytest.raises(ssc.ServedPolicyError, match=r"cannot reach http://127.0.0.1:9/models/manifest.json"):
        prepare("digits", None, None, base_url="http://127.0.0.1:9/")


# ---------------------------------------------------------------- the local server's headers

def test_local_server_applies_the_edge_policy(server):
    status, h, body = get(server.origin + "/sandbox.html")
    assert status == 200 and b"sandbox.js" in body
    csp = h["content-security-policy"]
    # The engine worker runs under this CSP (a blob: URL of the SRI-verified worker.js).
    assert csp.startswith("default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; worker-src blob:;")
    assert "require-trusted-types-for 'script'; trusted-types secure-context" in csp
    assert "frame-ancestors 'self' http://127.0.0.1:8501;" in csp
    assert h["cross-origin-opener-policy"] == "same-origin"
    assert h["cross-origin-embedder-policy"] == "require-corp"
    # Other origins may frame it: an isolated embedder must be able to load it (frame-ancestors decides who).
    assert h["cross-origin-resource-policy"] == "cross-origin"
    assert h["document-isolation-policy"] == "isolate-and-require-corp"
    assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer"
    assert h["permissions-policy"].endswith("cross-origin-isolated=(self)")
    assert h["x-permitted-cross-domain-policies"] == "none" and h["origin-agent-cluster"] == "?1"
    assert "server" not in h


def test_local_server_other_files(server):
    status, h, _ = get(server.origin + "/worker.js")
    assert status == 200 and h["content-type"] == "text/javascript; charset=utf-8"
    assert "script-src 'self' 'wasm-unsafe-eval'" in h["content-security-policy"]
    assert "frame-ancestors 'none'" in h["content-security-policy"] and "document-isolation-policy" not in h
    wasm = next(p for p in server.files if p.endswith(".wasm"))
    status, h, _ = get(f"{server.origin}/{wasm}")
    assert h["content-type"] == "application/wasm" and "immutable" in h["cache-control"]


@pytest.mark.parametrize("path", ["/../pyproject.toml", "/%2e%2e/pyproject.toml", "/.hidden", "/models/../../x", "/nope.js",
                                  "/asset-manifest.json", "/models/", "/%00", "/a\\b"])
def test_local_server_serves_only_the_allowlist(server, path):
    status, h, _ = get(server.origin + path)
    assert status == 404 and h["cache-control"] == "no-store" and "content-security-policy" in h


def test_local_server_parents_come_from_configuration(monkeypatch):
    monkeypatch.setenv("SECURE_CONTEXT_FRAME_ANCESTORS", "https://app.example, http://localhost:8501")
    assert local_server.configured_parents() == ["https://app.example", "http://localhost:8501"]
    for bad in ("http://app.example", "*", "https://a.example/path", "https://user@a.example", "null"):
        monkeypatch.setenv("SECURE_CONTEXT_FRAME_ANCESTORS", bad)
        with pytest.raises(ValueError, match="SECURE_CONTEXT_FRAME_ANCESTORS"):
            local_server.configured_parents()
    monkeypatch.setenv("SECURE_CONTEXT_FRAME_ANCESTORS", " ".join(f"https://h{i}.example" for i in range(40)))
    with pytest.raises(ValueError, match="at most 32"):
        local_server.configured_parents()
    monkeypatch.delenv("SECURE_CONTEXT_FRAME_ANCESTORS")
    # Streamlit's configured address (here its defaults: localhost:8501), never a browser's word.
    assert local_server.configured_parents() == ["http://localhost:8501", "http://127.0.0.1:8501"]


def test_local_server_rejects_bad_parents():
    with pytest.raises(ValueError, match="not an allowed origin"):
        AssetServer(find_web_dir(), parents=["*"])
    with pytest.raises(ValueError, match="plain http is only allowed for loopback hosts"):
        AssetServer(find_web_dir(), parents=["http://evil.example"])


def test_a_page_cannot_add_itself_to_the_local_allowlist(monkeypatch):
    """The browser-supplied page origin (st.context.url) never reaches frame-ancestors."""
    from streamlit_secure_context import component

    s = AssetServer(find_web_dir(), parents=["http://127.0.0.1:8501"]).start()
    try:
        monkeypatch.setattr(local_server, "_default", s)
        d = prepare("digits", None, None, parent_origin="https://evil.example")
        assert d["local"] and any("may not frame the local runtime" in p for p in d["problems"])
        _, h, _ = get(s.origin + "/sandbox.html")
        assert "evil.example" not in h["content-security-policy"]
        assert s.parents == ("http://127.0.0.1:8501",)
        assert not hasattr(s, "allow_parents")
    finally:
        component._cache.clear()
        s.stop()


def test_csp_report_endpoint_is_bounded(server):
    import socket

    host, port = server.origin.removeprefix("http://").split(":")
    for length in ("-1", "abc", str(1 << 20)):
        with socket.create_connection((host, int(port)), timeout=5) as c:
            c.sendall(f"POST /__csp-report HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}".encode())
            reply = c.recv(65536).decode("latin-1")
        status = int(reply.split(" ", 2)[1])
        assert status in (400, 413), (length, reply[:200])
        assert "content-security-policy:" in reply.lower()


def test_assets_that_do_not_match_their_manifest_are_refused(tmp_path):
    import shutil

    web = find_web_dir()
    for name in ("asset-manifest.json", "sandbox.html", "sandbox.js"):
        shutil.copy(web / name, tmp_path / name)
    with pytest.raises(AssetsError, match="is listed in asset-manifest.json but cannot be read"):
        AssetServer(tmp_path)
    with pytest.raises(AssetsError, match="the browser runtime is not at"):
        find_web_dir(tmp_path / "missing")


# ---------------------------------------------------------------- the st.App middleware

def test_isolation_middleware_adds_coop_coep_corp():
    sent = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html"), (b"cross-origin-opener-policy", b"unsafe-none")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(m):
        sent.append(m)

    mw = CrossOriginIsolationMiddleware(app)
    asyncio.run(mw({"type": "http"}, None, send))
    headers = dict(sent[0]["headers"])
    assert headers[b"cross-origin-opener-policy"] == b"same-origin"
    assert headers[b"cross-origin-embedder-policy"] == b"require-corp"
    assert headers[b"cross-origin-resource-policy"] == b"same-origin"
    assert [k for k, _ in sent[0]["headers"]].count(b"cross-origin-opener-policy") == 1


def test_isolation_middleware_rejects_unknown_coep():
    with pytest.raises(ValueError, match="coep must be one of require-corp, credentialless"):
        CrossOriginIsolationMiddleware(None, coep="unsafe-none")
