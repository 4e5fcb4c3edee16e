"""`secure-context bench --input`: a model's inputs from .npy files, for every engine alike.

A text model takes int64 token ids over a free sequence dimension, which the bench's own
arange(n)/n inputs cannot make; `scripts/bench-web` passes them as files so the server half
measures the text models too. The fixture is generated here: an embedding lookup (int64 ids with
a free dimension) plus a float input.
"""
import json
import subprocess

import numpy as np
import onnx
from onnx import TensorProto, helper

from test_bad_inputs import sc_bin


def lookup_model(path):
    table = helper.make_tensor("table", TensorProto.FLOAT, [16, 4], np.arange(64, dtype=np.float32).tolist())
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["emb"]), helper.make_node("Add", ["emb", "bias"], ["out"])],
        "lookup",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, "seq"]),
         helper.make_tensor_value_info("bias", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, "seq", 4])],
        initializer=[table],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def bench(root, *args):
    return subprocess.run([sc_bin(root), "bench", "--runs", "2", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_bench_takes_token_ids_from_a_file(repo_root, tmp_path):
    model = tmp_path / "lookup.onnx"
    lookup_model(model)
    ids = tmp_path / "ids.npy"
    np.save(ids, np.array([[3, 1, 4, 1, 5, 9, 2, 6]], dtype=np.int64))
    out = tmp_path / "bench.json"
    r = bench(repo_root, "--model", f"lookup={model}", "--input", f"lookup:ids={ids}", "--json", out,
              "--skip-sizes")
    assert r.returncode == 0, r.stderr
    row = json.loads(out.read_text())["models"][0]
    assert row["inputs_from"] == [{"input": "ids", "file": str(ids)}]
    for engine in ("component", "native", "onnxruntime"):  # onnxruntime read the same file
        assert row[engine] is not None and row[engine]["median_ms"] > 0, engine


def test_without_the_file_an_int64_input_is_refused(repo_root, tmp_path):
    model = tmp_path / "lookup.onnx"
    lookup_model(model)
    r = bench(repo_root, "--model", f"lookup={model}")
    assert r.returncode != 0
    assert 'input "ids"' in r.stderr and "--input" in r.stderr


def test_an_input_the_model_lacks_is_refused(repo_root, tmp_path):
    model = tmp_path / "lookup.onnx"
    lookup_model(model)
    ids = tmp_path / "ids.npy"
    np.save(ids, np.zeros((1, 3), dtype=np.int64))
    r = bench(repo_root, "--model", f"lookup={model}", "--input", f"lookup:tokens={ids}")
    assert r.returncode != 0
    assert 'no input "tokens"' in r.stderr
