"""A model file on this machine as ``model_path``, when the package serves the runtime itself.

The file is read once, checked by the engine exactly as ``secure-context models add`` checks it
(that command writes the manifest entry: inputs and outputs as the engine reads them, sha256,
SRI, size, and the declared pre/post-processing; a model the engine cannot load is refused with
the engine's error), and added to the local server's site: the model's bytes, the manifest with
its entry, and the chain that pins the manifest (its SRI in ``sandbox.js``, whose SRI is in
``sandbox.html``) re-pinned as ``node web/pins.mjs repin`` does, so the sandbox verifies this model
like every other. The bytes served are the bytes hashed when it was first used ("pinned at
start"): a file changed afterwards is refused until the app restarts.

Where the runtime is served by an edge app (``base_url=`` / ``$SECURE_CONTEXT_URL``), that app
serves only the models built into it: the error says how to add one there.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Mapping

from .config import ModelPathError

SUFFIXES = (".onnx", ".tflite")
OPTION_KEYS = ("name", "labels", "license", "source", "attribution", "preprocess", "postprocess")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$", re.I)
CLI_TIMEOUT_S = 300


def is_local_file(model_path: Any) -> bool:
    """A path (str or os.PathLike) to an existing .onnx/.tflite file."""
    if isinstance(model_path, os.PathLike):
        model_path = os.fspath(model_path)
    return (isinstance(model_path, str) and model_path.lower().endswith(SUFFIXES)
            and os.path.isfile(model_path))


def sri(data: bytes) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def default_name(path: Path) -> str:
    stem = re.sub(r"[^a-z0-9._-]+", "-", path.stem.lower()).strip("-._") or "model"
    return stem[:64]


def add_command(path: str | os.PathLike[str], options: Mapping[str, Any] | None) -> str:
    """The `secure-context models add` line for this file and options (for the edge-app error)."""
    p = Path(path)
    o = dict(options or {})
    parts = ["secure-context", "models", "add", str(p), "--name", str(o.get("name") or default_name(p))]
    if o.get("labels"):
        parts += ["--labels", ",".join(map(str, o["labels"]))]
    for k in ("license", "source", "attribution"):
        if o.get(k):
            parts += [f"--{k}", str(o[k])]
    for k in ("preprocess", "postprocess"):
        if o.get(k):
            parts += [f"--{k}", json.dumps(o[k])]
    return " ".join(_quote(x) for x in parts)


def _quote(s: str) -> str:
    return s if re.fullmatch(r"[A-Za-z0-9_./,=:+-]+", s) else "'" + s.replace("'", "'\\''") + "'"


def edge_error(model_path: str | os.PathLike[str], base: str, options: Mapping[str, Any] | None) -> ModelPathError:
    name = (options or {}).get("name") or default_name(Path(model_path))
    return ModelPathError(
        f"model_path {os.fspath(model_path)!r} is a file on this machine, but the runtime is served by the edge app at "
        f"{base}, which serves only the models built into it (its models/manifest.json, pinned by the sandbox). Add it "
        f"there: `{add_command(model_path, options)}` (in the secure-context checkout), rebuild (`scripts/build-web`) "
        f"and deploy the edge app, then pass model_path={name!r}. Or leave base_url and $SECURE_CONTEXT_URL unset to "
        "have this package serve the runtime and the file itself")


def find_cli() -> str:
    """The `secure-context` CLI: $SECURE_CONTEXT_BIN, else on PATH."""
    explicit = os.environ.get("SECURE_CONTEXT_BIN")
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise ModelPathError(f"SECURE_CONTEXT_BIN={explicit!r} is not an executable file")
        return os.path.abspath(explicit)  # it runs in a temporary directory
    found = shutil.which("secure-context")
    if not found:
        raise ModelPathError(
            "a local model file is checked by the engine (`secure-context models add`), and the `secure-context` CLI "
            "was not found: build it (`scripts/build` in the secure-context checkout) and set "
            "SECURE_CONTEXT_BIN=/path/to/target/release/secure-context, or put it on PATH")
    return found


def check_options(options: Any) -> dict:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ModelPathError(f"model_options must be a dict with keys among {', '.join(OPTION_KEYS)}, got {type(options).__name__}")
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise ModelPathError(f"model_options: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(OPTION_KEYS)}")
    o = dict(options)
    if "name" in o and not (isinstance(o["name"], str) and _NAME.match(o["name"])):
        raise ModelPathError(f"model_options['name'] must match {_NAME.pattern}, got {o['name']!r}")
    if "labels" in o and not (isinstance(o["labels"], (list, tuple)) and all(isinstance(x, str) and x and "," not in x for x in o["labels"])):
        raise ModelPathError("model_options['labels'] must be a list of non-empty strings without commas")
    for k in ("license", "source", "attribution"):
        if k in o and not isinstance(o[k], str):
            raise ModelPathError(f"model_options[{k!r}] must be a string")
    for k in ("preprocess", "postprocess"):
        if k in o and not isinstance(o[k], Mapping):
            raise ModelPathError(f"model_options[{k!r}] must be a dict (fields: static/processing.json)")
    return o


def describe(data: bytes, path: Path, options: Mapping[str, Any]) -> dict:
    """The manifest entry `secure-context models add` writes for these bytes, or the engine's refusal."""
    cli = find_cli()
    name = options.get("name") or default_name(path)
    with tempfile.TemporaryDirectory(prefix="secure-context-model-") as tmp:
        t = Path(tmp)
        model = t / f"{name}{path.suffix.lower()}"
        model.write_bytes(data)  # the bytes hashed and served, not the path (which may change)
        (t / "manifest.json").write_text(json.dumps({"models": [], "version": 1}))
        cmd = [cli, "models", "add", str(model), "--manifest", str(t / "manifest.json"), "--name", name]
        if options.get("labels"):
            cmd += ["--labels", ",".join(options["labels"])]
        for k in ("license", "source", "attribution"):
            if options.get(k):
                cmd += [f"--{k}", options[k]]
        for k in ("preprocess", "postprocess"):
            if options.get(k):
                cmd += [f"--{k}", json.dumps(options[k])]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, cwd=tmp)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ModelPathError(f"model_path {str(path)!r}: `secure-context models add` did not finish: {e}") from e
        if r.returncode != 0:
            msg = "; ".join(x.strip().removeprefix("error: ") for x in r.stderr.replace(str(model), str(path)).splitlines() if x.strip())
            raise ModelPathError(f"model_path {str(path)!r} refused by `secure-context models add` (the engine's check): {msg}")
        (entry,) = json.loads((t / "manifest.json").read_text())["models"]
    if entry.get("sha256") != hashlib.sha256(data).hexdigest():
        raise ModelPathError(f"model_path {str(path)!r}: the engine checked other bytes than were hashed")
    entry.setdefault("source", f"a local file given to streamlit_secure_context ({path.name})")
    return entry


