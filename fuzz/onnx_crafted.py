#!/usr/bin/env python3
"""The ONNX models in tests/fuzz-regressions/ written by hand rather than found by the fuzzer: one
per assumption of tract-onnx's ConvTranspose that components/inference/src/onnx_ops/conv_transpose.rs
now checks (the fuzzer found the first, onnx-conv-transpose-output-shape-too-small.onnx; these are
its neighbours: each panicked in tract before, in the fuzzer's build, which checks overflow: an
unsigned subtraction that underflows or an index out of bounds).

    python3 fuzz/onnx_crafted.py tests/fuzz-regressions
"""
import sys
from pathlib import Path
from onnx import TensorProto, helper

out = Path(sys.argv[1])


def conv_transpose(name, x, w, **attrs):
    node = helper.make_node("ConvTranspose", ["X", "W"], ["Y"], **attrs)
    graph = helper.make_graph(
        [node], name,
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, x),
         helper.make_tensor_value_info("W", TensorProto.FLOAT, w)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (out / f"{name}.onnx").write_bytes(model.SerializeToString())


# output_shape naming more axes than the input has: tract indexes past the output's rank
conv_transpose("onnx-conv-transpose-output-shape-long", [1, 1, 3, 3], [1, 2, 3, 3],
               output_shape=[10, 8, 4], strides=[3, 2])
# pads wider than the output the input and kernel span: the output size underflows
conv_transpose("onnx-conv-transpose-pads-wider-than-output", [1, 1, 3, 3], [1, 2, 3, 3],
               pads=[4, 4, 4, 4])
# an empty spatial axis: (x - 1) underflows
conv_transpose("onnx-conv-transpose-empty-axis", [1, 1, 0, 3], [1, 2, 3, 3])
