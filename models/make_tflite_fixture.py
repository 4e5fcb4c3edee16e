#!/usr/bin/env python3
"""Build models/tiny-conv.tflite: a small 8x8-digits classifier as a TFLite flatbuffer,
without TensorFlow.

The flatbuffer is written with the PyPI `tflite` package's generated builder
functions on top of `flatbuffers`; the weights are trained here in plain numpy
(reusing models/train_digits.py's layers and data split) on scikit-learn's
bundled load_digits data. The result is checked against the reference runtime,
ai-edge-litert (LiteRT, the TensorFlow Lite interpreter).

Pinned (requirements-test.txt): tflite==2.18.0, flatbuffers==25.12.19,
numpy==2.4.6, scikit-learn==1.9.1 for the bytes; ai-edge-litert==2.3.0 to verify.
With those the output is byte-for-byte reproducible.

Graph (NHWC, float32, batch fixed at 1: tract-tflite rejects negative dims):
  input f32[1,8,8,1]
  -> CONV_2D 3x3, 8 filters, stride 1, SAME, fused RELU    f32[1,8,8,8]
  -> MAX_POOL_2D 2x2, stride 2, VALID                       f32[1,4,4,8]
  -> RESHAPE [1,128]                                        f32[1,128]
  -> FULLY_CONNECTED 10                                     f32[1,10]
  -> SOFTMAX (beta 1)                                       probabilities f32[1,10]
Every operator carries its builtin options, as the TFLite converter writes them
(tract-tflite refuses operators whose options are missing).

Run from anywhere: python3 models/make_tflite_fixture.py [--no-verify]
"""

import os

# Same reason as train_digits.py: one BLAS thread keeps the weights (and the sha256
# in manifest.json) independent of the machine's core count.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import flatbuffers  # noqa: E402
import numpy as np  # noqa: E402
import tflite  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(MODELS_DIR))
from train_digits import (  # noqa: E402
    conv_backward, conv_forward, load_data, maxpool_backward, maxpool_forward,
    random_shift, softmax,
)

OUT = MODELS_DIR / "tiny-conv.tflite"
SEED = 1
EPOCHS = 60
BATCH = 32
LR = 1e-2
FILTERS = 8
MIN_ACCURACY = 0.97
# LiteRT vs the numpy forward pass (different summation orders, float32).
MAX_ABS_DIFF = 1e-5

TFLITE_SCHEMA_VERSION = 3
BUFFER_ALIGNMENT = 16  # what the TFLite converter uses for constant data


# ---------------------------------------------------------------- training (numpy, NCHW)

def init_params(rng):
    flat = FILTERS * 4 * 4
    return {
        "conv_w": (rng.standard_normal((FILTERS, 1, 3, 3)) * np.sqrt(2.0 / 9)).astype(np.float32),
        "conv_b": np.zeros(FILTERS, np.float32),
        # FULLY_CONNECTED weights are [out, in]; "in" is in NHWC (h, w, c) order.
        "fc_w": (rng.standard_normal((10, flat)) * np.sqrt(1.0 / flat)).astype(np.float32),
        "fc_b": np.zeros(10, np.float32),
    }


def forward(p, x):
    c, cols = conv_forward(x, p["conv_w"], p["conv_b"])
    r = np.maximum(c, 0)
    m, arg = maxpool_forward(r)
    # Flatten in NHWC order, as RESHAPE does on the TFLite side.
    flat = m.transpose(0, 2, 3, 1).reshape(x.shape[0], -1)
    logits = flat @ p["fc_w"].T + p["fc_b"]
    return logits, (x, c, cols, m, arg, flat)


def backward(p, dlogits, cache):
    x, c, cols, m, arg, flat = cache
    g = {"fc_w": dlogits.T @ flat, "fc_b": dlogits.sum(axis=0)}
    dm = (dlogits @ p["fc_w"]).reshape(m.shape[0], m.shape[2], m.shape[3], m.shape[1])
    dr = maxpool_backward(dm.transpose(0, 3, 1, 2), arg, c.shape)
    dc = dr * (c > 0)
    _, g["conv_w"], g["conv_b"] = conv_backward(dc, cols, x.shape, p["conv_w"])
    return g


def predict(p, x):
    return softmax(forward(p, x)[0])


