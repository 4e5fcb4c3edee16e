#!/usr/bin/env python3
"""The ONNX models in tests/fuzz-regressions/ written by hand rather than found by the fuzzer: one
per assumption of tract-onnx that components/inference/src/onnx_ops/conv_transpose.rs (the
ConvTranspose geometry), onnx_ops/spatial.rs (a spatial axis for convolutions and pools) and
onnx_check.rs (window attributes) now check. The fuzzer found the
first, onnx-conv-transpose-output-shape-too-small.onnx; these are its neighbours, and window
attributes probed the same way. Each panicked in tract before, in the fuzzer's build, which
checks overflow: an unsigned subtraction that underflows, a division by zero or an index out of
bounds.

    python3 fuzz/onnx_crafted.py tests/fuzz-regressions
"""
import sys
from pathlib import Path
from onnx import TensorProto, helper

out = Path(sys.argv[1])


def one_node(name, op, x, w=None, **attrs):
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x)]
    if w is not None:
        inputs.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, w))
    node = helper.make_node(op, [i.name for i in inputs], ["Y"], **attrs)
    graph = helper.make_graph(
        [node], name, inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (out / f"{name}.onnx").write_bytes(model.SerializeToString())


def conv_transpose(name, x, w, **attrs):
    one_node(name, "ConvTranspose", x, w, **attrs)


# output_shape naming more axes than the input has: tract indexes past the output's rank
conv_transpose("onnx-conv-transpose-output-shape-long", [1, 1, 3, 3], [1, 2, 3, 3],
               output_shape=[10, 8, 4], strides=[3, 2])
# pads wider than the output the input and kernel span: the output size underflows
conv_transpose("onnx-conv-transpose-pads-wider-than-output", [1, 1, 3, 3], [1, 2, 3, 3],
               pads=[4, 4, 4, 4])
# an empty spatial axis: (x - 1) underflows
conv_transpose("onnx-conv-transpose-empty-axis", [1, 1, 0, 3], [1, 2, 3, 3])
# a zero stride: divides by zero (Conv in the shape arithmetic, MaxPool in the padding)
one_node("onnx-conv-stride-zero", "Conv", [1, 1, 3, 3], [1, 1, 3, 3], strides=[0, 1])
one_node("onnx-maxpool-stride-zero", "MaxPool", [1, 1, 3, 3], kernel_shape=[2, 2], strides=[0, 1])
# an odd number of pads: tract indexes the end pads past the list
one_node("onnx-maxpool-pads-odd", "MaxPool", [1, 1, 3, 3], kernel_shape=[2, 2], pads=[1, 1, 1])
# LRN over a window of 0 channels: size - 1 underflows
one_node("onnx-lrn-size-zero", "LRN", [1, 3, 2, 2], size=0)
# a block size of 0: divides by zero
one_node("onnx-spacetodepth-blocksize-zero", "SpaceToDepth", [1, 1, 4, 4], blocksize=0)
# no spatial axis: tract computes hw_rank - 1 and reads a stride with get_unchecked there
one_node("onnx-conv-rank2", "Conv", [3, 3], [3, 3])
one_node("onnx-maxpool-rank2", "MaxPool", [3, 3], kernel_shape=[2])
