"""static/media.js (declared pre- and post-processing) against the same steps in Pillow, numpy and
onnxruntime, on real photographs: the two sample images scikit-learn bundles (china.jpg,
flower.jpg; CC BY 2.0, read from the installed package, not committed).

Tolerances: Pillow's BILINEAR on float images (mode "F") is the same convolution without
rounding, so we must match it to float32 precision (1e-3 of a level of 255). On 8-bit RGB images
Pillow rounds each of its two passes to whole levels, so we allow 1 level there and report the
spread measured. Audio resampling is numpy.interp's definition; boxes are checked against
onnxruntime's NonMaxSuppression.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "tests" / "media" / "run_media.mjs"
IMAGES_DIR = Path(__import__("sklearn").__file__).parent / "datasets" / "images"
IMAGES = ["china.jpg", "flower.jpg"]
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


class Media:
    """One node process running static/media.js for the whole module."""

    def __init__(self) -> None:
        self.p = subprocess.Popen(["node", str(RUNNER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def __call__(self, **req):
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        out = json.loads(self.p.stdout.readline())
        if "error" in out:
            raise ValueError(out["error"])
        return out

    def close(self) -> None:
        self.p.stdin.close()
        self.p.wait(timeout=10)


@pytest.fixture(scope="module")
def media():
    m = Media()
    yield m
    m.close()


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def f32(s: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype="<f4")


def js_image(media, img: Image.Image, spec: dict) -> np.ndarray:
    rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)
    r = media(op="image", rgba=b64(rgba), width=img.width, height=img.height, spec=spec)
    return f32(r["data"]).reshape(r["shape"])


def geometry(img: Image.Image, spec: dict):
    """The resize and crop/pad boxes the spec asks for, as media.js computes them."""
    h, w = spec["size"]
    mode = spec.get("resize", "stretch")
    if mode == "stretch":
        return (w, h), None
    if mode == "crop":
        k = spec.get("shorter", max(h, w)) / min(img.width, img.height)
        rw, rh = max(w, int(img.width * k + 0.5)), max(h, int(img.height * k + 0.5))
        return (rw, rh), ("crop", (rw - w) // 2, (rh - h) // 2)
    k = min(w / img.width, h / img.height)
    rw, rh = max(1, int(img.width * k + 0.5)), max(1, int(img.height * k + 0.5))
    return (rw, rh), ("pad", (w - rw) // 2, (h - rh) // 2)


def place(plane: np.ndarray, spec: dict, how) -> np.ndarray:
    h, w = spec["size"]
    if how is None:
        return plane
    kind, x0, y0 = how
    if kind == "crop":
        return plane[y0 : y0 + h, x0 : x0 + w]
    out = np.full((h, w), float(spec.get("pad", 0)), dtype=np.float64)
    out[y0 : y0 + plane.shape[0], x0 : x0 + plane.shape[1]] = plane
    return out


def planes_of(img: Image.Image, channels: str):
    rgb = img.convert("RGB")
    if channels == "gray":
        a = np.asarray(rgb, dtype=np.float64)
        return [a @ np.array([0.299, 0.587, 0.114])]
    a = np.asarray(rgb, dtype=np.float64)
    order = [2, 1, 0] if channels == "bgr" else [0, 1, 2]
    return [a[..., c] for c in order]


def reference(img: Image.Image, spec: dict, float_resize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pillow resize (float planes: mode "F", no rounding; else 8-bit RGB), then numpy."""
    size, how = geometry(img, spec)
    channels = spec.get("channels", "rgb")
    if float_resize:
        planes = [
            np.asarray(Image.fromarray(p.astype(np.float32), mode="F").resize(size, Image.BILINEAR), dtype=np.float64)
            for p in planes_of(img, channels)
        ]
    else:
        base = img.convert("L") if channels == "gray" else img.convert("RGB")
        small = base.resize(size, Image.BILINEAR)
        a = np.asarray(small, dtype=np.float64)
        planes = [a] if channels == "gray" else [a[..., c] for c in ([2, 1, 0] if channels == "bgr" else [0, 1, 2])]
    planes = [place(p, spec, how) for p in planes]
    c = len(planes)
    mean = np.broadcast_to(np.array(spec.get("mean", 0), dtype=np.float64), (c,))
    std = np.broadcast_to(np.array(spec.get("std", 1), dtype=np.float64), (c,))
    scale = spec.get("scale", 1 / 255)
    x = np.stack([(p * scale - mean[i]) / std[i] for i, p in enumerate(planes)])
    levels = np.stack([np.full_like(planes[0], std[i] / scale) for i in range(c)])  # one unit = one level
    if spec.get("layout", "nchw") == "nhwc":
        x, levels = x.transpose(1, 2, 0), levels.transpose(1, 2, 0)
    return x[None].astype(np.float32), levels[None]


