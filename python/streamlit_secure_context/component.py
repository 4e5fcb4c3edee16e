"""``streamlit_secure_context()``: the seed's API on top of the secure-context browser runtime."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Mapping

from .config import (
    InferenceParamsError,
    ModelPathError,
    SecurityConfig,
    build_inputs,
    compare_policy,
    validate_security_config,
)
from .local_model import LocalModels, edge_error, is_local_file

_HERE = Path(__file__).resolve().parent
_local_models = LocalModels()
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$", re.I)
_component = None
_component_lock = threading.Lock()
_cache: dict[str, tuple[float, Any]] = {}
_CACHE_SECONDS = 30.0


# What the user gives inside the sandbox frame (`input=`), as the runtime's protocol names it
# (static/protocol.js INPUT_KINDS); a kind the model's manifest entry cannot take is refused with what to do.
INPUT_KINDS = ("tensor", "image", "text", "camera", "audio", "microphone")
LIVE_KINDS = ("camera", "microphone")  # static/protocol.js LIVE_KINDS: rate applies
MAX_RATE = 30  # static/run-inputs.js LIMITS.maxInputRate


def _preprocess_kind(entry: Mapping[str, Any]) -> str | None:
    """The input kind a manifest entry's preprocess implies ("image", "audio"), else None."""
    kind = (entry.get("preprocess") or {}).get("kind")
    return kind if kind in ("image", "audio") else None


def input_kind(kind: Any, entry: Mapping[str, Any], inference_params: Any) -> str | None:
    """The checked `input=` for this model (None: what the model's manifest entry implies)."""
    if kind is None:
        return None
    if not isinstance(kind, str) or kind not in INPUT_KINDS:
        raise InferenceParamsError(f"input must be one of {', '.join(INPUT_KINDS)} or None, got {kind!r}")
    if inference_params is not None:
        raise InferenceParamsError(f"input={kind!r} takes the input in the browser: use inference_params=None")
    name = entry.get("name")
    if kind in ("image", "camera") and (entry.get("preprocess") or {}).get("kind") != "image":
        raise InferenceParamsError(
            f"input={kind!r}: model {name!r} declares no image preprocess in its manifest entry; add one, e.g. "
            "secure-context models add FILE --preprocess '{\"kind\": \"image\", \"size\": [224, 224]}'")
    if kind in ("audio", "microphone") and (entry.get("preprocess") or {}).get("kind") != "audio":
        raise InferenceParamsError(
            f"input={kind!r}: model {name!r} declares no audio preprocess in its manifest entry; add one, e.g. "
            "secure-context models add FILE --preprocess '{\"kind\": \"audio\", \"sample_rate\": 16000, \"window\": 512}'")
    if kind == "text" and not entry.get("tokenizer"):
        raise InferenceParamsError(f"input='text': model {name!r} takes tensors (its manifest entry names no tokenizer)")
    if kind == "tensor" and entry.get("tokenizer"):
        raise InferenceParamsError(f"input='tensor': model {name!r} takes text")
    return kind


class ServedPolicyError(RuntimeError):
    """The serving origin cannot be reached or does not serve what the runtime needs."""


def _launcher():
    global _component
    with _component_lock:
        if _component is None:
            import streamlit as st

            _component = st.components.v2.component(
                "streamlit_secure_context.launcher",
                js=(_HERE / "launcher.js").read_text(encoding="utf-8"),
                css=(_HERE / "launcher.css").read_text(encoding="utf-8"),
                isolate_styles=True,
            )
        return _component


def _normalize_base(url: str) -> str:
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https") or not u.netloc or u.query or u.fragment or u.username or u.password:
        raise ValueError(f"base_url must be an http(s) URL without query, fragment or credentials, got {url!r}")
    path = u.path if u.path.endswith("/") else u.path + "/"
    return urllib.parse.urlunsplit((u.scheme, u.netloc, path, "", ""))


def resolve_base_url(base_url: str | None) -> tuple[str, bool]:
    """(base URL with a trailing slash, served by this process?)."""
    if base_url is None:
        base_url = os.environ.get("SECURE_CONTEXT_URL") or None
    if base_url:
        return _normalize_base(base_url), False
    from .server import default_server

    return default_server().origin + "/", True


