#!/usr/bin/env python3
"""The oracle for tests/browser/image-input.test.mjs: a manifest entry's declared `preprocess`
(image) and `postprocess` done with Pillow, numpy and the model's reference runtime (LiteRT's
reference kernels for .tflite, onnxruntime for .onnx) on real photographs.

    python3 tests/browser/image_oracle.py MODEL OUT_DIR [--images photos|text-lines|squares]

MODEL is a manifest entry's name, or `box-detector`: a small detector made here with the `onnx`
package (decoded boxes and scores, for the `boxes` postprocess; no detector on PyPI or npm ships
its boxes decoded) written to OUT_DIR/box-detector.onnx with its manifest entry
(OUT_DIR/box-detector.entry.json, without the pins the test computes). It writes OUT_DIR/NAME.png (each photograph decoded by Pillow and saved as a plain RGB PNG, no
colour profile: the file the browser test picks, so both sides start from the same pixels),
OUT_DIR/NAME.y4m (the same as a one-frame video for Chromium's fake camera, even sizes only) and
OUT_DIR/reference.json (per image: the outputs, base64 float32, and the post-processed result).

Image sets: `photos` (the default), real photographs; `text-lines`, short lines of text rendered
by Pillow's own font (ImageFont.load_default, bundled with Pillow), each upright and turned by
180 degrees, as tight crops at least 4 times as wide as high (PP-OCR stretches such a line to its
classifier's 192x48, as the `text-direction` entry declares), plus the photographs; `squares`,
pictures of bright squares on seeded noise for the detector.

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


TEXTS = ["Patient name", "Blood pressure", "Follow-up visit", "Date of birth", "Allergies: none", "Heart rate 72",
         "Prescription", "Room 214B"]


def text_lines() -> dict[str, tuple[np.ndarray, str]]:
    """name -> (RGB pixels, true label): each text upright ("0") and turned by 180 degrees ("180")."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=32)
    out = {}
    for i, t in enumerate(TEXTS):
        left, top, right, bottom = font.getbbox(t)
        m = 6
        h = bottom - top + 2 * m
        w = max(right - left + 2 * m, 4 * h)
        im = Image.new("RGB", (w, h), (250, 250, 245))
        ImageDraw.Draw(im).text((m - left, m - top), t, font=font, fill=(20, 20, 60))
        out[f"line{i:02d}-0"] = (np.asarray(im), "0")
        out[f"line{i:02d}-180"] = (np.asarray(im.rotate(180)), "180")
    return out


def squares() -> dict[str, tuple[np.ndarray, None]]:
    """Bright squares, each a gradient (so no two cells' scores tie), on seeded dark noise."""
    rng = np.random.default_rng(16)
    out = {}
    for name, (w, h), rects in [("squares-wide", (320, 200), [(40, 60, 120, 140), (200, 20, 280, 100)]),
                                ("squares-tall", (150, 240), [(30, 150, 120, 236)]),
                                ("squares-none", (200, 200), [])]:
        x = rng.integers(0, 60, size=(h, w, 3)).astype(np.uint8)
        for i, (x0, y0, x1, y1) in enumerate(rects):
            yy, xx = np.mgrid[0:y1 - y0, 0:x1 - x0]
            x[y0:y1, x0:x1] = np.clip(150 + 20 * i + 0.7 * xx + 0.3 * yy, 0, 255).astype(np.uint8)[..., None]
        out[name] = (x, None)
    return out


DETECTOR_SIZE = 64