SPECS = {
    "imagenet stretch 224": {"size": [224, 224], **IMAGENET},
    "resize 256, center crop 224": {"size": [224, 224], "resize": "crop", "shorter": 256, **IMAGENET},
    "letterbox 320x256 bgr nhwc": {"size": [256, 320], "resize": "letterbox", "channels": "bgr", "layout": "nhwc", "pad": 114, "scale": 1.0},
    "gray 28x28": {"size": [28, 28], "channels": "gray", "mean": 0.5, "std": 0.5},
}


@pytest.mark.parametrize("name", IMAGES)
@pytest.mark.parametrize("label", SPECS)
def test_image_matches_pillow(media, name, label):
    spec = SPECS[label]
    img = Image.open(IMAGES_DIR / name)
    got = js_image(media, img, spec)
    exact, levels = reference(img, spec, float_resize=True)
    assert got.shape == exact.shape
    # Same convolution as Pillow's float path: agreement to float32 rounding.
    err_float = np.max(np.abs(got - exact) * levels)
    assert err_float < 1e-3, f"{label} {name}: {err_float} levels from Pillow (mode F)"
    if spec.get("channels") != "gray":
        rounded, _ = reference(img, spec, float_resize=False)
        err8 = np.abs(got - rounded) * levels
        print(f"{label} {name}: vs Pillow 8-bit max {err8.max():.3f} levels, mean {err8.mean():.3f}")
        assert err8.max() <= 1.0 + 1e-3, f"{label} {name}: {err8.max()} levels from Pillow (8-bit)"


def test_upscaling_a_small_crop(media):
    img = Image.open(IMAGES_DIR / "flower.jpg").crop((100, 80, 150, 120))  # 50 x 40
    spec = {"size": [160, 200], "channels": "rgb"}
    got = js_image(media, img, spec)
    exact, levels = reference(img, spec, float_resize=True)
    assert np.max(np.abs(got - exact) * levels) < 1e-3


def test_bad_specs_are_refused(media):
    img = Image.new("RGB", (4, 4))
    for spec, why in [
        ({"size": [0, 4]}, "size"),
        ({"size": [4, 4], "resize": "zoom"}, "resize"),
        ({"size": [4, 4], "channels": "rgba"}, "channels"),
        ({"size": [4, 4], "mean": [1, 2]}, "mean"),
        ({"size": [4, 4], "std": 0}, "std"),
        ({"size": [4, 4], "layout": "chw"}, "layout"),
    ]:
        with pytest.raises(ValueError, match=why):
            js_image(media, img, spec)