class LocalModels:
    """The local files added to one server's site, by resolved path: (size, mtime, sha256, entry, options)."""

    def __init__(self) -> None:
        self.by_path: dict[str, tuple[int, int, str, dict]] = {}
        self.lock = threading.Lock()  # sessions of one app run scripts in parallel

    def add(self, server: Any, model_path: str | os.PathLike[str], options: Mapping[str, Any] | None) -> dict:
        with self.lock:
            return self._add(server, model_path, options)

    def _add(self, server: Any, model_path: str | os.PathLike[str], options: Mapping[str, Any] | None) -> dict:
        path = Path(model_path).resolve()
        opts = check_options(options)
        opts_key = json.dumps(opts, sort_keys=True)
        st = path.stat()
        known = self.by_path.get(str(path))
        if known and (known[0], known[1], known[4]) == (st.st_size, st.st_mtime_ns, opts_key):
            return known[3]
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if known and known[2] != digest:
            raise ModelPathError(
                f"model_path {str(path)!r} changed since this app pinned it (sha256 {known[2][:16]}…, now {digest[:16]}…): "
                "restart the app to serve the new file")
        if known and known[4] == opts_key:
            self.by_path[str(path)] = (st.st_size, st.st_mtime_ns, digest, known[3], opts_key)
            return known[3]
        entry = describe(data, path, opts)  # new, or the same bytes declared otherwise
        server.add_model(entry, data)
        self.by_path[str(path)] = (st.st_size, st.st_mtime_ns, digest, entry, opts_key)
        return entry
