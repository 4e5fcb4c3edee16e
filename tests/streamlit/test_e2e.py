"""End to end: real `streamlit run` on 127.0.0.1, driven by headless Chromium (tests/streamlit/drive.mjs).

Two serving paths: the package's own local server (the default) and the real edge app
(`secure-context serve` of components/edge, on another origin, with the Streamlit origin in
SC_FRAME_ANCESTORS). Client-only mode is driven in both: the user draws / picks a file in the
framed sandbox document, and the test checks that the raw input never reaches the Streamlit page
(DOM, messages, pointer events) nor any request or websocket frame.

Needs target/release/secure-context, target/wasm32-wasip2/wasm/edge.wasm, build/web and
build/edge (scripts/build, scripts/build-web, scripts/build-edge) and the package installed with
its copy of build/web (scripts/build-python).
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVE = ROOT / "tests" / "streamlit" / "drive.mjs"
ARTIFACTS = ROOT / "tests" / "artifacts"
CLI = ROOT / "target" / "release" / "secure-context"
EDGE_WASM = ROOT / "target" / "wasm32-wasip2" / "wasm" / "edge.wasm"

pytestmark = pytest.mark.skipif(
    not (ROOT / "build" / "web" / "sandbox.html").exists() or not CLI.exists() or not EDGE_WASM.exists()
    or not (ROOT / "build" / "edge" / "encodings.json").exists(),
    reason="needs scripts/build, scripts/build-web and scripts/build-edge")


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nothing listens on and that this run has not handed out yet: a port chosen for a
    server that has not bound it yet is free to the OS, which may offer it again."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_http(url: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not come up")


class Procs:
    def __init__(self, tmp: Path) -> None:
        self.procs: list[subprocess.Popen] = []
        self.tmp = tmp

    def streamlit(self, script: str, env: dict | None = None, port: int | None = None) -> str:
        port = port or free_port()
        log = open(self.tmp / f"streamlit-{port}.log", "w")
        p = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", script, "--server.address", "127.0.0.1", "--server.port", str(port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return f"http://127.0.0.1:{port}"

    def edge(self, parent: str) -> str:
        """The real edge app (components/edge) under `secure-context serve`, as tests/edge/lib.mjs starts it."""
        port = free_port()
        log = open(self.tmp / f"edge-{port}.log", "w")
        p = subprocess.Popen(
            [str(CLI), "serve", "-Scli", "--dir", f"{ROOT / 'build/web'}::/web", "--dir", f"{ROOT / 'build/edge'}::/edge",
             "--env", f"SC_FRAME_ANCESTORS={parent}", "--addr", f"127.0.0.1:{port}", str(EDGE_WASM)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return f"http://127.0.0.1:{port}"

    def standin(self, parent: str, *extra: str) -> str:
        """tests/browser/serve.mjs with a header switched off: the edge app itself cannot be misconfigured so."""
        p = subprocess.Popen(["node", str(ROOT / "tests/streamlit/edge_server.mjs"), "--parent", parent, *extra],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p.stdout.readline().strip()

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    """Every server, started in parallel: Streamlit apps on 127.0.0.1, the edge app on its own origin
    (the Streamlit origin in its frame-ancestors), and a deliberately weakened stand-in."""
    procs = Procs(tmp_path_factory.mktemp("e2e"))
    urls = {}
    try:
        # the no-Spin default: the package serves build/web itself
        urls["local"] = procs.streamlit("examples/basic_demo.py")
        # the production path: the runtime on another origin (SECURE_CONTEXT_URL)
        port = free_port()
        urls["edge_runtime"] = procs.edge(f"http://127.0.0.1:{port}")
        urls["edge"] = procs.streamlit("examples/basic_demo.py", {"SECURE_CONTEXT_URL": urls["edge_runtime"]}, port)
        # bad configurations
        urls["checks"] = procs.streamlit("tests/streamlit/app_checks.py")
        # isolation not achieved: a server without Document-Isolation-Policy, a page without COOP/COEP
        while True:  # the stand-in picks its own port, which must not be the one set aside
            port = free_port()
            no_dip = procs.standin(f"http://127.0.0.1:{port}", "--no-dip")
            if not no_dip.endswith(f":{port}"):
                break
        urls["no_dip"] = procs.streamlit("tests/streamlit/app_checks.py", {"SECURE_CONTEXT_URL": no_dip}, port)
        # the st.App helper: the Streamlit page itself cross-origin isolated
        urls["isolated"] = procs.streamlit("tests/streamlit/isolated_app.py")
        for name, url in urls.items():
            wait_http(url + ("/_stcore/health" if name not in ("edge_runtime",) else "/sandbox.html"))
        yield urls
    finally:
        procs.close()


@pytest.fixture(scope="module")
def engine_output(tmp_path_factory):
    """The engine's output for the example's input, from the CLI (the same inference.wasm)."""
    tree = ast.parse((ROOT / "examples" / "basic_demo.py").read_text())
    pixels = next(n.value for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "SAMPLE_PIXELS")
    x = (np.array(ast.literal_eval(pixels), dtype=np.float64) / 16).astype(np.float32).reshape(1, 1, 8, 8)
    d = tmp_path_factory.mktemp("cli")
    np.save(d / "x.npy", x)
    subprocess.run([str(CLI), "run", "--model", str(ROOT / "models" / "digits.onnx"), "--input", f"input={d / 'x.npy'}",
                    "--out", str(d / "out")], check=True, capture_output=True)
    return np.load(d / "out" / "probabilities.npy")


def page_probabilities(out: dict) -> np.ndarray:
    return np.array(json.loads(out["code"])["probabilities"], dtype=np.float64)


def assert_bit_identical(got: np.ndarray, want: np.ndarray) -> None:
    got32 = got.astype(np.float32)
    assert np.array_equal(got32.astype(np.float64), got), "values on the page are not float32 values"
    assert got32.tobytes() == want.astype(np.float32).ravel().tobytes(), (got32, want.ravel())


def drive(scenario: str, url: str, shot: Path | None = None, extra_args: str = "", extra_env: dict | None = None) -> dict:
    env = {**os.environ, "DRIVE_TIMEOUT_MS": "60000", **(extra_env or {})}
    if extra_args:
        env["CHROMIUM_EXTRA_ARGS"] = json.dumps([extra_args])
    r = subprocess.run(["node", str(DRIVE), scenario, url, *([str(shot)] if shot else [])],
                       capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert not out.get("failure"), json.dumps(out, indent=1)[:4000]
    return out


def test_local_default_runs_in_the_worker_and_returns_the_engines_output(apps, engine_output):
    ARTIFACTS.mkdir(exist_ok=True)
    out = drive("data", apps["local"] + "/", ARTIFACTS / "streamlit.png")
    assert_bit_identical(page_probabilities(out), engine_output)
    first = out["boxes"][0]
    assert first["state"] == "done" and first["runs"] == "1"
    assert first["sha256"] == json.loads((ROOT / "models/manifest.json").read_text())["models"][0]["sha256"]
    assert "verified" in first["text"]
    frames = out["frames"]
    assert frames and all(f["sandbox"] == "allow-scripts allow-same-origin" and f["allow"] == "cross-origin-isolated" for f in frames)
    assert all(f["src"].startswith("http://127.0.0.1:") and f"parents={apps['local'].replace(':', '%3A').replace('/', '%2F')}" in f["src"] for f in frames)
    assert not out["pageErrors"]


@pytest.fixture(scope="module")
def private_input(tmp_path_factory):
    """A user's file for the client-only mode: a "7" from the digits test set, shifted by a small
    per-pixel offset so that each of its values has a long, unmistakable decimal form; the
    markers to search for (file name, values as text, float32/float64 bytes); and the engine's
    output for it from the CLI."""
    d = tmp_path_factory.mktemp("private")
    x = np.load(ROOT / "models" / "digits-test" / "x.npy")[9:10]
    assert int(np.load(ROOT / "models" / "digits-test" / "y.npy")[9]) == 7
    x = (x + np.float32(1.234e-4) + np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8) * np.float32(1.1e-6)).astype(np.float32)
    name = f"private-input-{uuid.uuid4().hex[:12]}.npy"
    np.save(d / name, x)
    flat = x.ravel()
    # JS and Python print a float32 widened to float64 the same way (shortest round-trip repr).
    strings = [name] + sorted({repr(float(v)) for v in flat})
    assert all(len(m) >= 10 for m in strings[1:]), strings
    hexes = [flat[i:i + 2].tobytes().hex() for i in range(0, 64, 2)] + [np.float64(v).tobytes().hex() for v in flat]
    subprocess.run([str(CLI), "run", "--model", str(ROOT / "models" / "digits.onnx"), "--input", f"input={d / name}",
                    "--out", str(d / "out")], check=True, capture_output=True)
    want = np.load(d / "out" / "probabilities.npy")
    spec = d / "private.json"
    spec.write_text(json.dumps({"file": str(d / name), "strings": strings, "hex": hexes,
                                "controls": [repr(float(v)) for v in want.ravel() if v >= 1e-3][:3]}))
    return {"spec": spec, "want": want, "markers": len(strings) + len(hexes)}


def drawn_probabilities(out: dict) -> np.ndarray:
    return np.array(json.loads(out["code"])["result_of_your_input"], dtype=np.float64)


def assert_input_stayed_in_the_frame(out: dict, runtime_origin: str) -> None:
    """What the Streamlit page (another origin than the runtime) could see of the user's input: nothing."""
    assert out["inputUiInPage"] == 0, "the input UI must not be in the Streamlit page"
    assert out["inputFrameSrc"].startswith(runtime_origin + "/sandbox.html?"), out["inputFrameSrc"]
    priv = out["privacy"]
    assert priv["pageCanReadFrame"] is False
    assert priv["pointerEventsInPageWhileInputting"] == 0, priv
    # From the sandbox, only protocol messages; each input-result carries outputs and nothing else.
    # ("port": the direct line offered to the page by the example's data-mode box, a frame of the
    # same origin; an input-mode frame offers none.)
    assert set(priv["sandboxMessageTypes"]) <= {"hello", "pong", "progress", "ready", "result", "input-result", "port"}, priv
    assert priv["inputResults"], "the result of the user's input never reached the page"
    for r in priv["inputResults"]:
        assert r["keys"] == ["id", "outputs", "seq", "type", "v"], r  # no timings: nothing about how the user worked
        assert r["outputs"] == {"probabilities": {"keys": ["data", "shape"], "typed": "Float32Array", "length": 10, "shape": [1, 10]}}, r
    # Once the model is loaded, the input causes no HTTP request at all (the websocket to Streamlit is already open).
    assert priv["requestsAfterInput"] == [], priv["requestsAfterInput"]


