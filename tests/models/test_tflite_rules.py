"""Each TFLite rewrite rule (components/inference/src/tflite/rules/, one file per rule) on its
own small fixture, in both engines (the component on wasmtime and native), against LiteRT's
reference kernels.

The fixtures are written here, at test time, by fuzz/tflite_seeds.py's `rule_fixtures()` (the
PyPI `tflite` builders on `flatbuffers`; the same models seed the fuzzer): one per rule and per
variant a rule treats differently (CSR and 1x4-block sparse weights with int32 and uint8
indices; MEAN with and without keep_dims, over a negative axis; SAME and VALID transposed
convolutions). The third-party models (test_third_party.py) prove the rules at scale; these pin
each down where a failure names the rule.

Tolerance: 1e-5 of the output's scale (max(1, max |reference|)). Both sides compute in f32 in
different orders; the rules that only move constants (fp16 and sparse weights, default
options) must be within the same bound, which a wrong value or layout passes by far.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from litert_ref import litert

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "fuzz"))
from tflite_seeds import rule_fixtures  # noqa: E402

ENGINES = ["wasm", "native"]
RTOL = 1e-5
FIXTURES = rule_fixtures()
RULES_DIR = REPO_ROOT / "components/inference/src/tflite/rules"


def sc_bin():
    path = Path(os.environ.get("SC_BIN", "target/release/secure-context"))
    return path if path.is_absolute() else REPO_ROOT / path


def test_every_rule_has_a_fixture():
    """A rule file without a fixture here fails: a new rule comes with its test."""
    rules = sorted(p.stem for p in RULES_DIR.glob("*.rs") if p.stem != "mod")
    assert rules, RULES_DIR
    for rule in rules:
        assert any(name == rule or name.startswith(rule + "_") for name in FIXTURES), \
            f"rule {rule} has no fixture in fuzz/tflite_seeds.py rule_fixtures()"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_rule_matches_litert(name, engine, tmp_path):
    data = FIXTURES[name]
    ref = litert(data)
    rng = np.random.default_rng(sum(name.encode()))
    feeds = {}
    for d in ref.get_input_details():
        # Both signs: PRELU, RELU and the transposed convolution's zeros see negative values.
        feeds[d["name"]] = rng.uniform(-2, 2, d["shape"]).astype(d["dtype"])
        ref.set_tensor(d["index"], feeds[d["name"]])
    ref.invoke()

    model = tmp_path / f"{name}.tflite"
    model.write_bytes(data)
    args = [str(sc_bin()), "run", "--engine", engine, "--model", str(model),
            "--out", str(tmp_path / "out")]
    for feed, value in feeds.items():
        np.save(tmp_path / f"{feed}.npy", value)
        args += ["--input", f"{feed}={tmp_path / f'{feed}.npy'}"]
    res = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert res.returncode == 0, res.stderr
    for d in ref.get_output_details():
        want = ref.get_tensor(d["index"])
        got = np.load(tmp_path / "out" / f"{d['name']}.npy")
        assert got.shape == want.shape, f"{d['name']}: shape {got.shape}, LiteRT {want.shape}"
        scale = max(1.0, float(np.abs(want).max()))
        err = float(np.abs(got.astype(np.float64) - want).max())
        assert err <= RTOL * scale, f"{name} ({engine}): max abs error {err:.3g} vs LiteRT"
