"""The server-side API runs the engine the browser runs: bit-identical outputs.

The app is served as scripts/up serves it (`secure-context serve --manifest spin.toml`) with
SC_API=on. For every shipped model, the API's outputs, in both wire forms (JSON and
safetensors), must equal `secure-context run`'s bit for bit; for digits, also the browser
worker's (tests/artifacts/browser-digits-probabilities.bin, left by scripts/test-browser).
"""
import json
import os
import re
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

SAFETENSORS = "application/vnd.safetensors"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sc_bin(repo_root):
    return os.environ.get("SC_BIN", str(repo_root / "target" / "release" / "secure-context"))


@pytest.fixture(scope="module")
def api(repo_root, sc_bin):
    port = _free_port()
    log = open(repo_root / "build" / "api-parity-server.log", "w+")
    p = subprocess.Popen([sc_bin, "serve", "--manifest", str(repo_root / "spin.toml"),
                          "--env", "SC_API=on", "--addr", f"127.0.0.1:{port}"],
                         stdout=log, stderr=log, cwd=repo_root)
    deadline = time.time() + 180
    while True:
        log.seek(0)
        if "Serving HTTP" in log.read():
            break
        assert p.poll() is None and time.time() < deadline, "server did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    p.terminate()
    p.wait(10)
    log.close()


def infer(origin, model, inputs, form):
    if form == "json":
        body = json.dumps({"inputs": {k: {"dtype": str(v.dtype), "shape": list(v.shape),
                                          "data": v.ravel().tolist()} for k, v in inputs.items()}})
        ctype = "application/json"
    else:
        body, ctype = st_save(inputs), SAFETENSORS
    req = urllib.request.Request(f"{origin}/api/models/{model}/infer", data=body if isinstance(body, bytes) else body.encode(),
                                 headers={"Content-Type": ctype}, method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        data = r.read()
        assert r.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    if form == "json":
        out = json.loads(data)["outputs"]
        return {k: np.array(v["data"], dtype=v["dtype"]).reshape(v["shape"]) for k, v in out.items()}
    return st_load(data)


def cli(sc_bin, repo_root, tmp_path, model_file, inputs):
    tmp_path.mkdir(parents=True, exist_ok=True)
    args = [sc_bin, "run", "--model", str(repo_root / "models" / model_file), "--out", str(tmp_path / "out")]
    for k, v in inputs.items():
        np.save(tmp_path / f"{k}.npy", v)
        args += ["--input", f"{k}={tmp_path / f'{k}.npy'}"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return {p.stem: np.load(p) for p in (tmp_path / "out").glob("*.npy")}


def npy_name(output):
    """The file the CLI writes an output to, without .npy (host/src/npy.rs file_name; short names)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", output)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def model_inputs(entry, x):
    """Held-out digits in the layout each shipped digits model takes (see models/manifest.json);
    for an audio model, a window as its preprocess declares it (seeded noise; the rate and a
    zero state in the inputs it names); for the others (an image model), seeded uniform values
    of their shape."""
    pre = entry.get("preprocess") or {}
    if pre.get("kind") == "audio":
        rng = np.random.default_rng(sum(map(ord, entry["name"])))
        dtypes = {i["name"]: i for i in entry["inputs"]}
        one = lambda: {  # noqa: E731
            pre["input"]: (0.3 * rng.standard_normal((1, pre.get("context", 0) + pre["window"]))).astype(np.float32),
            **({pre["rate_input"]: np.array(pre["sample_rate"], dtypes[pre["rate_input"]]["dtype"])} if "rate_input" in pre else {}),
            **({pre["state_input"]: np.zeros([d if isinstance(d, int) else 1 for d in dtypes[pre["state_input"]]["shape"]], np.float32)}
               if "state_input" in pre else {}),
        }
        return [one() for _ in range(2)]
    shape = [d if isinstance(d, int) else 1 for d in entry["inputs"][0]["shape"]]
    name = entry["inputs"][0]["name"]
    if int(np.prod(shape)) != x[0].size:
        rng = np.random.default_rng(sum(map(ord, entry["name"])))
        return [{name: rng.uniform(0, 1, shape).astype(np.float32)} for _ in range(2)]
    return [{name: np.ascontiguousarray(x[i].reshape(shape), np.float32)} for i in (0, 1, 7, 100, 449)]


def test_every_model_matches_the_cli(api, manifest, digits_test_set, sc_bin, repo_root, tmp_path):
    x, _ = digits_test_set
    assert len(manifest["models"]) >= 2
    # Text models take text, not digits: tests/text/test_pii_model.py covers them.
    for entry in (m for m in manifest["models"] if "tokenizer" not in m):
        for n, inputs in enumerate(model_inputs(entry, x)):
            ref = cli(sc_bin, repo_root, tmp_path / f"{entry['name']}{n}", entry["file"], inputs)
            for form in ("json", "safetensors"):
                got = {npy_name(k): v for k, v in infer(api, entry["name"], inputs, form).items()}
                assert sorted(got) == sorted(ref), entry["name"]
                for k in ref:
                    assert same_bits(got[k], ref[k]), f"{entry['name']} input {n} {form}: {k}"


def test_digits_matches_the_browser(api, browser_digits, digits_test_set):
    browser = browser_digits
    x, _ = digits_test_set
    for i in range(450):
        form = "json" if i % 2 else "safetensors"
        got = infer(api, "digits", {"input": np.ascontiguousarray(x[i : i + 1], np.float32)}, form)
        p = got["probabilities"].reshape(10)
        assert p.view(np.uint32).tolist() == browser[i].view(np.uint32).tolist(), f"image {i} ({form})"