def box_detector(path: Path) -> dict:
    """A detector of bright squares: 49 candidate boxes (16x16 cells every 8 pixels of a 64x64
    input, so neighbours overlap and non-maximum suppression matters), each scored by its cell's
    mean brightness. Outputs `boxes` [1, 49, 4] (xyxy, fractions of the input) and `scores`
    [1, 49]. Returns its manifest entry (pins left to the test)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = DETECTOR_SIZE
    cells = [(x, y) for y in range(0, n - 15, 8) for x in range(0, n - 15, 8)]
    boxes = np.array([[[x / n, y / n, (x + 16) / n, (y + 16) / n] for x, y in cells]], np.float32)
    g = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["gray"], axes=[1], keepdims=1),
         helper.make_node("AveragePool", ["gray"], ["cells"], kernel_shape=[16, 16], strides=[8, 8]),
         helper.make_node("Reshape", ["cells", "flat"], ["scores"]),
         helper.make_node("Identity", ["anchors"], ["boxes"])],
        "box_detector",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, n, n])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, len(cells), 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, len(cells)])],
        [numpy_helper.from_array(boxes, "anchors"), numpy_helper.from_array(np.array([1, len(cells)], np.int64), "flat")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="image_oracle.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return {
        "name": "box-detector", "file": "box-detector.onnx", "format": "onnx", "license": "MIT",
        "source": "generated by tests/browser/image_oracle.py (test fixture)", "labels": ["bright"],
        "inputs": [{"name": "image", "dtype": "float32", "shape": [1, 3, n, n]}],
        "outputs": [{"name": "boxes", "dtype": "float32", "shape": [1, len(cells), 4]},
                    {"name": "scores", "dtype": "float32", "shape": [1, len(cells)]}],
        "preprocess": {"kind": "image", "size": [n, n], "resize": "letterbox"},
        "postprocess": {"kind": "boxes", "boxes": "boxes", "scores": "scores", "score_threshold": 0.5,
                        "iou_threshold": 0.3, "units": "normalized"},
    }


def _resize_plane(p: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(p.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR))


def _fit(p: np.ndarray, spec: dict) -> np.ndarray:
    """One channel plane resized as media.js does: stretch, or letterbox (fit, centred, padded)."""
    h, w = spec["size"]
    resize = spec.get("resize", "stretch")
    if resize == "stretch":
        return _resize_plane(p, w, h)
    if resize != "letterbox":
        raise SystemExit(f"image_oracle.py implements resize stretch and letterbox, not {resize}")
    ih, iw = p.shape
    k = min(w / iw, h / ih)
    rw, rh = max(1, int(np.floor(iw * k + 0.5))), max(1, int(np.floor(ih * k + 0.5)))
    out = np.full((h, w), float(spec.get("pad", 0)), np.float32)
    x0, y0 = (w - rw) // 2, (h - rh) // 2
    out[y0:y0 + rh, x0:x0 + rw] = _resize_plane(p, rw, rh)
    return out


def preprocess(rgb: np.ndarray, spec: dict) -> np.ndarray:
    """The `image` preprocess (resize stretch or letterbox: what the models under test declare)."""
    channels = spec.get("channels", "rgb")
    planes = {"rgb": [0, 1, 2], "bgr": [2, 1, 0]}.get(channels)
    src = [rgb[..., i] for i in planes] if planes else [np.asarray(Image.fromarray(rgb).convert("L"))]
    resized = [_fit(p, spec) for p in src]
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
        from litert_ref import litert_model  # MediaPipe's custom transposed convolution as LiteRT's builtin

        it = Interpreter(model_content=litert_model(path.read_bytes()), num_threads=1, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
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
    if spec["kind"] == "boxes":
        return {"kind": "boxes", "boxes": detections(outputs[spec["boxes"]], outputs[spec["scores"]], spec, labels),
                "scores": outputs[spec["scores"]].astype(np.float64).ravel().tolist()}
    raise SystemExit(f"image_oracle.py: postprocess {spec['kind']} not implemented")


def detections(boxes: np.ndarray, scores: np.ndarray, spec: dict, labels: list[str] | None) -> list[dict]:
    """Decoded xyxy boxes over the score threshold, then greedy NMS per class (media.js's steps)."""
    if spec.get("format", "xyxy") != "xyxy":
        raise SystemExit("image_oracle.py implements box format xyxy only")
    b = boxes.reshape(-1, 4).astype(np.float64)
    s = scores.reshape(b.shape[0], -1).astype(np.float64)
    cand = [(s[i, j], i, j) for i in range(b.shape[0]) for j in range(s.shape[1]) if s[i, j] >= spec.get("score_threshold", 0.5)]
    cand.sort(key=lambda c: -c[0])  # stable, as Array.prototype.sort

    def iou(p, q):
        iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
        ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
        union = max(0.0, p[2] - p[0]) * max(0.0, p[3] - p[1]) + max(0.0, q[2] - q[0]) * max(0.0, q[3] - q[1]) - iw * ih
        return iw * ih / union if union > 0 else 0.0

    keep = []
    for score, i, j in cand:
        if any(k["index"] == j and iou(b[k["row"]], b[i]) > spec.get("iou_threshold", 0.5) for k in keep):
            continue
        keep.append({"row": i, "index": j, "score": float(score)})
        if len(keep) >= spec.get("max", 100):
            break
    return [{"box": b[k["row"]].tolist(), "score": k["score"], "index": k["index"],
             "label": labels[k["index"]] if labels else str(k["index"]), "row": k["row"]} for k in keep]


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
    images = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--images" else "photos"
    out.mkdir(parents=True, exist_ok=True)
    if name == "box-detector":
        entry = box_detector(out / "box-detector.onnx")
        (out / "box-detector.entry.json").write_text(json.dumps(entry))
        model_path = out / entry["file"]
    else:
        entry = next(m for m in json.loads((ROOT / "models" / "manifest.json").read_text())["models"] if m["name"] == name)
        model_path = ROOT / "models" / entry["file"]
    pictures: dict[str, tuple[np.ndarray, str | None]] = {}
    if images == "text-lines":
        pictures.update(text_lines())
    if images == "squares":
        pictures.update(squares())
    else:
        for stem, data in photographs().items():
            pictures[stem] = (np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), None)
    ref = {"model": name, "images": []}
    for stem, (rgb, truth) in pictures.items():
        Image.fromarray(rgb).save(out / f"{stem}.png")  # no iCCP chunk: plain sRGB values
        if rgb.shape[0] % 2 == 0 and rgb.shape[1] % 2 == 0 and images == "photos":
            write_y4m(rgb, out / f"{stem}.y4m")
        outputs = run_model(model_path, entry["format"], preprocess(rgb, entry["preprocess"]))
        ref["images"].append({
            "file": f"{stem}.png", "width": int(rgb.shape[1]), "height": int(rgb.shape[0]), "truth": truth,
            "outputs": {k: {"shape": list(v.shape), "data": base64.b64encode(np.ascontiguousarray(v, "<f4").tobytes()).decode()} for k, v in outputs.items()},
            "result": postprocess(outputs, entry.get("postprocess"), entry.get("labels")),
        })
    (out / "reference.json").write_text(json.dumps(ref))


if __name__ == "__main__":
    main()