def test_audio_mixes_and_resamples_like_numpy(media):
    rng = np.random.default_rng(7)
    rate, target, n = 44100, 16000, 44100 // 3
    chans = rng.uniform(-1, 1, (2, n)).astype(np.float32)
    r = media(op="audio", channels=[b64(c) for c in chans], rate=rate, spec={"sample_rate": target, "window": 512})
    got = np.concatenate([f32(w) for w in r["windows"]])
    mono = chans.astype(np.float64).mean(axis=0)
    m = n * target // rate
    want = np.interp(np.arange(m) * rate / target, np.arange(n), mono)
    assert len(r["windows"]) == -(-m // 512)
    assert np.max(np.abs(got[:m] - want)) < 1e-6
    assert not got[m:].any(), "the last window is zero-padded"


@pytest.mark.parametrize("rate,target", [(48000, 16000), (44100, 16000), (16000, 16000), (8000, 16000)])
def test_audio_stream_resamples_like_numpy_in_any_chunks(media, rate, target):
    """The microphone's resampler, fed in uneven chunks, gives numpy.interp's samples (what
    audioWindows gives on the whole signal), up to the last input sample."""
    rng = np.random.default_rng(11)
    n = rate // 2
    mono = rng.uniform(-1, 1, n).astype(np.float32)
    chunks = [int(c) for c in rng.integers(1, 5000, 400)]
    chunks = chunks[: next(i for i in range(len(chunks)) if sum(chunks[: i + 1]) >= n) + 1]
    r = media(op="resample-stream", mono=b64(mono), rate=rate, target=target, chunks=chunks)
    got = f32(r["samples"])
    t = np.arange(len(got)) * rate / target
    assert t[-1] < n - 1 and (len(got)) * rate / target >= n - 1 - rate / target, "every sample with both neighbours, no more"
    want = np.interp(t, np.arange(n), mono.astype(np.float64))
    assert np.max(np.abs(got - want)) < 1e-6


def test_scores_one_per_value(media):
    p = np.array([[0.1], [0.7], [0.5]], np.float32)
    r = media(op="post", outputs={"output": {"data": b64(p), "shape": [3, 1]}, "other": {"data": b64(p), "shape": [3, 1]}},
              spec={"kind": "scores", "output": "output"})
    assert r == {"kind": "scores", "scores": p.ravel().tolist(), "threshold": 0.5}


def test_classes_softmax_and_top_k(media):
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, 10)).astype(np.float32)
    labels = [f"c{i}" for i in range(10)]
    r = media(op="post", outputs={"y": {"data": b64(logits), "shape": [2, 10]}}, spec={"kind": "classes", "softmax": True, "top_k": 3}, labels=labels)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    for row, got in zip(p, r["classes"]):
        top = np.argsort(-row)[:3]
        assert [g["index"] for g in got] == top.tolist()
        assert [g["label"] for g in got] == [labels[i] for i in top]
        np.testing.assert_allclose([g["score"] for g in got], row[top], rtol=1e-6)


def nms_onnxruntime(boxes_yxyx, scores_cn, iou, thr):
    g = helper.make_graph(
        [helper.make_node("NonMaxSuppression", ["b", "s", "m", "i", "t"], ["o"])],
        "nms",
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, None, 4]), helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, None, None])],
        [helper.make_tensor_value_info("o", TensorProto.INT64, [None, 3])],
        [
            helper.make_tensor("m", TensorProto.INT64, [1], [1000]),
            helper.make_tensor("i", TensorProto.FLOAT, [1], [iou]),
            helper.make_tensor("t", TensorProto.FLOAT, [1], [thr]),
        ],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    (o,) = s.run(None, {"b": boxes_yxyx[None], "s": scores_cn[None]})
    return {(int(c), int(i)) for _, c, i in o}


def test_boxes_match_onnxruntime_nms(media):
    rng = np.random.default_rng(11)
    n, c = 200, 3
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(5, 40, (n, 2))
    xyxy = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.uniform(0, 1, (n, c)).astype(np.float32)
    spec = {"kind": "boxes", "boxes": "boxes", "scores": "scores", "format": "xyxy", "score_threshold": 0.6, "iou_threshold": 0.4, "max": 10_000}
    r = media(op="post", outputs={"boxes": {"data": b64(xyxy), "shape": [1, n, 4]}, "scores": {"data": b64(scores), "shape": [1, n, c]}}, spec=spec)
    got = {(b["index"], i) for b in r["boxes"] for i in [int(np.argmin(np.abs(xyxy - np.array(b["box"], np.float32)).sum(1)))]}
    yxyx = xyxy[:, [1, 0, 3, 2]]
    want = nms_onnxruntime(yxyx, scores.T.copy(), 0.4, 0.6)
    assert got == want
    assert [b["score"] for b in r["boxes"]] == sorted((b["score"] for b in r["boxes"]), reverse=True)


def test_mask_argmax_and_threshold(media):
    rng = np.random.default_rng(5)
    multi = rng.normal(size=(1, 16, 12, 4)).astype(np.float32)
    r = media(op="post", outputs={"y": {"data": b64(multi), "shape": list(multi.shape)}}, spec={"kind": "mask"})
    got = np.frombuffer(base64.b64decode(r["mask"]), np.uint8).reshape(r["height"], r["width"])
    assert (got == multi[0].argmax(-1)).all()
    one = rng.uniform(size=(1, 1, 9, 7)).astype(np.float32)
    r = media(op="post", outputs={"y": {"data": b64(one), "shape": list(one.shape)}}, spec={"kind": "mask", "layout": "nchw", "threshold": 0.3})
    got = np.frombuffer(base64.b64decode(r["mask"]), np.uint8).reshape(9, 7)
    assert (got == (one[0, 0] > 0.3)).all()
