#!/usr/bin/env python3
"""The TFLite models in tests/fuzz-regressions/ written by hand rather than found by the fuzzer:
one per assumption of tract-tflite that components/inference/src/tflite/check.rs now checks
(each panicked the engine before: index out of bounds, unwrap of None, arithmetic overflow).

    python3 fuzz/tflite_crafted.py tests/fuzz-regressions
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import numpy as np
from tflite_seeds import model, opts, vec_opts, OP, F32, I32, ACT, B
out = sys.argv[1]
i32 = lambda *v: np.array(v, np.int32)
cases = {
  # binary op with one input: tract indexes inputs[1]
  "tflite-add-one-input": model([("a", [1, 4], F32, None), ("y", [1, 4], F32, None)],
      [(OP.ADD, ["a"], ["y"], opts("AddOptions", FusedActivationFunction=ACT.NONE))], ["a"], ["y"]),
  # RESHAPE whose shape is computed, not a constant: tract unwraps it
  "tflite-reshape-shape-not-constant": model([("x", [1, 4], F32, None), ("s", [2], I32, None), ("y", [4, 1], F32, None)],
      [(OP.RESHAPE, ["x", "s"], ["y"], None)], ["x", "s"], ["y"]),
  # CONV_2D on a rank-2 input: NHWC arithmetic underflows
  "tflite-conv-rank2-input": model([("x", [4, 4], F32, None), ("k", [2, 3, 3, 1], F32, np.zeros((2, 3, 3, 1), np.float32)),
      ("b", [2], F32, np.zeros(2, np.float32)), ("y", [1, 4, 4, 2], F32, None)],
      [(OP.CONV_2D, ["x", "k", "b"], ["y"], opts("Conv2DOptions", Padding=B.Padding.SAME, StrideW=1, StrideH=1,
        DilationWFactor=1, DilationHFactor=1, FusedActivationFunction=ACT.NONE))], ["x"], ["y"]),
  # TRANSPOSE with a permutation that is not one
  "tflite-transpose-bad-perm": model([("x", [1, 2, 3], F32, None), ("p", [3], I32, i32(0, 5, 1)), ("y", [1, 3, 2], F32, None)],
      [(OP.TRANSPOSE, ["x", "p"], ["y"], None)], ["x"], ["y"]),
  # SOFTMAX of a scalar: rank - 1 underflows
  "tflite-softmax-scalar": model([("x", [], F32, None), ("y", [], F32, None)],
      [(OP.SOFTMAX, ["x"], ["y"], opts("SoftmaxOptions", Beta=1.0))], ["x"], ["y"]),
  # MEAN with a negative axis: tract casts it to a huge index
  "tflite-mean-negative-axis": model([("x", [1, 4, 2], F32, None), ("a", [1], I32, i32(-1)), ("y", [1, 4, 1], F32, None)],
      [(OP.MEAN, ["x", "a"], ["y"], opts("ReducerOptions", KeepDims=True))], ["x"], ["y"]),
  # SLICE with fewer begins than the input's rank: tract indexes begins by axis
  "tflite-slice-short-begin": model([("x", [1, 4, 4], F32, None), ("b", [1], I32, i32(0)), ("s", [1], I32, i32(1)),
      ("y", [1, 4, 4], F32, None)], [(OP.SLICE, ["x", "b", "s"], ["y"], None)], ["x"], ["y"]),
  # BATCH_MATMUL of vectors: rank - 2 underflows
  "tflite-batch-matmul-rank1": model([("a", [4], F32, None), ("b", [4], F32, np.ones(4, np.float32)), ("y", [1], F32, None)],
      [(OP.BATCH_MATMUL, ["a", "b"], ["y"], opts("BatchMatMulOptions"))], ["a"], ["y"]),
  # An omitted optional input (-1): tract looks up tensor usize::MAX
  "tflite-omitted-input": None,
  # An output nothing computes: tract indexes its map of wires
  "tflite-output-not-computed": model([("x", [1, 4], F32, None), ("y", [1, 4], F32, None), ("z", [1, 4], F32, None)],
      [(OP.TANH, ["x"], ["y"], None)], ["x"], ["z"]),
  # PAD with paddings of one column
  "tflite-pad-one-column": model([("x", [1, 4], F32, None), ("p", [2, 1], I32, i32(1, 1).reshape(2, 1)), ("y", [1, 4], F32, None)],
      [(OP.PAD, ["x", "p"], ["y"], None)], ["x"], ["y"]),
  # SQUEEZE without squeeze_dims: tract unwraps them
  "tflite-squeeze-no-dims": model([("x", [1, 4], F32, None), ("y", [4], F32, None)],
      [(OP.SQUEEZE, ["x"], ["y"], opts("SqueezeOptions"))], ["x"], ["y"]),
}
# -1 input: build FULLY_CONNECTED then patch the bias index to -1 in the bytes is fiddly; build with a model
# whose op input list names tensor index -1 via a custom builder path:
import flatbuffers
def omitted():
    b = model([("x", [1, 8], F32, None), ("k", [3, 8], F32, np.ones((3, 8), np.float32)), ("bias", [3], F32, np.ones(3, np.float32)),
               ("y", [1, 3], F32, None)],
              [(OP.FULLY_CONNECTED, ["x", "k", "bias"], ["y"], opts("FullyConnectedOptions", FusedActivationFunction=ACT.NONE))],
              ["x"], ["y"])
    # the operator's inputs vector is [0, 1, 2]: make the last one -1
    needle = np.array([3, 0, 1, 2], np.int32).tobytes()
    at = b.find(needle)
    assert at >= 0
    return b[:at + 12] + np.array([-1], np.int32).tobytes() + b[at + 16:]
cases["tflite-omitted-input"] = omitted()
for k, v in cases.items():
    open(f"{out}/{k}.tflite", "wb").write(v)
print(len(cases))
