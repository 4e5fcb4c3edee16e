"""Speed and memory of what issue #13 changed, in one run: 4-bit weights (MatMulNBits, kept as
exact f32) and fp16 graphs (computed in f32), on the component, natively and in onnxruntime.

    python3 tests/models/bench_exporters.py [--baseline COMPONENT.wasm] [--runs N] [--json OUT]

Models come from the wheel cache tests/models/test_third_party.py fills (run it first). Each is
copied with fixed input shapes (bench feeds arange inputs with free dims set to 1) and, for the
baseline engine's sake, without named dims in value_info: Rampart at 1 x 128 tokens, the
PP-OCR text-direction classifier at 1x3x48x192 in fp32 and fp16, PP-OCRv4 det at 1x3x256x256
in fp32 and fp16 (onnxruntime's converter, f32 inputs and outputs as bench feeds them). `--baseline` also measures another build of the component (e.g. main before
these changes, where MatMulNBits was tract's Q4_0 with f16 scales and fp16 ran in software f16;
det in fp16 is left out there: minutes a run).
Peak memory is the host process's peak RSS (`/usr/bin/time`) for one `secure-context run`.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("SC_WHEEL_CACHE", Path.home() / ".cache/secure-context/wheels"))
SC = REPO_ROOT / "target/release/secure-context"


def fixed_copy(src, shapes, dest):
    """`src` with its inputs fixed to `shapes` and no named dims in value_info. Integer inputs
    (token ids, masks) become float inputs cast to int64 inside (bench feeds floats): the same
    computation on ids and masks of 0."""
    m = onnx.load(src)
    for inp in m.graph.input:
        if inp.name in shapes:
            dims = inp.type.tensor_type.shape.dim
            for d, n in zip(dims, shapes[inp.name]):
                d.Clear()
                d.dim_value = n
        if inp.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            inp.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
            inner = inp.name + "_int64"
            for node in m.graph.node:
                node.input[:] = [inner if i == inp.name else i for i in node.input]
            m.graph.node.insert(0, onnx.helper.make_node(
                "Cast", [inp.name], [inner], to=onnx.TensorProto.INT64))
    for info in m.graph.value_info:
        for d in info.type.tensor_type.shape.dim:
            if d.HasField("dim_param"):
                d.Clear()
    onnx.save(m, dest)
    return dest


def models(tmp):
    src = CACHE / "models"
    tokens = {n: [1, 128] for n in ("input_ids", "attention_mask", "token_type_ids")}
    out = {"rampart_q4": fixed_copy(src / "rampart_model_q4.onnx", tokens, tmp / "rampart.onnx")}
    from onnxruntime.transformers.float16 import convert_float_to_float16
    for name, file, shape in [("cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx", [1, 3, 48, 192]),
                              ("det256", "ch_PP-OCRv4_det_infer.onnx", [1, 3, 256, 256])]:
        path = src / file
        if not path.exists():
            import zipfile
            wheel = next(CACHE.glob("rapidocr_onnxruntime-1.4.4-*.whl"))
            with zipfile.ZipFile(wheel) as z:
                path.write_bytes(z.read(f"rapidocr_onnxruntime/models/{file}"))
        fp32 = fixed_copy(path, {"x": shape}, tmp / f"{name}_fp32.onnx")
        out[f"{name}_fp32"] = fp32
        # f32 inputs and outputs (bench feeds f32), everything inside in fp16.
        fp16 = convert_float_to_float16(onnx.load(fp32), keep_io_types=True)
        onnx.save(fp16, tmp / f"{name}_fp16.onnx")
        out[f"{name}_fp16"] = tmp / f"{name}_fp16.onnx"
    return out


def bench(component, named, runs, tmp, ort=True):
    """One `secure-context bench` per model: in one engine instance, a model measured after a
    large one ran many times slower (seen with both components), which says nothing of either."""
    rows = {}
    for name, path in named.items():
        out = tmp / f"bench-{name}-{abs(hash(str(component)))}.json"
        args = [str(SC), "bench", "--component", str(component), "--runs", str(runs),
                "--json", str(out), "--timeout-ms", "600000", "--model", f"{name}={path}"]
        if not ort:
            args += ["--ort-script", "/nonexistent"]
        res = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr
        rows.update({r["model"]: r for r in json.loads(out.read_text())["models"]})
    return rows


def peak_rss_mb(component, path, engine="wasm"):
    res = subprocess.run(["/usr/bin/time", "-f", "peak %M", str(SC), "run", "--engine", engine,
                          "--component", str(component), "--model", str(path), "--out",
                          str(Path(tempfile.mkdtemp()) / "o")],
                         capture_output=True, text=True, cwd=REPO_ROOT)
    assert res.returncode == 0, res.stderr
    return int(re.search(r"peak (\d+)", res.stderr).group(1)) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--json")
    a = ap.parse_args()
    component = REPO_ROOT / "target/wasm32-wasip2/wasm/inference.wasm"
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        named = models(tmp)
        result = {"runs": a.runs, "engine": bench(component, named, a.runs, tmp),
                  "peak_rss_mb": {n: peak_rss_mb(component, p) for n, p in named.items()}}
        if a.baseline:
            # The baseline computes fp16 in software f16: a few runs say enough, and det at
            # 256x256 in fp16 would take minutes a run there, so it is left out.
            base = {n: p for n, p in named.items() if n != "det256_fp16"}
            result["baseline"] = bench(a.baseline, base, 3, tmp, ort=False)
            result["baseline_peak_rss_mb"] = {n: peak_rss_mb(a.baseline, p)
                                              for n, p in base.items()}
    print(f"{'model':12} {'component':>10} {'native':>10} {'onnxruntime':>12} {'baseline':>10}"
          f" {'peak MB':>8} {'base MB':>8}")
    for name in named:
        r = result["engine"][name]
        b = result.get("baseline", {}).get(name, {})

        def ms(x):
            return f"{x['median_ms']:.1f}" if x else "-"
        print(f"{name:12} {ms(r.get('component')):>10} {ms(r.get('native')):>10}"
              f" {ms(r.get('onnxruntime')):>12} {ms(b.get('component')):>10}"
              f" {result['peak_rss_mb'][name]:8.0f}"
              f" {result.get('baseline_peak_rss_mb', {}).get(name, 0):8.0f}")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())
