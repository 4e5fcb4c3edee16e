#!/usr/bin/env python3
"""Train the shipped demo model (8x8 handwritten digits) and export it to ONNX.

Writes:
  models/digits.onnx          input "input" f32[batch,1,8,8] -> "probabilities" f32[batch,10]
  models/digits-test/x.npy    held-out images, f32[450,1,8,8] (pixels / 16)
  models/digits-test/y.npy    held-out labels, i64[450]

The CNN is written in plain numpy (im2col convolutions, hand-written backprop,
Adam) so the model can be rebuilt from the repo with no deep-learning framework
and no downloads: the data is scikit-learn's bundled copy of UCI optdigits.

Architecture (mirrors the exported ONNX graph node for node):
  Conv3x3(pad 1, 16) -> Relu -> MaxPool2 -> Conv3x3(pad 1, 32) -> Relu -> MaxPool2
  -> Flatten -> Gemm(10) -> Softmax

Run from anywhere: python3 models/train_digits.py
"""

import os

# Pin BLAS to one thread before numpy loads: GEMM splits its reductions by
# thread count, so the weights (and the sha256 in manifest.json) would otherwise
# depend on the machine's core count. The model is tiny; one thread is plenty.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parent
SEED = 0
EPOCHS = 60
BATCH = 32
LR = 3e-3
WEIGHT_DECAY = 1e-4  # decoupled (AdamW-style), conv/dense weights only
OPSET = 13
IR_VERSION = 8  # tract and older onnxruntime builds reject newer IR versions
MIN_ACCURACY = 0.975


# ---------------------------------------------------------------- data

def load_data():
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]  # [N,1,8,8]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=450, random_state=0, stratify=y
    )
    return (np.ascontiguousarray(x_tr), y_tr,
            np.ascontiguousarray(x_te, dtype=np.float32), y_te)


def random_shift(x, rng):
    """Shift each image by dy, dx in {-1, 0, 1}, zero-filling the exposed edge.

    Digits are centred by the optdigits preprocessing, but not perfectly;
    one-pixel jitter is the cheapest regulariser that helps at this size."""
    n = x.shape[0]
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.empty_like(x)
    shifts = rng.integers(0, 3, size=(n, 2))
    for dy in range(3):
        for dx in range(3):
            idx = np.nonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx))[0]
            out[idx] = padded[idx, :, dy:dy + 8, dx:dx + 8]
    return out


# ---------------------------------------------------------------- layers

