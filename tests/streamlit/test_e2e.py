"""End to end: real `streamlit run` on 127.0.0.1, driven by headless Chromium (tests/streamlit/drive.mjs).

Needs target/release/secure-context and build/web (scripts/build, scripts/build-web) and the
package installed with its copy of build/web (scripts/build-python).
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
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVE = ROOT / "tests" / "streamlit" / "drive.mjs"
ARTIFACTS = ROOT / "tests" / "artifacts"
CLI = ROOT / "target" / "release" / "secure-context"

pytestmark = pytest.mark.skipif(not (ROOT / "build" / "web" / "sandbox.html").exists() or not CLI.exists(),
                                reason="needs scripts/build and scripts/build-web")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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

    def edge(self, parent: str, *extra: str) -> str:
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
    """Every server, started in parallel: Streamlit apps on 127.0.0.1 and stand-ins for the edge app
    (the reference server tests/browser/serve.mjs, with the Streamlit origin in frame-ancestors)."""
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
        # isolation not achieved: an edge without Document-Isolation-Policy, a page without COOP/COEP
        port = free_port()
        no_dip = procs.edge(f"http://127.0.0.1:{port}", "--no-dip")
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


def drive(scenario: str, url: str, shot: Path | None = None, extra_args: str = "") -> dict:
    env = {**os.environ, "DRIVE_TIMEOUT_MS": "60000"}
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


def test_client_only_mode_returns_only_the_result(apps):
    out = drive("draw", apps["local"] + "/")
    assert out["drawn"].startswith("You drew a 1"), out["drawn"]


def test_edge_app_url(apps, engine_output):
    out = drive("data", apps["edge"] + "/")
    assert_bit_identical(page_probabilities(out), engine_output)
    assert all(f["src"].startswith(apps["edge_runtime"] + "/sandbox.html?parents=") for f in out["frames"])


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
    port = apps["checks"].rsplit(":", 1)[1]
    out = drive("error", f"http://streamlit.test:{port}/?case=require",
                extra_args="--host-resolver-rules=MAP streamlit.test 127.0.0.1")
    text = " ".join(out["errors"])
    assert "requireHTTPS: this Streamlit page is served over http on streamlit.test" in text, text
