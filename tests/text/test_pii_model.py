"""The PII demo's model in the engine component against onnxruntime, and the whole text pipeline
(tokenizer component + engine) against Hugging Face `tokenizers` + onnxruntime, on the synthetic
notes (tests/text/notes.py) and a long note cut into overlapping windows.

The model is the manifest's `pii` (Rampart, 4-bit MatMulNBits weights), fetched by
models/fetch.py. Tolerance on the logits: ATOL absolute (logits reach about +-12). Measured gap:
~3e-3, from the engine rounding each 4-bit block's scale to fp16 (issue #13 item 2; onnxruntime
keeps them in fp32); onnxruntime's own spread between its unoptimized and fully optimized
graphs is measured in the same run and must stay well below it. Labels (argmax) must be identical
on every token where onnxruntime's top two logits are more than MARGIN apart.

With $SC_TEXT_REPORT set, the measured figures are added to that JSON file.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from notes import NOTES
from tokenizer_wasm import COMPONENT, Tokenizers

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "examples" / "python"))
sys.path.insert(0, str(REPO / "models"))
import fetch  # noqa: E402
from run import DEFAULT_ENGINE, Engine  # noqa: E402

ATOL = 1e-2
MARGIN = 0.05
MANIFEST = json.loads((REPO / "models" / "manifest.json").read_text(encoding="utf-8"))
ENTRY = next(m for m in MANIFEST["models"] if m["name"] == "pii")
MAX_LENGTH, STRIDE = ENTRY["tokenizer"]["max_length"], ENTRY["tokenizer"]["stride"]
LONG = "\n\n".join(NOTES) * 3

# The engine refuses this export's named dims in `value_info` until issue #13 item 1 lands
# (`Impossible to unify Sym(batch_size) with Val(1)`). Until then the engine is given a copy with
# `value_info` stripped (made here, a test fixture; the product ships the file as it is);
# onnxruntime always gets the original. Set to False once the engine loads the original.
STRIP_VALUE_INFO = True


@pytest.fixture(scope="module")
def files():
    return fetch.fetch("pii-rampart.onnx"), fetch.fetch("pii-rampart.tokenizer.json")


@pytest.fixture(scope="module")
def engine_graph(files, tmp_path_factory):
    model, _ = files
    data = model.read_bytes()
    if STRIP_VALUE_INFO:
        m = onnx.load_from_string(data)
        del m.graph.value_info[:]
        data = m.SerializeToString()
    assert DEFAULT_ENGINE.is_file(), f"{DEFAULT_ENGINE} missing: scripts/build"
    engine = Engine()
    return engine, engine.load(data)


def sessions(model):
    full = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    return full, plain


def feeds(windows):
    """Windows (lists of ids with their attention masks) padded into one batch, as the sandbox does."""
    n = max(len(w["ids"]) for w in windows)
    ids = np.zeros((len(windows), n), np.int64)
    mask = np.zeros((len(windows), n), np.int64)
    for i, w in enumerate(windows):
        ids[i, : len(w["ids"])] = w["ids"]
        mask[i, : len(w["ids"])] = w["attention_mask"]
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def hf_windows(tok, text):
    tok.enable_truncation(MAX_LENGTH, stride=STRIDE)
    e = tok.encode(text)
    return [{"ids": w.ids, "attention_mask": w.attention_mask} for w in [e, *e.overflowing]]


REPORT = {"notes": 0, "windows": 0, "tokens": 0, "max_abs_vs_ort": 0.0, "ort_spread": 0.0,
          "labels_compared": 0, "labels_differing": 0, "near_ties_skipped": 0}


@pytest.mark.parametrize("i", range(len(NOTES) + 1))
def test_pipeline_matches_tokenizers_and_onnxruntime(i, files, engine_graph):
    text = LONG if i == len(NOTES) else NOTES[i]
    model, tok_file = files
    engine, graph = engine_graph
    hf = hf_windows(Tokenizer.from_file(str(tok_file)), text)
    # The tokenizer component, as the sandbox calls it.
    wasm = Tokenizers(COMPONENT)
    t = wasm.load(tok_file.read_bytes())
    main, over = wasm.encode(t, text, truncation=(MAX_LENGTH, STRIDE))
    ours = [main, *over]
    assert [w["ids"] for w in ours] == [w["ids"] for w in hf]
    if i == len(NOTES):
        assert len(ours) > 1, "the long note must need several windows"

    x = feeds(ours)
    got = engine.run(graph, x)["logits"]
    full, plain = sessions(model)
    ref = full.run(["logits"], feeds(hf))[0]
    ref_plain = plain.run(["logits"], feeds(hf))[0]
    valid = x["attention_mask"].astype(bool)
    err = float(np.abs(got - ref)[valid].max())
    spread = float(np.abs(ref - ref_plain)[valid].max())
    assert err <= ATOL, f"max |engine - onnxruntime| = {err}"
    assert spread < ATOL / 4, f"onnxruntime disagrees with itself by {spread}"

    top2 = np.sort(ref, axis=-1)[..., -2:]
    clear = valid & ((top2[..., 1] - top2[..., 0]) > MARGIN)
    differ = (got.argmax(-1) != ref.argmax(-1)) & clear
    assert not differ.any(), f"labels differ at {np.argwhere(differ).tolist()}"
    # The notes are full of PII: the model must find some (a broken pipeline finds none).
    assert (ref.argmax(-1)[valid] != 0).sum() >= 3

    REPORT["notes"] += 1
    REPORT["windows"] += len(ours)
    REPORT["tokens"] += int(valid.sum())
    REPORT["max_abs_vs_ort"] = max(REPORT["max_abs_vs_ort"], err)
    REPORT["ort_spread"] = max(REPORT["ort_spread"], spread)
    REPORT["labels_compared"] += int(clear.sum())
    REPORT["labels_differing"] += int(((got.argmax(-1) != ref.argmax(-1)) & valid).sum())
    REPORT["near_ties_skipped"] += int((valid & ~clear).sum())


def test_report():
    path = os.environ.get("SC_TEXT_REPORT")
    if path:
        p = Path(path)
        data = json.loads(p.read_text()) if p.is_file() else {}
        data["pii_model"] = {**REPORT, "atol": ATOL, "margin": MARGIN,
                             "value_info_stripped_for_engine": STRIP_VALUE_INFO}
        p.write_text(json.dumps(data, indent=2))
