"""End to end, audio input: `streamlit run examples/audio_demo.py` (``streamlit_secure_context(
"silero-vad", input="audio")``, or with ``?source=microphone`` ``input="microphone", rate=2``)
driven by headless Chromium (tests/streamlit/drive.mjs, scenarios `audio` and `microphone`), the
runtime served by the package's own local server.

File: the user picks a recording of speech (tests/browser/audio_oracle.py's 44.1 kHz stereo WAV of
the pinned beckett.wav) inside the framed sandbox document; it is decoded, windowed and run there
with Silero VAD. Only the per-window outputs and scores go to Python, on Send. The test then
searches the Streamlit page's DOM, every message it received, every request of the browser and
every websocket frame for the file's name, stretches of its bytes and of its decoded samples (as
float32, what the sandbox holds): nothing may be found, while the same search finds the count of
speech windows Python printed, equal to numpy + onnxruntime's on the same file.

Microphone: Chromium's fake microphone plays the same speech; Python gets scores at the app's
rate, the frame alone has allow="microphone", and nothing but input-results leaves the frame.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
import wave

import numpy as np
import pytest

from test_e2e import ARTIFACTS, ROOT, Procs, drive, wait_http

pytestmark = pytest.mark.skipif(
    not (ROOT / "build" / "web" / "models" / "silero_vad.onnx").exists(), reason="needs scripts/build-web")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    procs = Procs(tmp_path_factory.mktemp("audio-e2e"))
    try:
        url = procs.streamlit("examples/audio_demo.py")
        wait_http(url + "/_stcore/health")
        yield url
    finally:
        procs.close()


@pytest.fixture(scope="module")
def private_recording(tmp_path_factory):
    d = tmp_path_factory.mktemp("recording")
    subprocess.run([sys.executable, str(ROOT / "tests" / "browser" / "audio_oracle.py"), "silero-vad", str(d / "ref")], check=True)
    ref = json.loads((d / "ref" / "reference.json").read_text())
    want = next(f for f in ref["files"] if f["file"] == "speech-44k-stereo.wav")
    name = f"private-recording-{uuid.uuid4().hex[:12]}.wav"
    shutil.copyfile(d / "ref" / want["file"], d / name)
    raw = (d / name).read_bytes()
    with wave.open(str(d / name)) as w:
        left = (np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)[:, 0].astype(np.float32) / 32768)
    # Stretches of the file and of its decoded samples inside the speech (24 bytes each; the
    # silence before and after is 1 s = 44100 stereo frames), where every sample differs.
    frames = len(left)
    lively = lambda a: len(set(a.tolist())) == len(a) and a.all()  # noqa: E731
    hexes = [raw[44 + 4 * o:44 + 4 * o + 24].hex() for o in range(50000, frames - 50000, (frames - 100000) // 12)
             if lively(np.frombuffer(raw[44 + 4 * o:44 + 4 * o + 24], "<i2"))]
    hexes += [left[o:o + 6].astype("<f4").tobytes().hex() for o in range(50000, frames - 50000, (frames - 100000) // 8)
              if lively(left[o:o + 6])]
    assert len(set(hexes)) == len(hexes) >= 10, len(hexes)
    scores = want["result"]["scores"]
    speech = sum(s >= 0.5 for s in scores)
    # What Python prints after the bold count (the page renders the bold, the websocket carries **):
    # the speech's length depends on the result.
    step = 512 / 16000
    control = f" of {len(scores)} windows ({speech * step:.2f} s of {len(scores) * step:.2f} s)"
    spec = d / "private.json"
    spec.write_text(json.dumps({"file": str(d / name), "strings": [name], "hex": hexes, "controls": [control]}))
    return {"spec": spec, "speech": speech, "windows": len(scores), "control": control, "markers": 1 + len(hexes),
            "mic_wav": d / "ref" / "speech-16k.wav"}


def test_recording_picked_in_the_frame_never_reaches_the_page_nor_any_request(app, private_recording):
    ARTIFACTS.mkdir(exist_ok=True)
    out = drive("audio", app + "/", ARTIFACTS / "streamlit-audio.png",
                extra_env={"DRIVE_PRIVATE": str(private_recording["spec"]), "DRIVE_TIMEOUT_MS": "120000"})
    # Python got the speech windows the sandbox found, the same as numpy + onnxruntime's.
    assert out["pythonSaw"].startswith(f"Speech in {private_recording['speech']} of {private_recording['windows']} windows"), out["pythonSaw"]
    assert out["inputUiInPage"] == 0
    runtime = out["inputFrameSrc"].split("/sandbox.html")[0]
    assert runtime != app and out["chooserInFrame"] == runtime, out["chooserInFrame"]
    priv = out["privacy"]
    assert priv["pageCanReadFrame"] is False
    assert set(priv["sandboxMessageTypes"]) <= {"hello", "pong", "progress", "ready", "result", "input-result"}, priv
    assert priv["inputResults"] == [{
        "keys": ["id", "outputs", "result", "seq", "type", "v"],
        "outputs": {"output": {"keys": ["data", "shape"], "typed": "Float32Array", "length": private_recording["windows"],
                               "shape": [private_recording["windows"], 1]}},
        "result": {"keys": ["kind", "scores", "step", "threshold"], "kind": "scores"},
    }], priv["inputResults"]
    assert priv["requestsAfterInput"] == [], priv["requestsAfterInput"]
    assert priv["searched"]["markers"] == private_recording["markers"] and priv["searched"]["websocketFrames"] > 0
    assert priv["leaks"] == [], priv["leaks"]
    where = priv["controls"][private_recording["control"]]
    assert "websocket frames" in where and "page DOM" in where, where
    assert not out["pageErrors"], out["pageErrors"]


def test_microphone_samples_stay_in_the_frame_and_python_gets_scores_at_the_apps_rate(app, private_recording):
    spec = private_recording["spec"].parent / "microphone.json"
    raw = private_recording["mic_wav"].read_bytes()
    spec.write_text(json.dumps({"strings": [], "hex": [raw[o:o + 24].hex() for o in range(60000, len(raw) - 24, len(raw) // 12)],
                                "controls": []}))
    out = drive("microphone", app + "/?source=microphone", ARTIFACTS / "streamlit-microphone.png", extra_env={
        "DRIVE_PRIVATE": str(spec), "DRIVE_TIMEOUT_MS": "120000",
        "CHROMIUM_EXTRA_ARGS": json.dumps(["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                                           f"--use-file-for-fake-audio-capture={private_recording['mic_wav']}"])})
    assert out["frameAllow"] == "cross-origin-isolated; microphone"
    assert out["pythonSaw"].startswith("Speech heard: "), out["pythonSaw"]
    assert out["windows"] > out["sent"] >= 2, (out["windows"], out["sent"])
    priv = out["privacy"]
    assert priv["pageCanReadFrame"] is False
    assert set(priv["sandboxMessageTypes"]) <= {"hello", "pong", "progress", "ready", "result", "input-result"}, priv
    assert len(priv["inputResults"]) == out["sent"]
    for r in priv["inputResults"]:
        assert r["keys"] == ["id", "outputs", "result", "seq", "type", "v"] and r["result"]["kind"] == "scores", r
    assert priv["requestsAfterInput"] == [], priv["requestsAfterInput"]
    assert priv["leaks"] == [], priv["leaks"]
    assert not out["pageErrors"], out["pageErrors"]
