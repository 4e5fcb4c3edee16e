#!/usr/bin/env python3
"""Seed corpus for the TFLite fuzz target: one small valid model per operator tract-tflite reads
(and per operator the engine's load-time rewrite replaces), so that the fuzzer's mutations start
from every operator's deserialization, not only from tiny-conv.tflite's five.

    python3 fuzz/tflite_seeds.py OUT_DIR

Written with the PyPI `tflite` package's generated builders on `flatbuffers` (pinned in
requirements-test.txt), as models/make_tflite_fixture.py writes tiny-conv.tflite. The bytes are
deterministic. Each model is checked to load in the engine by the fuzz run itself (a seed that
does not load still seeds the parser).
"""

import sys
from pathlib import Path

import flatbuffers
import numpy as np
import tflite as B

F32, I32, BOOL, F16 = B.TensorType.FLOAT32, B.TensorType.INT32, B.TensorType.BOOL, B.TensorType.FLOAT16
OP, BO, ACT = B.BuiltinOperator, B.BuiltinOptions, B.ActivationFunctionType


def _ints(b, start, values):
    start(b, len(values))
    for v in reversed(values):
        b.PrependInt32(int(v))
    return b.EndVector()


def _offsets(b, start, offsets):
    start(b, len(offsets))
    for o in reversed(offsets):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def _bytes(b, data):
    b.StartVector(1, len(data), 16)
    b.head -= len(data)
    b.Bytes[b.head:b.head + len(data)] = data
    return b.EndVector()


def _index_vector(b, values, u8):
    """A SparseIndexVector: (type, offset), uint8 or int32."""
    if u8:
        B.Uint8VectorStartValuesVector(b, len(values))
        for v in reversed(values):
            b.PrependUint8(int(v))
        vec = b.EndVector()
        B.Uint8VectorStart(b)
        B.Uint8VectorAddValues(b, vec)
        return B.SparseIndexVector.Uint8Vector, B.Uint8VectorEnd(b)
    vec = _ints(b, B.Int32VectorStartValuesVector, values)
    B.Int32VectorStart(b)
    B.Int32VectorAddValues(b, vec)
    return B.SparseIndexVector.Int32Vector, B.Int32VectorEnd(b)


def _sparsity(b, spec):
    """SparsityParameters from csr()'s spec."""
    metas = []
    for dim in spec["dims"]:
        if dim[0] == "dense":
            B.DimensionMetadataStart(b)
            B.DimensionMetadataAddFormat(b, B.DimensionType.DENSE)
            B.DimensionMetadataAddDenseSize(b, dim[1])
        else:
            st, so = _index_vector(b, dim[1], spec["u8"])
            it, io = _index_vector(b, dim[2], spec["u8"])
            B.DimensionMetadataStart(b)
            B.DimensionMetadataAddFormat(b, B.DimensionType.SPARSE_CSR)
            B.DimensionMetadataAddArraySegmentsType(b, st)
            B.DimensionMetadataAddArraySegments(b, so)
            B.DimensionMetadataAddArrayIndicesType(b, it)
            B.DimensionMetadataAddArrayIndices(b, io)
        metas.append(B.DimensionMetadataEnd(b))
    order = _ints(b, B.SparsityParametersStartTraversalOrderVector, spec["order"])
    block_map = _ints(b, B.SparsityParametersStartBlockMapVector, spec["block_map"])
    dims = _offsets(b, B.SparsityParametersStartDimMetadataVector, metas)
    B.SparsityParametersStart(b)
    B.SparsityParametersAddTraversalOrder(b, order)
    B.SparsityParametersAddBlockMap(b, block_map)
    B.SparsityParametersAddDimMetadata(b, dims)
    return B.SparsityParametersEnd(b)


