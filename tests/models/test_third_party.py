"""Third-party models in the engine component, against their reference runtimes (issue #7).

Families: every .tflite in the mediapipe==0.10.14 wheel (Apache-2.0), checked against
ai-edge-litert's reference kernels, and every .onnx in the silero-vad==6.2.3 wheel (MIT), checked
against onnxruntime. The wheels are downloaded at test time with `pip download --no-deps` into
$SC_WHEEL_CACHE (default ~/.cache/secure-context/wheels) and the models read from them; each
model's sha256 is pinned below, so a changed file fails instead of silently testing something
else. Nothing large is committed.

The engine runs as `secure-context run` (the wasm component on wasmtime, what the browser runs)
on seeded random inputs. A model listed as running must match the reference within tolerance;
a model listed as not running must fail with a clear `unsupported-operation` error naming what it
lacks, never a trap. With $SC_MODELS_REPORT set, measured errors and latencies go there as JSON
(scripts/test-models turns them into the README table).
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300
CACHE = Path(os.environ.get("SC_WHEEL_CACHE", Path.home() / ".cache/secure-context/wheels"))

MEDIAPIPE = "mediapipe==0.10.14"
SILERO = "silero-vad==6.2.3"

# model file -> (wheel, sha256). Every model of both families.
MODELS = {
    "face_detection_full_range_sparse.tflite": (MEDIAPIPE, "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1"),
    "face_detection_short_range.tflite": (MEDIAPIPE, "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),
    "face_landmark.tflite": (MEDIAPIPE, "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"),
    "face_landmark_with_attention.tflite": (MEDIAPIPE, "e06a804e0144f9929eda782122916b35d60c697c3c9344013ca2bbe76a6ce2b4"),
    "hand_landmark_full.tflite": (MEDIAPIPE, "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3"),
    "hand_landmark_lite.tflite": (MEDIAPIPE, "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6"),
    "hand_recrop.tflite": (MEDIAPIPE, "67d996ce96f9d36fe17d2693022c6da93168026ab2f028f9e2365398d8ac7d5d"),
    "iris_landmark.tflite": (MEDIAPIPE, "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f"),
    "palm_detection_full.tflite": (MEDIAPIPE, "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54"),
    "palm_detection_lite.tflite": (MEDIAPIPE, "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18"),
    "pose_detection.tflite": (MEDIAPIPE, "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"),
    "pose_landmark_full.tflite": (MEDIAPIPE, "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"),
    "selfie_segmentation.tflite": (MEDIAPIPE, "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"),
    "selfie_segmentation_landscape.tflite": (MEDIAPIPE, "a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd"),
    "silero_vad.onnx": (SILERO, "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"),
    "silero_vad_16k_op15.onnx": (SILERO, "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49"),
    "silero_vad_16k_sequence.onnx": (SILERO, "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85"),
    "silero_vad_half.onnx": (SILERO, "1e0b195ad4806595ef4466f419d16fca7e4afcfc6669b8c0b5f76ea87547c769"),
    "silero_vad_op18_ifless.onnx": (SILERO, "7671cd04b004e9076da0d4a7b1a5aec36adf161c39230c1cb94a4fd5db6bbd28"),
    "silero_vad_openvino_16k.onnx": (SILERO, "7776b81ad1b0350c15d7f1555943b9232eb53e9ca5d989c6d0cea9ebc8664d87"),
}

# Models the engine does not run yet, and the words its error must contain (the missing part).
UNSUPPORTED = {
    "face_landmark_with_attention.tflite": [
        "custom operators", "Landmarks2TransformMatrix", "TransformTensorBilinear",
        "TransformLandmarks"],
}

# Tolerance on max |engine - reference|: 1e-4 of the output's scale (max(1, max |ref|)), as
# both compute in f32 in different orders; or, for TFLite, up to 1.5 times the disagreement of
# LiteRT's own two CPU paths (reference kernels vs XNNPACK) on the same input, which is larger
# where deep stacks amplify rounding (pose_landmark_full's segmentation logits reach ~1300).
RTOL = 1e-4
XNNPACK_MARGIN = 1.5
# Silero VAD streams: each chunk's state is fed back, as its users do, for this many chunks.
SILERO_CHUNKS = 3


def _sanitize(name):
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _cached_wheel(spec):
    name, version = spec.split("==")
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    found = sorted(CACHE.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    found = [w for w in found if "-py3-none-any" in w.name or f"-{tag}-" in w.name]
    return found[0] if found else None


def _wheel(spec):
    """The wheel for `spec` in the cache, downloaded once (the manylinux x86_64 build for this
    Python when the project ships binaries)."""
    if _cached_wheel(spec):
        return _cached_wheel(spec)
    CACHE.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--dest", str(CACHE), spec]
    if spec == MEDIAPIPE:
        cmd += ["--python-version", f"{sys.version_info.major}.{sys.version_info.minor}",
                "--platform", "manylinux_2_17_x86_64"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    wheel = _cached_wheel(spec)
    assert wheel, f"pip download {spec} left no matching wheel in {CACHE}"
    return wheel


@pytest.fixture(scope="session")
def model_dir():
    out = CACHE / "models"
    out.mkdir(parents=True, exist_ok=True)
    for spec in (MEDIAPIPE, SILERO):
        with zipfile.ZipFile(_wheel(spec)) as z:
            for member in z.namelist():
                base = member.rsplit("/", 1)[-1]
                if base in MODELS and not (out / base).exists():
                    (out / base).write_bytes(z.read(member))
    for name, (_, sha) in MODELS.items():
        got = hashlib.sha256((out / name).read_bytes()).hexdigest()
        assert got == sha, f"{name}: sha256 {got}, pinned {sha}"
    return out


@pytest.fixture(scope="session")
def sc_bin():
    path = Path(os.environ.get("SC_BIN", "target/release/secure-context"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    assert path.is_file() and os.access(path, os.X_OK), \
        f"host CLI not found at {path} (scripts/build, or set SC_BIN)"
    return path


REPORT = {}


@pytest.fixture(scope="session", autouse=True)
def report():
    yield REPORT
    dest = os.environ.get("SC_MODELS_REPORT")
    if dest:
        Path(dest).write_text(json.dumps(REPORT, indent=1, sort_keys=True))


def run_component(sc_bin, model, inputs, work):
    """Runs `model` on `inputs` ({name: array}) in the component; ({name: array}, ms, result)."""
    work.mkdir(parents=True, exist_ok=True)
    args = [str(sc_bin), "run", "--model", str(model), "--out", str(work / "out")]
    for name, value in inputs.items():
        path = work / f"in-{_sanitize(name)}.npy"
        np.save(path, value)
        args += ["--input", f"{name}={path}"]
    res = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)
    if res.returncode != 0:
        return None, None, res
    ms = float(re.search(r"compute ([0-9.]+) ms", res.stdout + res.stderr).group(1))
    outs = {p.stem: np.load(p) for p in (work / "out").glob("*.npy")}
    return outs, ms, res


def _max_abs(a, b):
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def compare(name, ours, ref, ref_spread=0.0):
    """Max abs error of output `name`, asserted within tolerance (see RTOL)."""
    got = ours[_sanitize(name)]
    assert got.shape == ref.shape, f"output {name}: shape {got.shape}, reference {ref.shape}"
    assert np.isfinite(ref).all()
    err = _max_abs(got, ref)
    scale = max(1.0, float(np.max(np.abs(ref))) if ref.size else 0.0)
    tol = max(RTOL * scale, XNNPACK_MARGIN * ref_spread)
    assert err <= tol, f"output {name}: max abs error {err:.3g} > {tol:.3g}"
    return {"err": err, "scale": scale, "spread": ref_spread}


def summary(compared, ms):
    """The report line: worst absolute error, and the output where it is worst relative to
    its scale (with LiteRT's own reference-vs-XNNPACK gap there, for TFLite)."""
    worst = max(compared, key=lambda c: c["err"] / c["scale"])
    return {"runs": True, "max_abs_err": max(c["err"] for c in compared),
            "worst_rel_err": worst["err"] / worst["scale"], "worst_scale": worst["scale"],
            "worst_ref_gap": worst["spread"], "compute_ms": ms}


# --- TFLite ---------------------------------------------------------------------------------

TFLITE = sorted(m for m in MODELS if m.endswith(".tflite"))


def litert_model(path):
    """The model as LiteRT can run it. MediaPipe's custom Convolution2DTransposeBias is not in
    LiteRT; it is TensorFlow's transposed convolution plus a bias, which LiteRT has as the
    builtin TRANSPOSE_CONV with a bias input: the reference uses that."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    data = path.read_bytes()
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


def litert(model_path, resolver=OpResolverType.BUILTIN_REF):
    """LiteRT, by default with its reference kernels (no XNNPACK delegate), one thread."""
    interp = Interpreter(model_content=litert_model(model_path), num_threads=1,
                         experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    return interp


@pytest.mark.parametrize("model", TFLITE)
def test_tflite(model, model_dir, sc_bin, tmp_path):
    path = model_dir / model
    if model in UNSUPPORTED:
        _, _, res = run_component(sc_bin, path, {}, tmp_path)
        assert res.returncode != 0
        assert "unsupported-operation" in res.stderr, res.stderr
        assert all(word in res.stderr for word in UNSUPPORTED[model]), res.stderr
        assert "trap" not in res.stderr and "engine failed" not in res.stderr, res.stderr
        REPORT[model] = {"runs": False,
                         "why": "MediaPipe custom operators " + ", ".join(UNSUPPORTED[model][1:])}
        return
    interp, xnnpack = litert(path), litert(path, OpResolverType.AUTO)
    errors, times = [], []
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        feeds = {}
        for d in interp.get_input_details():
            # MediaPipe's image models take RGB scaled to [-1, 1] or [0, 1].
            feeds[d["name"]] = rng.uniform(-1, 1, d["shape"]).astype(d["dtype"])
            interp.set_tensor(d["index"], feeds[d["name"]])
            xnnpack.set_tensor(d["index"], feeds[d["name"]])
        interp.invoke()
        xnnpack.invoke()
        ours, ms, res = run_component(sc_bin, path, feeds, tmp_path / str(seed))
        assert ours is not None, res.stderr
        times.append(ms)
        for d in interp.get_output_details():
            ref = interp.get_tensor(d["index"])
            spread = _max_abs(xnnpack.get_tensor(d["index"]), ref)
            errors.append(compare(d["name"], ours, ref, spread))
    REPORT[model] = summary(errors, min(times))


# --- Silero VAD (ONNX) ----------------------------------------------------------------------

SILERO_MODELS = sorted(m for m in MODELS if m.endswith(".onnx"))


def silero_cases(model):
    """(label, sample rate or None, {input name: initial array or shape}) per model variant."""
    if model == "silero_vad_16k_sequence.onnx":
        return [("16k", None, {"input": (4, 576)})]
    if model == "silero_vad_openvino_16k.onnx":
        return [("16k", None, {"input": (1, 576)})]
    if model == "silero_vad_half.onnx":
        return [("16k", None, {"input": (1, 512)})]
    rates = [16000] if "16k" in model else [16000, 8000]
    return [(f"{sr // 1000}k", sr, {"input": (1, 512 if sr == 16000 else 256)}) for sr in rates]


@pytest.mark.parametrize("model", SILERO_MODELS)
def test_silero(model, model_dir, sc_bin, tmp_path):
    path = model_dir / model
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    in_names = [i.name for i in sess.get_inputs()]
    out_names = [o.name for o in sess.get_outputs()]
    # Outputs fed back as the next chunk's state inputs.
    feedback = {"stateN": "state", "hn": "h", "cn": "c"}
    errors, times = [], []
    for label, sr, shapes in silero_cases(model):
        rng = np.random.default_rng(7)
        state = {n: np.zeros((2, 1, 128) if n == "state" else (1, 1, 128), np.float32)
                 for n in in_names if n in ("state", "h", "c")}
        ours_state = dict(state)
        for chunk in range(SILERO_CHUNKS):
            audio = (0.3 * rng.standard_normal(shapes["input"])).astype(np.float32)
            ref_feeds = {"input": audio, **state}
            our_feeds = {"input": audio, **ours_state}
            if sr is not None:
                ref_feeds["sr"] = our_feeds["sr"] = np.array(sr, np.int64)
            ref = dict(zip(out_names, sess.run(None, ref_feeds)))
            ours, ms, res = run_component(sc_bin, path, our_feeds, tmp_path / f"{label}-{chunk}")
            assert ours is not None, f"{label} chunk {chunk}: {res.stderr}"
            times.append(ms)
            for name in out_names:
                errors.append(compare(name, ours, ref[name]))
            state = {feedback[o]: ref[o] for o in out_names if o in feedback}
            ours_state = {feedback[o]: ours[_sanitize(o)] for o in out_names if o in feedback}
    REPORT[model] = summary(errors, min(times))