def test_client_only_mode_draw_in_the_frame(apps):
    out = drive("draw", apps["local"] + "/", ARTIFACTS / "streamlit-client-only.png")
    assert out["drawn"].startswith("You drew a 1"), out["drawn"]
    assert out["frameResult"].startswith("probabilities: 1 ("), out["frameResult"]
    assert_input_stayed_in_the_frame(out, out["inputFrameSrc"].split("/sandbox.html")[0])
    assert out["inputFrameSrc"].startswith("http://127.0.0.1:") and apps["local"] not in out["inputFrameSrc"].split("?")[0]


def test_client_only_mode_return_result_false_sends_nothing(apps):
    out = drive("silent", apps["checks"] + "/?case=silent")
    assert out["frameResult"].startswith("probabilities: 1 ("), out["frameResult"]  # it ran, in the frame
    priv = out["privacy"]
    assert priv["inputResults"] == [] and "input-result" not in priv["sandboxMessageTypes"], priv
    assert priv["pointerEventsInPageWhileInputting"] == 0 and priv["pageCanReadFrame"] is False
    assert priv["requestsAfterInput"] == [] and out["wsSentAfterInput"] == 0, (priv, out["wsSentAfterInput"])
    assert out["pythonSaw"] == "silent result: None"
    assert "nothing comes back to the app" in out["launcher"]


