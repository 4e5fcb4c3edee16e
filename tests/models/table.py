"""The README table of third-party models, from test_third_party.py's results (SC_MODELS_REPORT)
and `secure-context bench --json`.

    table.py --benchable RESULTS.json      model files bench can measure (fixed input shapes)
    table.py RESULTS.json BENCH.json        the markdown table
"""

import json
import sys
from pathlib import Path

# Models with free input dims (samples, batch, tokens) or inputs that bench's arange values
# would make meaningless (Silero's `sr`, token ids): their latency is the `compute` of
# `secure-context run` on the test's first input instead.
FREE_SHAPES = {"silero_vad.onnx", "silero_vad_16k_op15.onnx", "silero_vad_16k_sequence.onnx",
               "silero_vad_half.onnx", "silero_vad_op18_ifless.onnx", "rampart_model_q4.onnx",
               "all-MiniLM-L6-v2_int8.onnx", "kaldi.onnx", "nemo128.onnx", "whisper80.onnx",
               "ch_ppocr_mobile_v2.0_cls_fp16.onnx"}
# Table order: TFLite first, then ONNX by source, each by name.
ORDER = {"TFLite": 0}


def main(argv):
    if argv[0] == "--benchable":
        results = json.loads(Path(argv[1]).read_text())
        for name in sorted(results):
            if results[name]["runs"] and name not in FREE_SHAPES:
                print(name)
        return
    results = json.loads(Path(argv[0]).read_text())
    bench = json.loads(Path(argv[1]).read_text()) if len(argv) > 1 else {"models": []}
    # bench rows: {"model": stem, "component": {"median_ms": ...}, "native": {...}}
    median = {(r["model"], engine): r[engine] for r in bench["models"]
              for engine in ("component", "native") if r.get(engine)}
    print("| Model | Format (package) | Runs | Max abs error vs reference | Latency, component (native) |")
    print("|---|---|---|---|---|")
    rows = sorted(results, key=lambda n: (ORDER.get(results[n]["format"], 1),
                                          results[n]["source"], n))
    for name in rows:
        r = results[name]
        fmt, src = r["format"], r["source"]
        if not r["runs"]:
            print(f"| `{name}` | {fmt} ({src}) | no: {r['why']} | - | - |")
            continue
        stem = Path(name).stem
        comp, native = median.get((stem, "component")), median.get((stem, "native"))
        if comp:
            lat = f"{comp['median_ms']:.1f} ms"
            if native:
                lat += f" ({native['median_ms']:.1f} ms)"
        else:
            lat = f"{r['compute_ms']:.1f} ms (first run, plan included)"
        ref = "LiteRT" if fmt == "TFLite" else "onnxruntime"
        err = f"{r['max_abs_err']:.2g} ({ref})"
        if r["worst_rel_err"] > 1e-5 and r["worst_scale"] > 1:
            err += f"; outputs up to {r['worst_scale']:.3g}"
        if r["worst_ref_gap"] > 0:
            err += f"; {r['gap']}: {r['worst_ref_gap']:.2g}"
        print(f"| `{name}` | {fmt} ({src}) | yes | {err} | {lat} |")


if __name__ == "__main__":
    main(sys.argv[1:])
