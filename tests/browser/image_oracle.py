#!/usr/bin/env python3
"""The oracle for tests/browser/image-input.test.mjs: a manifest entry's declared `preprocess`
(image) and `postprocess` done with Pillow, numpy and the model's reference runtime (LiteRT's
reference kernels for .tflite, onnxruntime for .onnx) on real photographs.

    python3 tests/browser/image_oracle.py MODEL OUT_DIR

writes OUT_DIR/NAME.png (each photograph decoded by Pillow and saved as a plain RGB PNG, no
colour profile: the file the browser test picks, so both sides start from the same pixels),
OUT_DIR/NAME.y4m (the same as a one-frame video for Chromium's fake camera, even sizes only) and
OUT_DIR/reference.json (per image: the outputs, base64 float32, and the post-processed result).

The photographs, real and not committed: grace_hopper.jpg (a portrait, US Navy photo, public
domain) from the matplotlib==3.10.7 wheel, fetched and checked by sha256 like models/fetch.py
does; china.jpg and flower.jpg (CC BY 2.0) from the installed scikit-learn.

Resizing is Pillow's BILINEAR on float images (mode "F"), the same convolution as media.js
without Pillow's 8-bit rounding of its two passes (tests/media measures that rounding).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "models"))
sys.path.insert(0, str(ROOT / "tests" / "models"))

import fetch  # noqa: E402  models/fetch.py: pinned wheels from PyPI, cached

MATPLOTLIB = {
    "package": "matplotlib==3.10.7",
    "wheel": "matplotlib-3.10.7-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    "wheel_sha256": "2222c7ba2cbde7fe63032769f6eb7e83ab3227f47d997a8453377709b7fe3a5a",
    "member": "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
    "sha256": "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
}


def photographs() -> dict[str, bytes]:
    with zipfile.ZipFile(fetch.wheel(MATPLOTLIB)) as z:
        hopper = z.read(MATPLOTLIB["member"])
    if hashlib.sha256(hopper).hexdigest() != MATPLOTLIB["sha256"]:
        raise SystemExit("grace_hopper.jpg: sha256 does not match its pin")
    sk = Path(__import__("sklearn").__file__).parent / "datasets" / "images"
    return {"grace_hopper": hopper, "china": (sk / "china.jpg").read_bytes(), "flower": (sk / "flower.jpg").read_bytes()}


def preprocess(rgb: np.ndarray, spec: dict) -> np.ndarray:
    """The `image` preprocess, for resize "stretch" (what the models under test declare)."""
    if spec.get("resize", "stretch") != "stretch":
        raise SystemExit("image_oracle.py implements resize=stretch only")
    h, w = spec["size"]
    channels = spec.get("channels", "rgb")
    planes = {"rgb": [0, 1, 2], "bgr": [2, 1, 0]}.get(channels)
    src = [rgb[..., i] for i in planes] if planes else [np.asarray(Image.fromarray(rgb).convert("L"))]
    resized = [np.asarray(Image.fromarray(p.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR)) for p in src]
    x = np.stack(resized, axis=-1).astype(np.float64)
    c = x.shape[-1]
    mean = np.broadcast_to(np.asarray(spec.get("mean", 0.0), np.float64), (c,))
    std = np.broadcast_to(np.asarray(spec.get("std", 1.0), np.float64), (c,))
    x = (x * spec.get("scale", 1 / 255) - mean) / std
    x = x.astype(np.float32)[None]
    return x if spec.get("layout", "nchw") == "nhwc" else x.transpose(0, 3, 1, 2).copy()


def run_model(path: Path, fmt: str, x: np.ndarray) -> dict[str, np.ndarray]:
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
        from test_third_party import litert_model  # MediaPipe's custom transposed convolution as LiteRT's builtin

        it = Interpreter(model_content=litert_model(path), num_threads=1, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        return {d["name"]: it.get_tensor(d["index"]).astype(np.float32) for d in it.get_output_details()}
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(None, {s.get_inputs()[0].name: x})))


def postprocess(outputs: dict[str, np.ndarray], spec: dict | None, labels: list[str] | None):
    if not spec:
        return None
    if spec["kind"] == "mask":
        t = outputs[spec.get("output") or next(iter(outputs))]
        t = t if spec.get("layout", "nhwc") == "nhwc" else t.transpose(0, 2, 3, 1)
        m = (t[0, ..., 0] > spec.get("threshold", 0.5)) if t.shape[-1] == 1 else t[0].argmax(-1)
        return {"kind": "mask", "width": int(m.shape[1]), "height": int(m.shape[0]), "mask": m.astype(np.uint8).ravel().tolist()}
    if spec["kind"] == "classes":
        t = outputs[spec.get("output") or next(iter(outputs))].astype(np.float64)
        if spec.get("softmax"):
            t = np.exp(t - t.max(-1, keepdims=True))
            t /= t.sum(-1, keepdims=True)
        row = t.reshape(-1, t.shape[-1])[0]
        top = np.argsort(-row, kind="stable")[: spec.get("top_k", 5)]
        return {"kind": "classes", "classes": [[{"label": labels[i] if labels else str(i), "index": int(i), "score": float(row[i])} for i in top]]}
    raise SystemExit(f"image_oracle.py: postprocess {spec['kind']} not implemented")


def write_y4m(rgb: np.ndarray, path: Path) -> None:
    """One frame as a Y4M video (4:2:0, BT.601 limited range): Chromium's fake camera plays it
    (--use-file-for-fake-video-capture), so the camera test sees a real photograph."""
    x = rgb.astype(np.float64) / 255
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    sub = lambda c: c.reshape(c.shape[0] // 2, 2, c.shape[1] // 2, 2).mean(axis=(1, 3))  # noqa: E731
    planes = [np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in (y, sub(cb), sub(cr))]
    h, w = y.shape
    path.write_bytes(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode() + b"FRAME\n" + b"".join(p.tobytes() for p in planes))


def main() -> None:
    name, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    entry = next(m for m in json.loads((ROOT / "models" / "manifest.json").read_text())["models"] if m["name"] == name)
    ref = {"model": name, "images": []}
    for stem, data in photographs().items():
        rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        Image.fromarray(rgb).save(out / f"{stem}.png")  # no iCCP chunk: plain sRGB values
        if rgb.shape[0] % 2 == 0 and rgb.shape[1] % 2 == 0:
            write_y4m(rgb, out / f"{stem}.y4m")
        outputs = run_model(ROOT / "models" / entry["file"], entry["format"], preprocess(rgb, entry["preprocess"]))
        ref["images"].append({
            "file": f"{stem}.png", "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
            "outputs": {k: {"shape": list(v.shape), "data": base64.b64encode(np.ascontiguousarray(v, "<f4").tobytes()).decode()} for k, v in outputs.items()},
            "result": postprocess(outputs, entry.get("postprocess"), entry.get("labels")),
        })
    (out / "reference.json").write_text(json.dumps(ref))


if __name__ == "__main__":
    main()