def im2col3x3(x):
    """[N,C,H,W] -> [N*H*W, C*9] patches of the zero-padded (pad 1) input.

    Column order (c, ky, kx) matches ONNX Conv weights [O, C, 3, 3] flattened."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))
    # win: [N, C, H, W, 3, 3] -> [N, H, W, C, 3, 3]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * w, c * 9)


def col2im3x3(dcols, shape):
    """Adjoint of im2col3x3: scatter-add patch gradients back onto the input."""
    n, c, h, w = shape
    d = dcols.reshape(n, h, w, c, 3, 3).transpose(0, 3, 1, 2, 4, 5)
    dxp = np.zeros((n, c, h + 2, w + 2), dtype=dcols.dtype)
    for ky in range(3):
        for kx in range(3):
            dxp[:, :, ky:ky + h, kx:kx + w] += d[..., ky, kx]
    return dxp[:, :, 1:-1, 1:-1]


def conv_forward(x, w, b):
    n, _, h, wd = x.shape
    cols = im2col3x3(x)
    out = cols @ w.reshape(w.shape[0], -1).T + b
    return out.reshape(n, h, wd, -1).transpose(0, 3, 1, 2), cols


def conv_backward(dout, cols, x_shape, w):
    o = w.shape[0]
    d = dout.transpose(0, 2, 3, 1).reshape(-1, o)
    dw = (d.T @ cols).reshape(w.shape)
    db = d.sum(axis=0)
    dx = col2im3x3(d @ w.reshape(o, -1), x_shape)
    return dx, dw, db


def maxpool_forward(x):
    """2x2 / stride 2. Returns the output and the argmax within each window."""
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5)
    win = win.reshape(n, c, h // 2, w // 2, 4)
    arg = win.argmax(axis=-1)
    return np.take_along_axis(win, arg[..., None], axis=-1)[..., 0], arg


def maxpool_backward(dout, arg, x_shape):
    n, c, h, w = x_shape
    dwin = np.zeros((n, c, h // 2, w // 2, 4), dtype=dout.dtype)
    np.put_along_axis(dwin, arg[..., None], dout[..., None], axis=-1)
    dwin = dwin.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
    return dwin.reshape(x_shape)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- model

def init_params(rng):
    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    return {
        "conv1_w": he((16, 1, 3, 3), 1 * 9),
        "conv1_b": np.zeros(16, np.float32),
        "conv2_w": he((32, 16, 3, 3), 16 * 9),
        "conv2_b": np.zeros(32, np.float32),
        # Gemm with transB=1 expects [out, in]; keep that layout from the start.
        "fc_w": (rng.standard_normal((10, 128)) * np.sqrt(1.0 / 128)).astype(np.float32),
        "fc_b": np.zeros(10, np.float32),
    }


def forward(p, x):
    c1, cols1 = conv_forward(x, p["conv1_w"], p["conv1_b"])
    r1 = np.maximum(c1, 0)
    m1, arg1 = maxpool_forward(r1)
    c2, cols2 = conv_forward(m1, p["conv2_w"], p["conv2_b"])
    r2 = np.maximum(c2, 0)
    m2, arg2 = maxpool_forward(r2)
    flat = m2.reshape(x.shape[0], -1)  # (C,H,W) order == ONNX Flatten(axis=1)
    logits = flat @ p["fc_w"].T + p["fc_b"]
    cache = (x, c1, cols1, m1, arg1, c2, cols2, arg2, flat)
    return logits, cache


def backward(p, dlogits, cache):
    x, c1, cols1, m1, arg1, c2, cols2, arg2, flat = cache
    g = {"fc_w": dlogits.T @ flat, "fc_b": dlogits.sum(axis=0)}
    dm2 = (dlogits @ p["fc_w"]).reshape(c2.shape[0], 32, 2, 2)
    dr2 = maxpool_backward(dm2, arg2, c2.shape)
    dc2 = dr2 * (c2 > 0)
    dm1, g["conv2_w"], g["conv2_b"] = conv_backward(dc2, cols2, m1.shape, p["conv2_w"])
    dr1 = maxpool_backward(dm1, arg1, c1.shape)
    dc1 = dr1 * (c1 > 0)
    _, g["conv1_w"], g["conv1_b"] = conv_backward(dc1, cols1, x.shape, p["conv1_w"])
    return g


def predict(p, x, batch=512):
    return np.concatenate(
        [softmax(forward(p, x[i:i + batch])[0]) for i in range(0, len(x), batch)]
    )


def train(x, y, rng, epochs=EPOCHS, log=print):
    p = init_params(rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    steps_per_epoch = -(-len(x) // BATCH)
    total, step = epochs * steps_per_epoch, 0
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        xa = random_shift(x[order], rng)
        ya = y[order]
        loss_sum = 0.0
        for i in range(0, len(x), BATCH):
            xb, yb = xa[i:i + BATCH], ya[i:i + BATCH]
            logits, cache = forward(p, xb)
            prob = softmax(logits)
            loss_sum += -np.log(prob[np.arange(len(yb)), yb] + 1e-12).sum()
            dlogits = prob
            dlogits[np.arange(len(yb)), yb] -= 1.0
            dlogits /= len(yb)
            grads = backward(p, dlogits.astype(np.float32), cache)
            # Cosine decay: a large early step size finds a good basin quickly,
            # the small tail lets the final weights settle.
            lr = LR * 0.5 * (1.0 + np.cos(np.pi * step / total))
            step += 1
            for k in p:
                m[k] = b1 * m[k] + (1 - b1) * grads[k]
                v[k] = b2 * v[k] + (1 - b2) * grads[k] ** 2
                mhat = m[k] / (1 - b1 ** step)
                vhat = v[k] / (1 - b2 ** step)
                upd = lr * mhat / (np.sqrt(vhat) + eps)
                if k.endswith("_w"):
                    upd = upd + lr * WEIGHT_DECAY * p[k]
                p[k] = (p[k] - upd).astype(np.float32)
        if (epoch + 1) % 10 == 0 or epoch == 0:
            train_acc = (predict(p, x).argmax(1) == y).mean()
            log(f"epoch {epoch + 1:3d}  loss {loss_sum / len(x):.4f}  "
                f"train acc {train_acc:.4f}")
    return p


# ---------------------------------------------------------------- export

def export_onnx(p, path):
    inits = [numpy_helper.from_array(np.ascontiguousarray(v, np.float32), name=k)
             for k, v in sorted(p.items())]
    nodes = [
        helper.make_node("Conv", ["input", "conv1_w", "conv1_b"], ["conv1"],
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["conv1"], ["relu1"]),
        helper.make_node("MaxPool", ["relu1"], ["pool1"],
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pool1", "conv2_w", "conv2_b"], ["conv2"],
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["conv2"], ["relu2"]),
        helper.make_node("MaxPool", ["relu2"], ["pool2"],
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool2"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "digits_cnn",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                              ["batch", 1, 8, 8])],
        outputs=[helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                               ["batch", 10])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="secure-context",
        producer_version="1",
        doc_string="secure-context demo: 8x8 handwritten digit classifier "
                   "(scikit-learn load_digits / UCI optdigits). "
                   "input: f32[batch,1,8,8], pixels in [0,1] (raw 0..16 / 16); "
                   "output: softmax probabilities f32[batch,10] for digits 0-9.",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())


def onnxruntime_accuracy(path, x, y):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    prob = sess.run(["probabilities"], {"input": x})[0]
    return float((prob.argmax(axis=1) == y).mean()), prob


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    args = ap.parse_args()

    t0 = time.perf_counter()
    rng = np.random.default_rng(SEED)
    x_tr, y_tr, x_te, y_te = load_data()
    print(f"train {x_tr.shape}, held-out {x_te.shape}")

    params = train(x_tr, y_tr, rng, epochs=args.epochs)
    train_time = time.perf_counter() - t0

    model_path = MODELS_DIR / "digits.onnx"
    export_onnx(params, model_path)
    test_dir = MODELS_DIR / "digits-test"
    test_dir.mkdir(exist_ok=True)
    np.save(test_dir / "x.npy", x_te.astype(np.float32))
    np.save(test_dir / "y.npy", y_te.astype(np.int64))

    acc, prob = onnxruntime_accuracy(model_path, x_te, y_te)
    ref = predict(params, x_te)
    print(f"numpy vs onnxruntime max abs diff: {np.abs(prob - ref).max():.2e}")
    print(f"held-out accuracy (onnxruntime): {acc:.4f} "
          f"({int(round(acc * len(y_te)))}/{len(y_te)})")
    print(f"training time: {train_time:.1f}s; wrote {model_path} "
          f"({model_path.stat().st_size} bytes)")
    if acc < MIN_ACCURACY:
        raise SystemExit(f"held-out accuracy {acc:.4f} < {MIN_ACCURACY}")
    print("now run: secure-context models update")


if __name__ == "__main__":
    main()
