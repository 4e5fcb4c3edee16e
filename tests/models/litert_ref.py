"""LiteRT (ai-edge-litert) as the reference for TFLite models: the third-party ones
(test_third_party.py) and the rewrite rules' fixtures (test_tflite_rules.py)."""

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def litert_model(data):
    """The model as LiteRT can run it. MediaPipe's custom Convolution2DTransposeBias is not in
    LiteRT; it is TensorFlow's transposed convolution plus a bias, which LiteRT has as the
    builtin TRANSPOSE_CONV with a bias input: the reference uses that."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(data, 0)
    customs = [i for i, c in enumerate(model.operatorCodes)
               if c.customCode == b"Convolution2DTransposeBias"]
    if not customs:
        return data
    code = fb.OperatorCodeT()
    code.deprecatedBuiltinCode = code.builtinCode = fb.BuiltinOperator.TRANSPOSE_CONV
    code.version = 3
    model.operatorCodes.append(code)
    graph = model.subgraphs[0]
    for op in graph.operators:
        if op.opcodeIndex not in customs:
            continue
        padding, stride_w, stride_h = np.frombuffer(bytes(op.customOptions), "<i4")
        out = graph.tensors[op.outputs[0]]
        buf = fb.BufferT()
        buf.data = np.asarray(out.shape, "<i4").view(np.uint8)
        model.buffers.append(buf)
        shape = fb.TensorT()
        shape.shape, shape.type = [4], fb.TensorType.INT32
        shape.buffer, shape.name = len(model.buffers) - 1, out.name + b"/output_shape"
        graph.tensors.append(shape)
        x, w, b = op.inputs
        op.inputs = [len(graph.tensors) - 1, w, x, b]
        op.opcodeIndex = len(model.operatorCodes) - 1
        opts = fb.TransposeConvOptionsT()
        # MediaPipe's padding enum: 1 SAME, 2 VALID; the schema's: 0 SAME, 1 VALID.
        opts.padding = {1: fb.Padding.SAME, 2: fb.Padding.VALID}[int(padding)]
        opts.strideW, opts.strideH = int(stride_w), int(stride_h)
        op.builtinOptionsType, op.builtinOptions = fb.BuiltinOptions.TransposeConvOptions, opts
        op.customOptions = None
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def litert(data, resolver=OpResolverType.BUILTIN_REF):
    """LiteRT, by default with its reference kernels (no XNNPACK delegate), one thread."""
    interp = Interpreter(model_content=litert_model(data), num_threads=1,
                         experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    return interp