def csr(dense, block=1, u8=False):
    """A 2-D constant in TFLite's sparse format: (the values stored, sparsity spec). Rows dense,
    columns CSR; with block > 1, in blocks of `block` columns (block_map [1]) as MediaPipe's
    sparse face detector stores its weights. Indices as uint8 or int32."""
    rows, cols = dense.shape
    segments, indices, values = [0], [], []
    for r in range(rows):
        for k in range(cols // block):
            part = dense[r, k * block:(k + 1) * block]
            if np.any(part != 0):
                indices.append(k)
                values.extend(part)
        segments.append(len(indices))
    spec = {"order": [0, 1], "block_map": [], "u8": u8,
            "dims": [("dense", rows), ("csr", segments, indices)]}
    if block > 1:
        spec["order"], spec["block_map"] = [0, 1, 2], [1]
        spec["dims"].append(("dense", block))
    return np.array(values, dense.dtype), spec


def model(tensors, ops, inputs, outputs):
    """tensors: [(name, shape, type, ndarray or None[, sparsity spec from csr()])];
    ops: [(code, [in], [out], options or None)], options = (BuiltinOptions type, fn(builder) ->
    offset); a custom operator's code is its name and its options are bytes."""
    b = flatbuffers.Builder(1024)
    ix = {t[0]: i for i, t in enumerate(tensors)}
    buffers = []
    B.BufferStart(b)
    buffers.append(B.BufferEnd(b))
    tensor_buffer = {}
    for name, _, _, data, *_ in tensors:
        if data is None:
            tensor_buffer[name] = 0
            continue
        d = _bytes(b, np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<")).tobytes())
        B.BufferStart(b)
        B.BufferAddData(b, d)
        tensor_buffer[name] = len(buffers)
        buffers.append(B.BufferEnd(b))
    tensor_offs = []
    for name, shape, ty, _, *sparsity in tensors:
        n = b.CreateString(name)
        s = _ints(b, B.TensorStartShapeVector, shape)
        sp = _sparsity(b, sparsity[0]) if sparsity else None
        B.TensorStart(b)
        B.TensorAddShape(b, s)
        B.TensorAddType(b, ty)
        B.TensorAddBuffer(b, tensor_buffer[name])
        B.TensorAddName(b, n)
        if sp is not None:
            B.TensorAddSparsity(b, sp)
        tensor_offs.append(B.TensorEnd(b))
    codes = []
    op_offs = []
    for code, ins, outs, options in ops:
        if code not in codes:
            codes.append(code)
        custom = isinstance(code, str)
        opt = options[1](b) if options and not custom else None
        if custom and options:
            B.OperatorStartCustomOptionsVector(b, len(options))
            b.head -= len(options)
            b.Bytes[b.head:b.head + len(options)] = options
            opt = b.EndVector()
        i = _ints(b, B.OperatorStartInputsVector, [ix[n] for n in ins])
        o = _ints(b, B.OperatorStartOutputsVector, [ix[n] for n in outs])
        B.OperatorStart(b)
        B.OperatorAddOpcodeIndex(b, codes.index(code))
        B.OperatorAddInputs(b, i)
        B.OperatorAddOutputs(b, o)
        if custom and options:
            B.OperatorAddCustomOptions(b, opt)
        elif options:
            B.OperatorAddBuiltinOptionsType(b, options[0])
            B.OperatorAddBuiltinOptions(b, opt)
        op_offs.append(B.OperatorEnd(b))
    t = _offsets(b, B.SubGraphStartTensorsVector, tensor_offs)
    i = _ints(b, B.SubGraphStartInputsVector, [ix[n] for n in inputs])
    o = _ints(b, B.SubGraphStartOutputsVector, [ix[n] for n in outputs])
    p = _offsets(b, B.SubGraphStartOperatorsVector, op_offs)
    B.SubGraphStart(b)
    B.SubGraphAddTensors(b, t)
    B.SubGraphAddInputs(b, i)
    B.SubGraphAddOutputs(b, o)
    B.SubGraphAddOperators(b, p)
    sg = B.SubGraphEnd(b)
    code_offs = []
    for code in codes:
        custom = b.CreateString(code) if isinstance(code, str) else None
        code = OP.CUSTOM if custom else code
        B.OperatorCodeStart(b)
        B.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        B.OperatorCodeAddBuiltinCode(b, code)
        if custom:
            B.OperatorCodeAddCustomCode(b, custom)
        B.OperatorCodeAddVersion(b, 1)
        code_offs.append(B.OperatorCodeEnd(b))
    c = _offsets(b, B.ModelStartOperatorCodesVector, code_offs)
    s = _offsets(b, B.ModelStartSubgraphsVector, [sg])
    bb = _offsets(b, B.ModelStartBuffersVector, buffers)
    B.ModelStart(b)
    B.ModelAddVersion(b, 3)
    B.ModelAddOperatorCodes(b, c)
    B.ModelAddSubgraphs(b, s)
    B.ModelAddBuffers(b, bb)
    b.Finish(B.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def opts(kind, **fields):
    """Options of BuiltinOptions `kind` (e.g. "AddOptions") with the given Add<Field> values."""
    def build(b):
        getattr(B, f"{kind}Start")(b)
        for k, v in fields.items():
            getattr(B, f"{kind}Add{k}")(b, v)
        return getattr(B, f"{kind}End")(b)
    return (getattr(BO, kind), build)


def vec_opts(kind, field, values, **fields):
    """Options whose `field` is an int vector (ReshapeOptions.NewShape, SqueezeOptions.SqueezeDims)."""
    def build(b):
        v = _ints(b, getattr(B, f"{kind}Start{field}Vector"), values)
        getattr(B, f"{kind}Start")(b)
        getattr(B, f"{kind}Add{field}")(b, v)
        for k, x in fields.items():
            getattr(B, f"{kind}Add{k}")(b, x)
        return getattr(B, f"{kind}End")(b)
    return (getattr(BO, kind), build)


def unary(code, options=None, shape=(1, 4, 4, 2), ty=F32):
    return model([("x", list(shape), ty, None), ("y", list(shape), ty, None)],
                 [(code, ["x"], ["y"], options)], ["x"], ["y"])


def binary(code, options=None, ty=F32, out_ty=None):
    return model([("a", [1, 4, 2], ty, None), ("b", [2], ty, np.array([1, 2], np.float32) if ty == F32 else None),
                  ("y", [1, 4, 2], out_ty or ty, None)],
                 [(code, ["a", "b"], ["y"], options)], ["a"], ["y"])


def with_const(code, const, options=None, shape=(1, 4, 4, 2), out_shape=None, const_name="k"):
    ctype = I32 if const.dtype == np.int32 else F32
    return model([("x", list(shape), F32, None), (const_name, list(const.shape), ctype, const),
                  ("y", list(out_shape or shape), F32, None)],
                 [(code, ["x", const_name], ["y"], options)], ["x"], ["y"])


def rule_fixtures():
    """One small model per rewrite rule of the engine (components/inference/src/tflite/rules/),
    and per variant a rule handles differently: what tests/models/test_tflite_rules.py runs
    against LiteRT. Keyed by the rule's file name, then the variant."""
    rng = np.random.default_rng(7)
    w = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    i32 = lambda *v: np.array(v, np.int32)  # noqa: E731
    act = dict(FusedActivationFunction=ACT.NONE)
    out = {}
    out["dequantize_fp16"] = model(
        [("x", [2, 8], F32, None), ("h", [2, 8], F16, w(2, 8).astype(np.float16)),
         ("hf", [2, 8], F32, None), ("y", [2, 8], F32, None)],
        [(OP.DEQUANTIZE, ["h"], ["hf"], None), (OP.ADD, ["x", "hf"], ["y"], opts("AddOptions", **act))],
        ["x"], ["y"])
    for variant, block, u8 in [("csr", 1, False), ("blocks_u8", 4, True)]:
        dense = w(6, 16) * (rng.uniform(size=(6, 16 // block)).repeat(block, 1) < 0.4)
        values, spec = csr(dense, block, u8)
        out[f"densify_{variant}"] = model(
            [("x", [2, 16], F32, None), ("ks", [6, 16], F32, values, spec), ("k", [6, 16], F32, None),
             ("bias", [6], F32, w(6)), ("y", [2, 6], F32, None)],
            [(OP.DENSIFY, ["ks"], ["k"], None),
             (OP.FULLY_CONNECTED, ["x", "k", "bias"], ["y"], opts("FullyConnectedOptions", **act))],
            ["x"], ["y"])
    out["prelu"] = model([("x", [1, 4, 4, 3], F32, None), ("a", [1, 1, 3], F32, w(1, 1, 3)),
                          ("y", [1, 4, 4, 3], F32, None)],
                         [(OP.PRELU, ["x", "a"], ["y"], None)], ["x"], ["y"])
    out["depth_to_space"] = model(
        [("x", [1, 3, 2, 8], F32, None), ("y", [1, 6, 4, 2], F32, None)],
        [(OP.DEPTH_TO_SPACE, ["x"], ["y"], opts("DepthToSpaceOptions", BlockSize=2))], ["x"], ["y"])
    out["mean_keep_dims"] = with_const(OP.MEAN, i32(1, 2), opts("ReducerOptions", KeepDims=True),
                                       shape=(1, 5, 3, 2), out_shape=(1, 1, 1, 2))
    out["mean_last_axis"] = with_const(OP.MEAN, i32(-1), opts("ReducerOptions", KeepDims=False),
                                       shape=(2, 3, 7), out_shape=(2, 3))
    for name in ["ADD", "SUB", "MUL"]:
        out[f"default_options_{name.lower()}"] = binary(getattr(OP, name))
    for variant, padding, out_hw in [("same", 1, 8), ("valid", 2, 9)]:
        options = np.array([padding, 2, 2], "<i4").tobytes()  # padding (1 SAME, 2 VALID), stride w, h
        out[f"transpose_conv_bias_{variant}"] = model(
            [("x", [1, 4, 4, 3], F32, None), ("k", [2, 3, 3, 3], F32, w(2, 3, 3, 3)), ("bias", [2], F32, w(2)),
             ("y", [1, out_hw, out_hw, 2], F32, None)],
            [("Convolution2DTransposeBias", ["x", "k", "bias"], ["y"], options)], ["x"], ["y"])
    return out


def seeds():
    rng = np.random.default_rng(1)
    w = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    i32 = lambda *v: np.array(v, np.int32)  # noqa: E731
    act = dict(FusedActivationFunction=ACT.NONE)
    out = {}
    for name in ["ABS", "CEIL", "COS", "EXP", "FLOOR", "HARD_SWISH", "LOG", "SIN", "LOGISTIC", "SQRT",
                 "SQUARE", "RSQRT", "TANH", "RELU", "RELU6"]:
        out[name.lower()] = unary(getattr(OP, name))
    out["logical_not"] = unary(OP.LOGICAL_NOT, ty=BOOL)
    out["leaky_relu"] = unary(OP.LEAKY_RELU, opts("LeakyReluOptions", Alpha=0.2))
    out["softmax"] = unary(OP.SOFTMAX, opts("SoftmaxOptions", Beta=1.0), shape=(1, 10))
    out["shape"] = model([("x", [1, 4, 4, 2], F32, None), ("y", [4], I32, None)],
                         [(OP.SHAPE, ["x"], ["y"], opts("ShapeOptions", OutType=I32))], ["x"], ["y"])
    for name, kind in [("ADD", "AddOptions"), ("SUB", "SubOptions"), ("MUL", "MulOptions"), ("DIV", "DivOptions")]:
        out[name.lower()] = binary(getattr(OP, name), opts(kind, FusedActivationFunction=ACT.RELU))
    for name in ["MAXIMUM", "MINIMUM"]:
        out[name.lower()] = binary(getattr(OP, name))
    for name in ["EQUAL", "NOT_EQUAL", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL"]:
        out[name.lower()] = binary(getattr(OP, name), out_ty=BOOL)
    for name in ["LOGICAL_OR", "LOGICAL_AND"]:
        out[name.lower()] = model([("a", [1, 4], BOOL, None), ("b", [1, 4], BOOL, None), ("y", [1, 4], BOOL, None)],
                                  [(getattr(OP, name), ["a", "b"], ["y"], None)], ["a", "b"], ["y"])
    out["select_v2"] = model([("c", [1, 4], BOOL, None), ("a", [1, 4], F32, None), ("b", [1, 4], F32, None),
                              ("y", [1, 4], F32, None)],
                             [(OP.SELECT_V2, ["c", "a", "b"], ["y"], None)], ["c", "a", "b"], ["y"])
    out["concatenation"] = model([("a", [1, 4, 2], F32, None), ("b", [1, 4, 3], F32, w(1, 4, 3)), ("y", [1, 4, 5], F32, None)],
                                 [(OP.CONCATENATION, ["a", "b"], ["y"], opts("ConcatenationOptions", Axis=-1, **act))],
                                 ["a"], ["y"])
    out["expand_dims"] = with_const(OP.EXPAND_DIMS, i32(1), shape=(4, 2), out_shape=(4, 1, 2))
    out["pad"] = with_const(OP.PAD, i32(0, 0, 1, 1, 1, 1, 0, 0).reshape(4, 2), out_shape=(1, 6, 6, 2))
    out["padv2"] = model([("x", [1, 4, 4, 2], F32, None), ("p", [4, 2], I32, i32(0, 0, 1, 1, 1, 1, 0, 0).reshape(4, 2)),
                          ("v", [], F32, np.array(0.5, np.float32)), ("y", [1, 6, 6, 2], F32, None)],
                         [(OP.PADV2, ["x", "p", "v"], ["y"], None)], ["x"], ["y"])
    out["reshape_input"] = with_const(OP.RESHAPE, i32(1, 32), out_shape=(1, 32))
    out["reshape_options"] = unary(OP.RESHAPE, vec_opts("ReshapeOptions", "NewShape", [1, -1]))
    out["slice"] = model([("x", [1, 4, 4, 2], F32, None), ("b", [4], I32, i32(0, 1, 1, 0)), ("s", [4], I32, i32(1, 2, 2, 2)),
                          ("y", [1, 2, 2, 2], F32, None)],
                         [(OP.SLICE, ["x", "b", "s"], ["y"], None)], ["x"], ["y"])
    out["strided_slice"] = model([("x", [1, 4, 4, 2], F32, None), ("b", [4], I32, i32(0, 0, 0, 0)),
                                  ("e", [4], I32, i32(1, 4, 4, 2)), ("s", [4], I32, i32(1, 2, 2, 1)),
                                  ("y", [1, 2, 2, 2], F32, None)],
                                 [(OP.STRIDED_SLICE, ["x", "b", "e", "s"], ["y"], opts("StridedSliceOptions"))],
                                 ["x"], ["y"])
    out["squeeze"] = unary(OP.SQUEEZE, vec_opts("SqueezeOptions", "SqueezeDims", [0]), shape=(1, 4, 2))
    out["transpose"] = with_const(OP.TRANSPOSE, i32(0, 3, 1, 2), out_shape=(1, 2, 4, 4))
    out["broadcast_to"] = with_const(OP.BROADCAST_TO, i32(3, 4, 2), shape=(4, 2), out_shape=(3, 4, 2))
    conv = opts("Conv2DOptions", Padding=B.Padding.SAME, StrideW=1, StrideH=1, DilationWFactor=1, DilationHFactor=1, **act)
    out["conv_2d"] = model([("x", [1, 5, 5, 2], F32, None), ("k", [3, 3, 3, 2], F32, w(3, 3, 3, 2)), ("bias", [3], F32, w(3)),
                            ("y", [1, 5, 5, 3], F32, None)],
                           [(OP.CONV_2D, ["x", "k", "bias"], ["y"], conv)], ["x"], ["y"])
    dw = opts("DepthwiseConv2DOptions", Padding=B.Padding.VALID, StrideW=1, StrideH=1, DepthMultiplier=1,
              DilationWFactor=1, DilationHFactor=1, **act)
    out["depthwise_conv_2d"] = model([("x", [1, 5, 5, 2], F32, None), ("k", [1, 3, 3, 2], F32, w(1, 3, 3, 2)),
                                      ("bias", [2], F32, w(2)), ("y", [1, 3, 3, 2], F32, None)],
                                     [(OP.DEPTHWISE_CONV_2D, ["x", "k", "bias"], ["y"], dw)], ["x"], ["y"])
    pool = opts("Pool2DOptions", Padding=B.Padding.VALID, StrideW=2, StrideH=2, FilterWidth=2, FilterHeight=2, **act)
    out["max_pool_2d"] = unary(OP.MAX_POOL_2D, pool)
    out["average_pool_2d"] = model([("x", [1, 4, 4, 2], F32, None), ("y", [1, 2, 2, 2], F32, None)],
                                   [(OP.AVERAGE_POOL_2D, ["x"], ["y"], pool)], ["x"], ["y"])
    out["fully_connected"] = model([("x", [1, 8], F32, None), ("k", [3, 8], F32, w(3, 8)), ("bias", [3], F32, w(3)),
                                    ("y", [1, 3], F32, None)],
                                   [(OP.FULLY_CONNECTED, ["x", "k", "bias"], ["y"], opts("FullyConnectedOptions", **act))],
                                   ["x"], ["y"])
    out["batch_matmul"] = model([("a", [2, 3, 4], F32, None), ("b", [2, 4, 5], F32, w(2, 4, 5)), ("y", [2, 3, 5], F32, None)],
                                [(OP.BATCH_MATMUL, ["a", "b"], ["y"], opts("BatchMatMulOptions"))], ["a"], ["y"])
    for name in ["MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"]:
        out[name.lower()] = with_const(getattr(OP, name), i32(1, 2), opts("ReducerOptions", KeepDims=True),
                                       out_shape=(1, 1, 1, 2))
    out["resize_bilinear"] = with_const(OP.RESIZE_BILINEAR, i32(8, 8), opts("ResizeBilinearOptions"), out_shape=(1, 8, 8, 2))
    out["resize_nearest_neighbor"] = with_const(OP.RESIZE_NEAREST_NEIGHBOR, i32(2, 2),
                                                opts("ResizeNearestNeighborOptions"), out_shape=(1, 2, 2, 2))
    # Operators the engine's rewrite rules (components/inference/src/tflite/rules/) replace.
    out.update(rule_fixtures())
    out["chain"] = model([("x", [1, 4, 4, 2], F32, None), ("p", [4], I32, i32(0, 3, 1, 2)), ("t", [1, 2, 4, 4], F32, None),
                          ("s", [2], I32, i32(1, 32)), ("r", [1, 32], F32, None), ("y", [1, 32], F32, None)],
                         [(OP.TRANSPOSE, ["x", "p"], ["t"], None), (OP.RESHAPE, ["t", "s"], ["r"], None),
                          (OP.TANH, ["r"], ["y"], None)], ["x"], ["y"])
    return out


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (out / f"{name}.tflite").write_bytes(data)
    print(f"wrote {len(seeds())} TFLite seeds to {out}")


if __name__ == "__main__":
    main()