def _fetch(url: str, method: str = "GET", timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    key = f"{method} {url}"
    hit = _cache.get(key)
    if hit and time.monotonic() - hit[0] < _CACHE_SECONDS:
        return hit[1]
    req = urllib.request.Request(url, method=method, headers={"User-Agent": "streamlit-secure-context"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - http(s) only, checked
            result = (r.status, {k.lower(): v for k, v in r.headers.items()}, r.read() if method == "GET" else b"")
    except urllib.error.HTTPError as e:
        raise ServedPolicyError(f"{url} answered HTTP {e.code}") from e
    except (urllib.error.URLError, OSError) as e:
        raise ServedPolicyError(f"cannot reach {url}: {getattr(e, 'reason', e)}") from e
    _cache[key] = (time.monotonic(), result)
    return result


def read_manifest(base: str) -> dict:
    _, _, body = _fetch(base + "models/manifest.json")
    try:
        manifest = json.loads(body)
        assert isinstance(manifest.get("models"), list)
    except Exception as e:  # noqa: BLE001
        raise ServedPolicyError(f"{base}models/manifest.json is not a model manifest") from e
    return manifest


def resolve_model(model_path: Any, base: str, manifest: Mapping[str, Any]) -> dict:
    """The manifest entry for ``model_path``: a manifest name, or a URL/path of a model file on the serving origin."""
    if not isinstance(model_path, str) or not model_path.strip():
        raise ModelPathError(f"model_path must be a manifest name or a model URL, got {model_path!r}")
    models = [m for m in manifest.get("models", []) if isinstance(m, dict)]
    names = ", ".join(str(m.get("name")) for m in models) or "none"
    mp = model_path.strip()
    if _NAME_RE.match(mp) and "/" not in mp and ":" not in mp:
        for m in models:
            if m.get("name") == mp:
                return m
        if not re.search(r"\.(onnx|tflite)$", mp, re.I):
            raise ModelPathError(f"model_path {mp!r}: no model of that name in {base}models/manifest.json (models: {names})")
    url = urllib.parse.urlsplit(urllib.parse.urljoin(base, mp))
    b = urllib.parse.urlsplit(base)
    if (url.scheme, url.netloc) != (b.scheme, b.netloc):
        raise ModelPathError(
            f"model_path {mp!r} is not on the serving origin {b.scheme}://{b.netloc}: the sandbox only loads models "
            f"listed in {base}models/manifest.json (with their SHA-256), from that origin. Add the model to the "
            "manifest of the edge app and pass its name or URL"
        )
    if url.query or url.fragment:
        raise ModelPathError(f"model_path {mp!r}: a model URL has no query or fragment")
    prefix = b.path + "models/"
    if not url.path.startswith(prefix) or "/" in url.path[len(prefix):]:
        raise ModelPathError(f"model_path {mp!r}: models are served from {base}models/<file>")
    file = urllib.parse.unquote(url.path[len(prefix):])
    for m in models:
        if m.get("file") == file:
            return m
    raise ModelPathError(f"model_path {mp!r}: {file!r} is not listed in {base}models/manifest.json (models: {names})")


def _served(model_path: Any, base: str) -> bool:
    """Whether ``model_path`` names a model the serving origin lists (which wins over a local file of that path)."""
    try:
        resolve_model(os.fspath(model_path), base, read_manifest(base))
        return True
    except (ModelPathError, ServedPolicyError):
        return False


def _streamlit_origin() -> str | None:
    try:
        import streamlit as st

        url = st.context.url
    except Exception:  # noqa: BLE001 - outside a script run
        return None
    if not url:
        return None
    u = urllib.parse.urlsplit(url)
    return f"{u.scheme}://{u.netloc}" if u.scheme in ("http", "https") and u.netloc else None


def _request_id(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:24]


def prepare(
    model_path: str,
    security_config: Mapping[str, Any] | None = None,
    inference_params: Mapping[str, Any] | None = None,
    *,
    base_url: str | None = None,
    return_result: bool = True,
    timeout_ms: int | None = None,
    parent_origin: str | None = None,
    input: str | None = None,  # noqa: A002  the public keyword the issue asks for
    rate: float | None = None,
    model_options: Mapping[str, Any] | None = None,
) -> dict:
    """Everything the launcher needs, checked. Raises on a bad config/model/params."""
    sc: SecurityConfig = validate_security_config(security_config)
    if not isinstance(return_result, bool):
        raise TypeError("return_result must be True or False")
    if timeout_ms is not None and not (isinstance(timeout_ms, int) and 100 <= timeout_ms <= 600_000):
        raise ValueError("timeout_ms must be an integer between 100 and 600000")
    if inference_params is not None and not isinstance(inference_params, Mapping):
        raise InferenceParamsError(
            f"inference_params must be a dict like {{'input': [...]}} or None (input drawn/picked in the browser), got {type(inference_params).__name__}"
        )
    base, local = resolve_base_url(base_url)
    if is_local_file(model_path) and not _served(model_path, base):
        if not local:
            raise edge_error(model_path, base, model_options)
        from .server import default_server

        try:
            model_path = _local_models.add(default_server(), model_path, model_options)["name"]
        except ValueError as e:
            raise ModelPathError(str(e)) from None
        _cache.pop(f"GET {base}models/manifest.json", None)
    elif model_options is not None:
        raise ModelPathError("model_options describes a local model file (model_path='path/to/model.onnx'); "
                             f"{model_path!r} is not one")
    manifest = read_manifest(base)
    entry = resolve_model(model_path, base, manifest)
    model_inputs = entry.get("inputs") or []
    text = bool(entry.get("tokenizer"))
    if text and inference_params is not None:
        raise InferenceParamsError(
            f"model {entry['name']!r} takes text, typed or pasted by the user in the browser: use "
            "inference_params=None (the text never reaches Python), or the server-side API for text you already have")
    kind = input_kind(input, entry, inference_params)
    if rate is not None and (kind not in LIVE_KINDS or isinstance(rate, bool) or not isinstance(rate, (int, float))
                             or not 0 < rate <= MAX_RATE):
        raise InferenceParamsError(
            f"rate (results a second) must be a number in (0, {MAX_RATE}], with input='camera' or input='microphone'")
    inputs = build_inputs(inference_params, model_inputs) if inference_params is not None else None
    mode = "data" if inputs is not None else "client"
    audio = _preprocess_kind(entry) == "audio"  # its preprocess names how each input is fed
    if mode == "client" and not text and not audio and len(model_inputs) != 1:
        raise InferenceParamsError("the in-browser input mode needs a model with exactly one input")
    # The page's origin as its browser reports it: only to say early when the page will not be
    # allowed to frame the sandbox. Who may frame it is the serving origin's configuration
    # (frame-ancestors), never this value.
    parent = parent_origin or _streamlit_origin()
    sandbox_url = base + "sandbox.html"
    status, headers, _ = _fetch(sandbox_url, method="HEAD")
    _, worker_headers, _ = _fetch(base + "worker.js", method="HEAD")
    problems = compare_policy(sc, headers, worker_headers=worker_headers)
    if local and parent:
        from .server import default_server

        allowed = default_server().parents
        if parent not in allowed:
            problems.append(
                f"this page ({parent}) may not frame the local runtime, which allows {', '.join(allowed) or 'no other origin'}: "
                "set SECURE_CONTEXT_FRAME_ANCESTORS to the origin your users open (https://host[:port], or http:// on "
                "loopback), or Streamlit's browser.serverAddress / browser.serverPort"
            )
    return {
        "base": base,
        "sandboxUrl": sandbox_url,
        "local": local,
        "model": entry["name"],
        "mode": mode,
        "inputs": inputs,
        "request": _request_id(base, entry["name"], entry.get("sha256"), mode, inputs, sc.to_json(), return_result, kind, rate),
        "config": sc.to_json(),
        "expectedParent": parent,
        "returnResult": return_result,
        "labels": entry.get("labels"),
        "inputSpec": model_inputs[0] if len(model_inputs) == 1 else None,
        "text": text,
        "inputKind": kind or ("text" if text else _preprocess_kind(entry) or "tensor"),
        "inputRate": float(rate) if rate is not None else (1.0 if kind in LIVE_KINDS else None),
        "timeoutMs": timeout_ms,
        "problems": problems,
    }


def streamlit_secure_context(
    model_path: str,
    security_config: Mapping[str, Any] | None = None,
    inference_params: Mapping[str, Any] | None = None,
    key: str | int | None = None,
    *,
    base_url: str | None = None,
    return_result: bool = True,
    timeout_ms: int | None = None,
    height: int | str = "content",
    input: str | None = None,  # noqa: A002
    rate: float | None = None,
    model_options: Mapping[str, Any] | None = None,
) -> dict | None:
    """Runs ``model_path`` privately in the user's browser and returns the result to Python.

    model_path: a model name from the serving origin's models/manifest.json (``"digits"``) or
        the URL of a listed model file on that origin. The sandbox verifies it (SRI + SHA-256).
        Or a local ``.onnx``/``.tflite`` file when this package serves the runtime (no base_url):
        checked by the engine as ``secure-context models add`` checks it (the CLI, from
        $SECURE_CONTEXT_BIN or PATH), hashed and pinned when first used, served from the
        package's own origin and verified by the sandbox like every model. With an edge app
        serving the runtime it raises :class:`ModelPathError` saying how to add it there.
    model_options: for a local model file: ``name``, ``labels``, ``license``, ``source``,
        ``attribution``, ``preprocess``, ``postprocess`` (the manifest entry's fields, as
        ``secure-context models add`` takes them).
    security_config: what you require: ``coop``/``coep`` (the engine must be cross-origin
        isolated), ``csp`` (the served CSP must be at least this strict), ``sandbox`` (the
        iframe's sandbox tokens), ``requireHTTPS``. Invalid or unsafe values raise
        :class:`SecurityConfigError`; an environment that falls short fails closed with a
        visible message and returns None.
    inference_params: ``{"input": [...]}`` (flat or nested; shape from the manifest) runs on
        that data. ``None``: client-only mode. The user draws or picks a file inside the
        sandbox frame, a document of the serving origin (not of the Streamlit page, which can
        neither read it nor see its events); the engine runs there, and only the outputs are
        posted back to the page and on to Python (nothing at all with return_result=False).
        The raw input never exists in the Streamlit page nor reaches any server. For a text
        model (its manifest entry names a tokenizer, e.g. ``"pii"``) the user types or pastes
        text in the frame, where it is tokenized and run; only the outputs (e.g. ``logits``,
        one row per token of each window) come back, never the text or its offsets.
    input: what the user gives inside the sandbox frame when inference_params is None:
        ``"image"`` an image file, made into the tensor as the model's manifest entry declares
        (``preprocess``) and post-processed there (``postprocess``: classes, boxes, a mask);
        ``"text"`` typed or pasted text (a model with a tokenizer); ``"tensor"`` a draw pad or a
        numbers file; ``"camera"`` live camera frames, each preprocessed like an image, the
        camera opened only in the sandbox frame (its iframe gets ``allow="camera"``; the
        runtime's Permissions-Policy lets the sandbox document alone use it) once the user
        presses Start there. ``"audio"`` an audio file (WAV, or what the browser decodes),
        ``"microphone"`` live microphone samples (the frame gets ``allow="microphone"``; opened
        once the user presses Start there): either is made into the model's inputs as its
        manifest entry declares (``preprocess`` kind audio: mono, sample rate, windows, and the
        rate and state inputs of a model like Silero VAD) and run window by window in the frame;
        Python gets the per-window outputs and ``result`` (``postprocess`` kind scores: one
        score per window), never a sample. ``None``: what the manifest entry implies.
    rate: with ``input="camera"`` or ``input="microphone"``, the most results a second sent to
        Python (default 1; each one reruns the script; a microphone result carries every window
        since the previous one).
    key: the Streamlit widget key (give one when the inputs change between reruns).
    base_url: the edge app serving the runtime (default: $SECURE_CONTEXT_URL, else a local
        server in this process on 127.0.0.1 serving the package's copy of build/web).

    Returns ``{"outputs": {name: {"data": [...], "shape": [...]}}, "model": {...},
    "isolation": {...}, "timings": {...}, "prediction": {...}?, "result": {...}?}`` once the
    browser answered, else None. ``result`` is the manifest's ``postprocess`` applied in the
    browser: ``{"kind": "classes", "classes": [[{"label", "index", "score"}, ...]]}``,
    ``{"kind": "boxes", "boxes": [{"box", "score", "index", "label"}, ...]}`` or
    ``{"kind": "mask", "width", "height", "mask": [0/1 or class per pixel, row-major]}`` or
    ``{"kind": "scores", "scores": [one per window], "threshold", "step": seconds per window}``.
    """
    import streamlit as st

    d = prepare(model_path, security_config, inference_params, base_url=base_url,
                return_result=return_result, timeout_ms=timeout_ms, input=input, rate=rate,
                model_options=model_options)
    if d["problems"]:
        st.error("secure-context refused to run: " + "; ".join(d["problems"]))
        return None
    state_key = f"_secure_context_result_{key}" if key is not None else None
    previous = st.session_state.get(state_key) if state_key else None
    d["have"] = previous.get("request") if isinstance(previous, dict) else None
    d.pop("problems")
    d.pop("local")
    res = _launcher()(key=key, data=d, default={"result": None}, on_result_change=lambda: None, height=height)
    value = res.get("result") if hasattr(res, "get") else getattr(res, "result", None)
    if not isinstance(value, dict) or value.get("request") != d["request"]:
        value = previous if isinstance(previous, dict) and previous.get("request") == d["request"] else None
    if value is None or not return_result:
        return None
    if state_key:
        st.session_state[state_key] = value
    return _shape_result(value, d.get("labels"))


def _shape_result(value: dict, labels: list | None) -> dict:
    out = {k: value.get(k) for k in ("outputs", "model", "engine", "isolation", "timings", "source")}
    if isinstance(value.get("result"), dict):
        out["result"] = value["result"]
    outputs = value.get("outputs") or {}
    if labels and len(outputs) == 1:
        (o,) = outputs.values()
        data = o.get("data") or []
        if len(data) == len(labels):
            best = max(range(len(data)), key=data.__getitem__)
            out["prediction"] = {"label": labels[best], "index": best, "score": data[best]}
    return out