def train(x, y, rng, epochs=EPOCHS):
    p = init_params(rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    total = epochs * -(-len(x) // BATCH)
    step = 0
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        xa, ya = random_shift(x[order], rng), y[order]
        for i in range(0, len(x), BATCH):
            xb, yb = xa[i:i + BATCH], ya[i:i + BATCH]
            logits, cache = forward(p, xb)
            d = softmax(logits)
            d[np.arange(len(yb)), yb] -= 1.0
            d /= len(yb)
            grads = backward(p, d.astype(np.float32), cache)
            lr = LR * 0.5 * (1.0 + np.cos(np.pi * step / total))
            step += 1
            for k in p:
                m[k] = b1 * m[k] + (1 - b1) * grads[k]
                v[k] = b2 * v[k] + (1 - b2) * grads[k] ** 2
                upd = lr * (m[k] / (1 - b1 ** step)) / (np.sqrt(v[k] / (1 - b2 ** step)) + eps)
                p[k] = (p[k] - upd).astype(np.float32)
        if (epoch + 1) % 10 == 0:
            acc = (predict(p, x).argmax(1) == y).mean()
            print(f"epoch {epoch + 1:3d}  train acc {acc:.4f}")
    return p


# ---------------------------------------------------------------- flatbuffer

def _int_vector(b, start_fn, values):
    start_fn(b, len(values))
    for v in reversed(values):
        b.PrependInt32(v)
    return b.EndVector()


def _offset_vector(b, start_fn, offsets):
    start_fn(b, len(offsets))
    for o in reversed(offsets):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def _data_vector(b, data):
    """A [ubyte] vector whose payload starts 16-byte aligned in the file."""
    b.StartVector(1, len(data), BUFFER_ALIGNMENT)
    b.head -= len(data)
    b.Bytes[b.head:b.head + len(data)] = data
    return b.EndVector()


def build_tflite(p):
    """The model as TFLite flatbuffer bytes (file identifier "TFL3")."""
    B = tflite
    b = flatbuffers.Builder(1024)

    # Weights, converted from the training layout: conv [O,C,H,W] -> TFLite OHWI.
    consts = {
        "conv/weights": p["conv_w"].transpose(0, 2, 3, 1),
        "conv/bias": p["conv_b"],
        "flatten/shape": np.array([1, FILTERS * 16], np.int32),
        "dense/weights": p["fc_w"],
        "dense/bias": p["fc_b"],
    }
    # (name, shape, type); index in this list == tensor index.
    f32, i32 = B.TensorType.FLOAT32, B.TensorType.INT32
    tensors = [
        ("input", [1, 8, 8, 1], f32),
        ("conv/weights", [FILTERS, 3, 3, 1], f32),
        ("conv/bias", [FILTERS], f32),
        ("conv/relu", [1, 8, 8, FILTERS], f32),
        ("pool", [1, 4, 4, FILTERS], f32),
        ("flatten/shape", [2], i32),
        ("flatten", [1, FILTERS * 16], f32),
        ("dense/weights", [10, FILTERS * 16], f32),
        ("dense/bias", [10], f32),
        ("dense", [1, 10], f32),
        ("probabilities", [1, 10], f32),
    ]
    ix = {name: i for i, (name, _, _) in enumerate(tensors)}

    # Buffer 0 is the conventional empty sentinel; each constant gets its own.
    buffer_data = [None]
    tensor_buffer = {}
    for name, _, _ in tensors:
        if name in consts:
            tensor_buffer[name] = len(buffer_data)
            arr = consts[name]
            buffer_data.append(arr.astype(arr.dtype.newbyteorder("<"), order="C").tobytes())
        else:
            tensor_buffer[name] = 0

    buffers = []
    for data in buffer_data:
        data_off = _data_vector(b, data) if data is not None else None
        B.BufferStart(b)
        if data_off is not None:
            B.BufferAddData(b, data_off)
        buffers.append(B.BufferEnd(b))

    tensor_offs = []
    for name, shape, dtype in tensors:
        assert name not in consts or list(consts[name].shape) == shape, name
        name_off = b.CreateString(name)
        shape_off = _int_vector(b, B.TensorStartShapeVector, shape)
        B.TensorStart(b)
        B.TensorAddShape(b, shape_off)
        B.TensorAddType(b, dtype)
        B.TensorAddBuffer(b, tensor_buffer[name])
        B.TensorAddName(b, name_off)
        tensor_offs.append(B.TensorEnd(b))

    # Builtin options, one table per operator.
    B.Conv2DOptionsStart(b)
    B.Conv2DOptionsAddPadding(b, B.Padding.SAME)
    B.Conv2DOptionsAddStrideW(b, 1)
    B.Conv2DOptionsAddStrideH(b, 1)
    B.Conv2DOptionsAddFusedActivationFunction(b, B.ActivationFunctionType.RELU)
    B.Conv2DOptionsAddDilationWFactor(b, 1)
    B.Conv2DOptionsAddDilationHFactor(b, 1)
    conv_opts = B.Conv2DOptionsEnd(b)

    B.Pool2DOptionsStart(b)
    B.Pool2DOptionsAddPadding(b, B.Padding.VALID)
    B.Pool2DOptionsAddStrideW(b, 2)
    B.Pool2DOptionsAddStrideH(b, 2)
    B.Pool2DOptionsAddFilterWidth(b, 2)
    B.Pool2DOptionsAddFilterHeight(b, 2)
    B.Pool2DOptionsAddFusedActivationFunction(b, B.ActivationFunctionType.NONE)
    pool_opts = B.Pool2DOptionsEnd(b)

    new_shape = _int_vector(b, B.ReshapeOptionsStartNewShapeVector, [1, FILTERS * 16])
    B.ReshapeOptionsStart(b)
    B.ReshapeOptionsAddNewShape(b, new_shape)
    reshape_opts = B.ReshapeOptionsEnd(b)

    B.FullyConnectedOptionsStart(b)
    B.FullyConnectedOptionsAddFusedActivationFunction(b, B.ActivationFunctionType.NONE)
    B.FullyConnectedOptionsAddWeightsFormat(b, B.FullyConnectedOptionsWeightsFormat.DEFAULT)
    B.FullyConnectedOptionsAddKeepNumDims(b, False)
    fc_opts = B.FullyConnectedOptionsEnd(b)

    B.SoftmaxOptionsStart(b)
    B.SoftmaxOptionsAddBeta(b, 1.0)
    softmax_opts = B.SoftmaxOptionsEnd(b)

    BO, OP = B.BuiltinOptions, B.BuiltinOperator
    ops = [  # (opcode, inputs, outputs, options type, options)
        (OP.CONV_2D, ["input", "conv/weights", "conv/bias"], ["conv/relu"],
         BO.Conv2DOptions, conv_opts),
        (OP.MAX_POOL_2D, ["conv/relu"], ["pool"], BO.Pool2DOptions, pool_opts),
        (OP.RESHAPE, ["pool", "flatten/shape"], ["flatten"], BO.ReshapeOptions, reshape_opts),
        (OP.FULLY_CONNECTED, ["flatten", "dense/weights", "dense/bias"], ["dense"],
         BO.FullyConnectedOptions, fc_opts),
        (OP.SOFTMAX, ["dense"], ["probabilities"], BO.SoftmaxOptions, softmax_opts),
    ]
    opcodes = []
    for code, *_ in ops:
        if code not in opcodes:
            opcodes.append(code)

    op_offs = []
    for code, ins, outs, opt_type, opt in ops:
        ins_off = _int_vector(b, B.OperatorStartInputsVector, [ix[n] for n in ins])
        outs_off = _int_vector(b, B.OperatorStartOutputsVector, [ix[n] for n in outs])
        B.OperatorStart(b)
        B.OperatorAddOpcodeIndex(b, opcodes.index(code))
        B.OperatorAddInputs(b, ins_off)
        B.OperatorAddOutputs(b, outs_off)
        B.OperatorAddBuiltinOptionsType(b, opt_type)
        B.OperatorAddBuiltinOptions(b, opt)
        op_offs.append(B.OperatorEnd(b))

    tensors_vec = _offset_vector(b, B.SubGraphStartTensorsVector, tensor_offs)
    inputs_vec = _int_vector(b, B.SubGraphStartInputsVector, [ix["input"]])
    outputs_vec = _int_vector(b, B.SubGraphStartOutputsVector, [ix["probabilities"]])
    ops_vec = _offset_vector(b, B.SubGraphStartOperatorsVector, op_offs)
    sg_name = b.CreateString("main")
    B.SubGraphStart(b)
    B.SubGraphAddTensors(b, tensors_vec)
    B.SubGraphAddInputs(b, inputs_vec)
    B.SubGraphAddOutputs(b, outputs_vec)
    B.SubGraphAddOperators(b, ops_vec)
    B.SubGraphAddName(b, sg_name)
    subgraph = B.SubGraphEnd(b)

    code_offs = []
    for code in opcodes:
        B.OperatorCodeStart(b)
        # Readers differ on which field they consult (tract reads the deprecated int8
        # one unless it holds the 127 placeholder): set both, as the converter does.
        B.OperatorCodeAddDeprecatedBuiltinCode(b, code)
        B.OperatorCodeAddBuiltinCode(b, code)
        B.OperatorCodeAddVersion(b, 1)
        code_offs.append(B.OperatorCodeEnd(b))

    def tensor_map(name):
        n = b.CreateString(name)
        B.TensorMapStart(b)
        B.TensorMapAddName(b, n)
        B.TensorMapAddTensorIndex(b, ix[name])
        return B.TensorMapEnd(b)

    sig_in = _offset_vector(b, B.SignatureDefStartInputsVector, [tensor_map("input")])
    sig_out = _offset_vector(b, B.SignatureDefStartOutputsVector, [tensor_map("probabilities")])
    sig_key = b.CreateString("serving_default")
    B.SignatureDefStart(b)
    B.SignatureDefAddInputs(b, sig_in)
    B.SignatureDefAddOutputs(b, sig_out)
    B.SignatureDefAddSignatureKey(b, sig_key)
    B.SignatureDefAddSubgraphIndex(b, 0)
    signature = B.SignatureDefEnd(b)

    codes_vec = _offset_vector(b, B.ModelStartOperatorCodesVector, code_offs)
    subgraphs_vec = _offset_vector(b, B.ModelStartSubgraphsVector, [subgraph])
    buffers_vec = _offset_vector(b, B.ModelStartBuffersVector, buffers)
    sigs_vec = _offset_vector(b, B.ModelStartSignatureDefsVector, [signature])
    description = b.CreateString(
        "secure-context tiny-conv: 8x8 handwritten digit classifier (scikit-learn "
        "load_digits / UCI optdigits), built by models/make_tflite_fixture.py. "
        "input: f32[1,8,8,1] NHWC, pixels in [0,1] (raw 0..16 / 16); "
        "output: softmax probabilities f32[1,10] for digits 0-9.")
    B.ModelStart(b)
    B.ModelAddVersion(b, TFLITE_SCHEMA_VERSION)
    B.ModelAddOperatorCodes(b, codes_vec)
    B.ModelAddSubgraphs(b, subgraphs_vec)
    B.ModelAddDescription(b, description)
    B.ModelAddBuffers(b, buffers_vec)
    B.ModelAddSignatureDefs(b, sigs_vec)
    model = B.ModelEnd(b)
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


# ---------------------------------------------------------------- verification

def litert_predict(model_path, x_nchw):
    """Run each image through ai-edge-litert, one at a time (batch is fixed at 1)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # The reference kernels, not the XNNPACK delegate LiteRT applies by default.
    interp = Interpreter(model_path=str(model_path), num_threads=1,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    assert inp["name"] == "input" and list(inp["shape"]) == [1, 8, 8, 1], inp
    assert out["name"] == "probabilities" and list(out["shape"]) == [1, 10], out
    probs = []
    for img in x_nchw:
        interp.set_tensor(inp["index"], img.reshape(1, 8, 8, 1).astype(np.float32))
        interp.invoke()
        probs.append(interp.get_tensor(out["index"])[0].copy())
    return np.stack(probs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-verify", action="store_true",
                    help="skip the ai-edge-litert check (it is needed for nothing else)")
    args = ap.parse_args()

    rng = np.random.default_rng(SEED)
    x_tr, y_tr, x_te, y_te = load_data()
    params = train(x_tr, y_tr, rng)
    data = build_tflite(params)
    OUT.write_bytes(data)
    print(f"wrote {OUT} ({len(data)} bytes)")

    ref = predict(params, x_te)
    acc = float((ref.argmax(1) == y_te).mean())
    print(f"held-out accuracy (numpy): {acc:.4f}")
    if not args.no_verify:
        got = litert_predict(OUT, x_te)
        diff = float(np.abs(got - ref).max())
        lacc = float((got.argmax(1) == y_te).mean())
        print(f"ai-edge-litert vs numpy max abs diff {diff:.2e}; "
              f"held-out accuracy (ai-edge-litert): {lacc:.4f}")
        if diff > MAX_ABS_DIFF:
            raise SystemExit(f"ai-edge-litert disagrees with numpy: {diff:.3g} > {MAX_ABS_DIFF}")
        acc = lacc
    if acc < MIN_ACCURACY:
        raise SystemExit(f"held-out accuracy {acc:.4f} < {MIN_ACCURACY}")
    print("now run: secure-context models update")


if __name__ == "__main__":
    main()
