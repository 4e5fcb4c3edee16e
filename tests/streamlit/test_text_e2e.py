"""End to end, text: `streamlit run examples/pii_demo.py` driven by headless Chromium
(tests/streamlit/drive.mjs, scenario `text`). The user types a note into the text box of the framed
sandbox document (the runtime's origin); it is tokenized and run there, and only the logits go to
Python. The test then searches the Streamlit page's DOM, every message it received, every request
of the browser and every websocket frame for the note (names, address, email, phone, a long slice
of it): nothing may be found, while the same search finds the logits (bit-exact float32 values
the engine computed, from tests/text/reference.py and the engine component) where they are meant
to go.

The runtime is served on its own origin: while the engine needs the stripped copy of the PII
model (tests/text/reference.py STRIP_VALUE_INFO), by the reference server (tests/browser/serve.mjs,
same headers) over a copy of build/web holding that copy; afterwards by the real edge app.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_e2e import ARTIFACTS, ROOT, Procs, drive, free_port, wait_http

sys.path.insert(0, str(ROOT / "tests" / "text"))
sys.path.insert(0, str(ROOT / "examples" / "python"))
import reference as ref_  # noqa: E402
from run import Engine  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (ROOT / "build" / "web" / "text").is_dir(), reason="needs scripts/build-web")

NOTE = ref_.NOTES[1]
SECRETS = ["Whitfield", "123-45-6789", "88 Harbor View Road", "john.whitfield@example.com", "555-0199",
           "XJ-44819-220", "D1234567", "Emily Chen", NOTE[40:90]]


@pytest.fixture(scope="module")
def web_root(tmp_path_factory):
    if not ref_.STRIP_VALUE_INFO:
        return ROOT / "build" / "web"
    root = tmp_path_factory.mktemp("web") / "web"
    shutil.copytree(ROOT / "build" / "web", root)
    data = ref_.engine_model_bytes()
    manifest = json.loads((root / "models" / "manifest.json").read_text())
    entry = next(m for m in manifest["models"] if m["name"] == "pii")
    (root / "models" / entry["file"]).write_bytes(data)
    entry.update(ref_.file_digest(root / "models" / entry["file"]))
    (root / "models" / "manifest.json").write_text(json.dumps(manifest))
    # The copy's manifest is no longer the one the build pinned: re-pin it up to sandbox.html as a
    # build would (web/pins.mjs), then write the copy's asset manifest again.
    for cmd in (["node", "web/pins.mjs", "repin", str(root)], ["node", "web/finalize.mjs", str(root), "build/policy.json"]):
        subprocess.run(cmd, cwd=ROOT, check=True)
    return root


@pytest.fixture(scope="module")
def app(tmp_path_factory, web_root):
    procs = Procs(tmp_path_factory.mktemp("text-e2e"))
    try:
        port = free_port()
        parent = f"http://127.0.0.1:{port}"
        runtime = procs.standin(parent, "--root", str(web_root)) if ref_.STRIP_VALUE_INFO else procs.edge(parent)
        url = procs.streamlit("examples/pii_demo.py", {"SECURE_CONTEXT_URL": runtime}, port)
        wait_http(url + "/_stcore/health")
        wait_http(runtime + "/sandbox.html")
        yield url, runtime
    finally:
        procs.close()


@pytest.fixture(scope="module")
def private_note(tmp_path_factory):
    """The note, the strings to search for, and positive controls: the engine's own logits for
    it (the same inference.wasm, on the reference tokenizer's ids) as JavaScript prints them."""
    engine = Engine()
    logits = engine.run(engine.load(ref_.engine_model_bytes()), ref_.feeds(ref_.hf_windows(NOTE)))["logits"]
    controls = [repr(float(v)) for v in logits.ravel()[:400] if abs(v) > 1][:3]
    assert all(len(c) >= 8 for c in controls), controls
    spec = tmp_path_factory.mktemp("note") / "note.json"
    assert all(s in NOTE for s in SECRETS)
    spec.write_text(json.dumps({"text": NOTE, "strings": SECRETS, "hex": [], "controls": controls}))
    return spec


def test_text_typed_in_the_frame_never_reaches_the_page_nor_any_request(app, private_note):
    url, runtime = app
    out = drive("text", url + "/", ARTIFACTS / "streamlit-text.png", extra_env={"DRIVE_PRIVATE": str(private_note),
                                                                             "DRIVE_TIMEOUT_MS": "180000"})
    m = re.match(r"Tokens flagged as personal data: (\d+) of (\d+)", out["flagged"])
    assert m and int(m[1]) >= 5, out["flagged"]
    assert int(out["frameEntities"]) >= 5, out["frameEntities"]
    assert "Whitfield" not in out["frameResult"] and "SURNAME" in out["frameResult"]
    assert out["inputUiInPage"] == 0
    assert out["inputFrameSrc"].startswith(runtime + "/sandbox.html?")
    priv = out["privacy"]
    assert priv["pageCanReadFrame"] is False
    assert priv["pointerEventsInPageWhileInputting"] == 0 and priv["keyEventsInPageWhileInputting"] == 0, priv
    assert set(priv["sandboxMessageTypes"]) <= {"hello", "pong", "progress", "ready", "result", "input-result"}, priv
    assert len(priv["inputResults"]) == 1, priv["inputResults"]
    r = priv["inputResults"][0]
    assert r["keys"] == ["id", "outputs", "seq", "type", "v"], r
    assert list(r["outputs"]) == ["logits"] and r["outputs"]["logits"]["keys"] == ["data", "shape"], r
    assert r["outputs"]["logits"]["shape"][0] == 1 and r["outputs"]["logits"]["shape"][2] == len(ref_.ENTRY["labels"])
    assert priv["requestsAfterInput"] == [], priv["requestsAfterInput"]
    assert priv["searched"]["markers"] == len(SECRETS) and priv["searched"]["websocketFrames"] > 0
    assert priv["leaks"] == [], priv["leaks"]
    # The same search finds the model's output where it is meant to go: bit-exact engine values.
    for marker, where in priv["controls"].items():
        assert "websocket frames" in where and "messages to the page" in where, (marker, where)
    assert not out["pageErrors"], out["pageErrors"]
