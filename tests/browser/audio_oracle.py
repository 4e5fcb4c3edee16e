#!/usr/bin/env python3
"""The oracle for tests/browser/audio.test.mjs (and the Streamlit audio e2e): a manifest entry's
declared audio `preprocess` and `postprocess` done with numpy and onnxruntime on real speech.

    python3 tests/browser/audio_oracle.py MODEL OUT_DIR

writes, from one recording:
  OUT_DIR/speech-44k-stereo.wav   the file the browser test picks: 1 s of silence, the speech,
                                  1 s of silence, as 44.1 kHz 16-bit stereo (right = 0.6 * left),
                                  so decoding, mixing down and resampling are all exercised;
  OUT_DIR/speech-16k.wav          the same at 16 kHz mono, which Chromium's fake microphone plays
                                  (--use-file-for-fake-audio-capture) in a loop;
  OUT_DIR/reference.json          per file: the model's outputs per window (state outputs left
                                  out) and the post-processed result.

The recording, real and not committed: beckett.wav (10 s of read English speech, 16 kHz mono)
from the useful-moonshine-onnx==20251121 wheel (MIT), fetched and checked by sha256 with
models/fetch.py (the wheel tests/text already uses).

The steps are media.js's audioWindows and sandbox-audio.js's: the WAV's 16-bit samples / 32768
(what the browser's decoder gives), the channels' mean, linear interpolation at the instants
j * rate / target (numpy.interp), windows of `window` samples (the last zero-padded); then the
model per window with `context` samples of the signal before it prepended (zeros before the
first), `rate_input` given the rate, `state_input` zeros and then the previous window's
`state_output` (what silero-vad's own OnnxWrapper does).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import sys
import wave
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "models"))

import fetch  # noqa: E402  models/fetch.py: pinned wheels from PyPI, cached

RECORDING = {
    "package": "useful-moonshine-onnx==20251121",
    "wheel": "useful_moonshine_onnx-20251121-py3-none-any.whl",
    "wheel_sha256": "b4189b0d7dc8064d567fd0b5d5ce78634be290b0a3a3274ab80ad11c46d531a2",
    "member": "moonshine_onnx/assets/beckett.wav",
    "sha256": "e5a26b3d29e5b0bc8dbd72c11d16a3808a4ec0ac45b21f12a27d2a2fe5c5ae61",
}


def recording() -> tuple[np.ndarray, int]:
    with zipfile.ZipFile(fetch.wheel(RECORDING)) as z:
        data = z.read(RECORDING["member"])
    got = hashlib.sha256(data).hexdigest()
    if got != RECORDING["sha256"]:
        raise SystemExit(f"beckett.wav: sha256 {got}, pinned {RECORDING['sha256']}")
    with wave.open(io.BytesIO(data)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        return x, w.getframerate()


def write_wav(path: Path, channels: list[np.ndarray], rate: int) -> None:
    frames = np.stack(channels, axis=-1).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(len(channels))
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames.tobytes())


def read_wav(path: Path) -> tuple[list[np.ndarray], int]:
    with wave.open(str(path)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels())
        return [x[:, c].astype(np.float32) / 32768 for c in range(x.shape[1])], w.getframerate()


def windows(channels: list[np.ndarray], rate: int, spec: dict) -> list[np.ndarray]:
    """media.js audioWindows."""
    mono = np.mean(np.stack([c.astype(np.float64) for c in channels]), axis=0)
    target = spec["sample_rate"]
    m = max(1, (len(mono) * target) // rate)
    x = np.interp(np.arange(m) * rate / target, np.arange(len(mono)), mono).astype(np.float32)
    win = spec.get("window")
    if win is None:
        return [x]
    out = []
    for s in range(0, len(x), win):
        w = np.zeros(win, np.float32)
        part = x[s:s + win]
        w[:len(part)] = part
        out.append(w)
    return out


def run_windows(path: Path, spec: dict, wins: list[np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    decl = {i.name: i for i in s.get_inputs()}
    kinds = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32}
    fixed = {}
    if spec.get("rate_input"):
        fixed[spec["rate_input"]] = np.array(spec["sample_rate"], kinds[decl[spec["rate_input"]].type])
    state = None
    if spec.get("state_input"):
        d = decl[spec["state_input"]]
        state = np.zeros([n if isinstance(n, int) else 1 for n in d.shape], kinds[d.type])
    names = [o.name for o in s.get_outputs()]
    per = []
    main = spec.get("input") or s.get_inputs()[0].name
    context = spec.get("context", 0)
    before = np.zeros(context, np.float32)
    for w in wins:
        if context:
            w = np.concatenate([before, w])
            before = w[len(w) - context:]
        feeds = {main: w[None], **fixed}
        if state is not None:
            feeds[spec["state_input"]] = state
        outs = dict(zip(names, s.run(None, feeds)))
        if state is not None:
            state = outs.pop(spec["state_output"])
        per.append(outs)
    return {k: np.concatenate([o[k] for o in per], axis=0) for k in per[0]}


def postprocess(outputs: dict[str, np.ndarray], spec: dict | None):
    if not spec:
        return None
    if spec["kind"] == "scores":
        t = outputs[spec.get("output") or next(iter(outputs))]
        return {"kind": "scores", "scores": [float(v) for v in t.ravel()], "threshold": spec.get("threshold", 0.5)}
    raise SystemExit(f"audio_oracle.py: postprocess {spec['kind']} not implemented")


def main() -> None:
    name, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    entry = next(m for m in json.loads((ROOT / "models" / "manifest.json").read_text())["models"] if m["name"] == name)
    speech, rate = recording()
    pad = np.zeros(rate, np.int16)
    x = np.concatenate([pad, speech, pad])
    write_wav(out / "speech-16k.wav", [x], rate)
    n44 = len(x) * 44100 // rate
    up = np.interp(np.arange(n44) * rate / 44100, np.arange(len(x)), x.astype(np.float64))
    write_wav(out / "speech-44k-stereo.wav", [np.rint(up), np.rint(0.6 * up)], 44100)
    ref = {"model": name, "files": []}
    for f in ("speech-44k-stereo.wav", "speech-16k.wav"):
        channels, r = read_wav(out / f)
        wins = windows(channels, r, entry["preprocess"])
        outputs = run_windows(ROOT / "models" / entry["file"], entry["preprocess"], wins)
        ref["files"].append({
            "file": f, "windows": len(wins),
            "outputs": {k: {"shape": list(v.shape), "data": base64.b64encode(np.ascontiguousarray(v, "<f4").tobytes()).decode()} for k, v in outputs.items()},
            "result": postprocess(outputs, entry.get("postprocess")),
        })
    (out / "reference.json").write_text(json.dumps(ref))


if __name__ == "__main__":
    main()