def check_file_input(out: dict, private_input: dict, runtime_origin: str) -> None:
    assert_bit_identical(drawn_probabilities(out), private_input["want"])
    assert out["drawn"].startswith("You drew a 7"), out["drawn"]
    assert out["chooserInFrame"] == runtime_origin, "the file chooser must belong to the framed runtime document"
    assert_input_stayed_in_the_frame(out, runtime_origin)
    priv = out["privacy"]
    assert priv["searched"]["markers"] == private_input["markers"] and priv["searched"]["websocketFrames"] > 0
    assert priv["leaks"] == [], priv["leaks"]
    # The same search finds the result where the result is meant to go (so it can find things).
    for marker, where in priv["controls"].items():
        assert "websocket frames" in where and "messages to the page" in where, (marker, where)


def test_client_only_mode_file_never_reaches_the_page_nor_any_request(apps, private_input):
    out = drive("file", apps["local"] + "/", extra_env={"DRIVE_PRIVATE": str(private_input["spec"])})
    check_file_input(out, private_input, out["inputFrameSrc"].split("/sandbox.html")[0])


def edge_headers_ok(out: dict, edge: str, streamlit: str) -> None:
    """The sandbox documents the browser framed came from the edge app, with its strict policy."""
    got = [r for r in out["sandboxResponses"] if r["url"].startswith(edge + "/sandbox.html?")]
    assert got, out["sandboxResponses"]
    for r in got:
        h = r["headers"]
        assert r["status"] == 200
        assert h["document-isolation-policy"] == "isolate-and-require-corp"
        assert h["content-security-policy"].endswith(f"frame-ancestors 'self' {streamlit}"), h["content-security-policy"]
        assert "require-trusted-types-for 'script'" in h["content-security-policy"]
        assert h["cross-origin-opener-policy"] == "same-origin" and h["cross-origin-embedder-policy"] == "require-corp"
        assert h["cross-origin-resource-policy"] == "cross-origin"  # framable by the listed ancestor only
        # The edge policy (the package's server and tests/browser/serve.mjs apply the same data).
        assert h["strict-transport-security"].startswith("max-age=") and "cross-origin-isolated=(self)" in h["permissions-policy"]
        assert h["x-permitted-cross-domain-policies"] == "none" and h["origin-agent-cluster"] == "?1"


