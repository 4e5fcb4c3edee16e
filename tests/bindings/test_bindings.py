"""One engine component, three languages, and a wasi-nn guest that knows nothing of us.

- `secure-context run` (Rust, wasmtime), examples/js/run.mjs (jco transpile, Node) and
  examples/python/run.py (the `wasmtime` package) run the same inference.wasm on the same
  held-out digits: every output byte must match, and a wrong input shape must come back as the
  same readable wasi-nn error in each language.
- examples/wasi-nn-guest (a plain wasi-nn command), composed with the engine by `wac plug`, imports
  no wasi:nn, and runs under wasmtime (Python package), under Node and in headless Chromium
  (both through jco) with outputs equal to the host's.

Needs scripts/test-bindings to have built build/bindings/ (it runs these tests).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "digits.onnx"
TFLITE = REPO / "models" / "tiny-conv.tflite"
BUILD = REPO / "build" / "bindings"
SC = os.environ.get("SC_BIN", str(REPO / "target" / "release" / "secure-context"))
JCO = REPO / "web" / "node_modules" / ".bin" / "jco"
GUEST = REPO / "target" / "wasi-nn-guest" / "wasm32-wasip2" / "release" / "wasi-nn-classify.wasm"
COMPOSED = BUILD / "guest" / "classify.wasm"
COMPOSED_JS = BUILD / "guest" / "js" / "classify.js"
# (model, input): the held-out digits as a batch and alone, and a TFLite model on NHWC.
CASES = [(MODEL, "batch"), (MODEL, "one"), (TFLITE, "one-nhwc")]


def node_command():
    """inference.wasm uses relaxed SIMD, which V8 enables by default from Node 21 on; older Node
    needs the flag (or the simd128-only build, inference-baseline.wasm)."""
    major = int(subprocess.run(["node", "-p", "process.versions.node.split('.')[0]"],
                               capture_output=True, text=True, check=True).stdout)
    return ["node", "--experimental-wasm-relaxed-simd"] if major < 21 else ["node"]


NODE = node_command()


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], cwd=REPO, capture_output=True, text=True,
                          timeout=300, **kw)


def runners(model=MODEL):
    """The three ways to run inference.wasm: command lines writing DIR/NAME.npy."""
    return {
        "rust": [SC, "run", "--model", model],
        "js": [*NODE, REPO / "examples" / "js" / "run.mjs", "--model", model],
        "python": [sys.executable, REPO / "examples" / "python" / "run.py", "--model", model],
    }


@pytest.fixture(scope="module")
def digits():
    x = np.load(REPO / "models" / "digits-test" / "x.npy")
    y = np.load(REPO / "models" / "digits-test" / "y.npy")
    return x, y


@pytest.fixture(scope="module")
def inputs(digits, tmp_path_factory):
    """The whole held-out set as one batch, one image alone (also NHWC, for the TFLite
    model), and a wrongly shaped image."""
    x, _ = digits
    d = tmp_path_factory.mktemp("inputs")
    np.save(d / "batch.npy", x)
    np.save(d / "one.npy", x[7:8])
    np.save(d / "one-nhwc.npy", x[7:8].transpose(0, 2, 3, 1))
    np.save(d / "flat.npy", x[7:8].reshape(1, 64))
    return d


@pytest.fixture(scope="module")
def host_outputs(inputs, tmp_path_factory):
    """`secure-context run` (the Rust host): the reference every other runner must match."""
    out = {}
    for model, name in CASES:
        d = tmp_path_factory.mktemp(f"rust-{name}")
        r = run([SC, "run", "--model", model, "--input", f"input={inputs / f'{name}.npy'}", "--out", d])
        assert r.returncode == 0, r.stderr
        out[model, name] = np.load(d / "probabilities.npy")
    return out


@pytest.mark.parametrize("lang", ["js", "python"])
@pytest.mark.parametrize("model,name", CASES, ids=[f"{m.name}-{n}" for m, n in CASES])
def test_languages_are_bit_identical_to_the_host(lang, model, name, inputs, host_outputs, digits, tmp_path):
    cmd = runners(model)[lang]
    r = run([*cmd, "--input", f"input={inputs / f'{name}.npy'}", "--out", tmp_path])
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probabilities.npy"]
    got = np.load(tmp_path / "probabilities.npy")
    want = host_outputs[model, name]
    assert (got.dtype, got.shape) == (want.dtype, want.shape)
    assert got.tobytes() == want.tobytes(), f"{lang}: outputs differ from the host's"
    if name == "batch":
        # Equal and also right: the model classifies the held-out digits.
        _, y = digits
        assert (got.argmax(axis=1) == y).mean() > 0.95


def test_wrong_shape_is_the_same_readable_error_in_every_language(inputs, tmp_path):
    errors = {}
    for lang, cmd in runners().items():
        r = run([*cmd, "--input", f"input={inputs / 'flat.npy'}", "--out", tmp_path / lang])
        assert r.returncode == 1, f"{lang}: {r.stdout}{r.stderr}"
        assert not (tmp_path / lang).exists(), f"{lang} wrote outputs for a failed run"
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("error: invalid-argument: "), f"{lang}: {r.stderr}"
        # The message names the input, what the model wants and what it got.
        assert all(s in last for s in ('"input"', "[batch,1,8,8]", "[1,64]")), last
        errors[lang] = last
    assert len(set(errors.values())) == 1, errors


def test_a_bad_model_is_the_same_readable_error_in_every_language(inputs, tmp_path):
    bad = tmp_path / "not-a-model.onnx"
    bad.write_bytes(b"\x08\x07 definitely not protobuf" * 10)
    errors = {}
    for lang, cmd in runners(bad).items():
        r = run([*cmd, "--input", f"input={inputs / 'one.npy'}", "--out", tmp_path / lang])
        assert r.returncode == 1, f"{lang}: {r.stdout}{r.stderr}"
        errors[lang] = r.stderr.strip().splitlines()[-1]
        assert errors[lang].startswith("error: invalid-argument: not a valid ONNX model"), errors[lang]
    assert len(set(errors.values())) == 1, errors


# --- the wasi-nn guest composed with the engine ------------------------------------------


def imports(component: Path):
    r = run([JCO, "wit", component])
    assert r.returncode == 0, r.stderr
    return re.findall(r"^\s*import ([^;]+);", r.stdout, re.M)


def test_the_composition_imports_no_wasi_nn():
    assert any(i.startswith("wasi:nn/") for i in imports(GUEST)), "the guest should need wasi-nn"
    composed = imports(COMPOSED)
    assert composed and not [i for i in composed if i.startswith("wasi:nn/")], composed
    # Only WASI p2 is left for the host to provide.
    assert all(i.startswith("wasi:") for i in composed), composed


def run_guest(runtime, dirs, args):
    """Runs the composed guest once; returns (exit code, stdout, stderr)."""
    if runtime != "browser":
        pre = [a for d in dirs for a in ("--dir", d)]
        runner = {
            "wasmtime": [sys.executable, REPO / "examples" / "wasi-nn-guest" / "run_wasmtime.py", *pre, COMPOSED],
            "node": [*NODE, REPO / "examples" / "wasi-nn-guest" / "run_node.mjs", *pre, COMPOSED_JS],
        }[runtime]
        r = run([*runner, *args])
        return r.returncode, r.stdout, r.stderr
    # In the page, files live in preview2-shim's in-memory filesystem: every argument that
    # names a file under `dirs` is served (same path) and put there.
    files, extra = {}, []
    for a in args:
        p = Path(str(a).split("=", 1)[-1])
        if any(p.is_relative_to(d) for d in dirs):
            files[str(p)] = f"/__files{p}"
            extra.append(f"/__files{p}={p}")
    r = run(["node", REPO / "tests" / "bindings" / "browser_guest.mjs",
             json.dumps([str(a) for a in args]), json.dumps(files), *extra])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # The page runs under the runtime's CSP: nothing may be refused, nothing may throw.
    assert out["cspReports"] == [] and out["pageErrors"] == [], out
    # And the demo page, by itself, classifies the held-out digits.
    assert re.match(r"probabilities: FP32\[450, 10\] classes \[[\d, ]+\]\s*exit 0$", out["demo"]), out["demo"]
    return out["code"], out["stdout"], out["stderr"]


def parse_guest(stdout: str):
    """The guest prints `NAME: TYPE[dims] classes [...]` and `NAME bytes: HEX`."""
    head = re.search(r"^probabilities: FP32\[([\d, ]*)\] classes \[([\d, ]*)\]$", stdout, re.M)
    data = re.search(r"^probabilities bytes: ([0-9a-f]*)$", stdout, re.M)
    assert head and data, stdout
    shape = tuple(int(s) for s in head[1].split(","))
    classes = [int(s) for s in head[2].split(",")]
    return shape, classes, bytes.fromhex(data[1])


RUNTIMES = ["wasmtime", "node", "browser"]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("name", ["batch", "one"])
def test_guest_outputs_equal_the_host(runtime, name, inputs, host_outputs):
    code, stdout, stderr = run_guest(runtime, [REPO / "models", inputs], [MODEL, f"input={inputs / f'{name}.npy'}"])
    assert code == 0, stderr
    shape, classes, data = parse_guest(stdout)
    want = host_outputs[MODEL, name]
    assert shape == want.shape
    assert data == want.tobytes(), f"{runtime}: the guest's outputs differ from the host's"
    assert classes == want.argmax(axis=1).tolist()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_guest_reports_wasi_nn_errors(runtime, inputs):
    code, stdout, stderr = run_guest(runtime, [REPO / "models", inputs], [MODEL, f"input={inputs / 'flat.npy'}"])
    assert code == 1, stdout + stderr
    assert stdout == ""
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: invalid-argument: ") and "[1,64]" in last, stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_guest_sees_only_preopened_directories(runtime, inputs):
    # The models directory is not preopened (in the page: not put in its filesystem), so the
    # guest cannot read the model.
    code, _, stderr = run_guest(runtime, [inputs], [MODEL, f"input={inputs / 'one.npy'}"])
    assert code == 1
    assert f"error: {MODEL}:" in stderr, stderr


def test_the_examples_tables_are_the_engines():
    """The JavaScript and Python examples keep a copy of the carrier table (so each file stands
    alone); both must equal the one definition, components/nn-tables, as the host exports it."""
    r = run([SC, "tables", "--json"])
    assert r.returncode == 0, r.stderr
    tables = json.loads(r.stdout)
    assert tables["format"] == "secure-context-nn-tables/1"
    npy = {c["wit"]: c["npy"] for c in tables["carriers"]}
    assert {c["wit"]: c["bytes"] for c in tables["carriers"]} == {
        k: np.dtype(v).itemsize for k, v in npy.items()}

    js = run([*NODE, "--input-type=module", "-e",
              f"import {{ DESCR, TYPE_OF }} from {json.dumps((REPO / 'examples/js/run.mjs').as_uri())};"
              "console.log(JSON.stringify({ DESCR, TYPE_OF }))"])
    assert js.returncode == 0, js.stderr
    js = json.loads(js.stdout)
    assert js["DESCR"] == npy
    # Reading: every .npy spelling of a carrier's dtype, and nothing else (bf16 has no dtype).
    readable = {k: v for k, v in npy.items() if k != "BF16"}
    assert {np.dtype(d).str: t for d, t in js["TYPE_OF"].items()} == {
        np.dtype(v).str: k for k, v in readable.items()}

    sys.path.insert(0, str(REPO / "examples" / "python"))
    try:
        import run as py_example
    finally:
        sys.path.pop(0)
    assert {k: np.dtype(v).str for k, v in py_example.DTYPES.items()} == {
        k: np.dtype(v).str for k, v in npy.items()}