def test_edge_app_url(apps, engine_output):
    out = drive("data", apps["edge"] + "/")
    assert_bit_identical(page_probabilities(out), engine_output)
    assert all(f["src"].startswith(apps["edge_runtime"] + "/sandbox.html?parents=") for f in out["frames"])
    edge_headers_ok(out, apps["edge_runtime"], apps["edge"])
    # isolated inside the Streamlit page (not isolated itself), thanks to the edge's Document-Isolation-Policy
    assert out["pageIsolated"] is False
    assert all("single-threaded" not in b["text"] and "\nisolated\n" in b["text"] for b in out["boxes"]), out["boxes"]


def test_edge_app_client_only_mode(apps, private_input):
    out = drive("file", apps["edge"] + "/", extra_env={"DRIVE_PRIVATE": str(private_input["spec"])})
    check_file_input(out, private_input, apps["edge_runtime"])
    edge_headers_ok(out, apps["edge_runtime"], apps["edge"])
    out = drive("draw", apps["edge"] + "/")
    assert out["drawn"].startswith("You drew a 1"), out["drawn"]
    assert_input_stayed_in_the_frame(out, apps["edge_runtime"])


def test_isolated_streamlit_page(apps, engine_output):
    out = drive("data", apps["isolated"] + "/")
    assert out["pageIsolated"] is True
    assert_bit_identical(page_probabilities(out), engine_output)


def test_bad_config_shows_its_error(apps):
    out = drive("error", apps["checks"] + "/?case=bad_config", ARTIFACTS / "streamlit-bad-config.png")
    text = " ".join(out["errors"])
    assert "SecurityConfigError" in text and "'unsafe-eval' is unsafe and is never allowed" in text, text


def test_served_policy_weaker_than_asked_fails_closed(apps):
    out = drive("error", apps["checks"] + "/?case=csp_mismatch")
    text = " ".join(out["errors"])
    assert "secure-context refused to run: CSP script-src: the served policy allows 'wasm-unsafe-eval'" in text, text


def test_isolation_not_achieved_fails_closed(apps):
    out = drive("error", apps["no_dip"] + "/?case=require")
    text = " ".join(out["errors"])
    assert "secure-context refused to run" in text and "not cross-origin isolated" in text, text


def test_https_required_on_a_non_local_host_fails_closed(apps):
    # The app whose runtime is served elsewhere (SECURE_CONTEXT_URL): with the package's own
    # server, its framing check (streamlit.test is not a configured parent) refuses first.
    port = apps["no_dip"].rsplit(":", 1)[1]
    out = drive("error", f"http://streamlit.test:{port}/?case=require",
                extra_args="--host-resolver-rules=MAP streamlit.test 127.0.0.1")
    text = " ".join(out["errors"])
    assert "requireHTTPS: this Streamlit page is served over http on streamlit.test" in text, text
