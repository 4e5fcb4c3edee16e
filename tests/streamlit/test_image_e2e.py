"""End to end, image input: `streamlit run examples/image_demo.py` (``streamlit_secure_context("selfie",
input="image")``) driven by headless Chromium (tests/streamlit/drive.mjs, scenario `image`), the
runtime served by the package's own local server. The user picks a photograph (a portrait: Grace
Hopper, from the pinned matplotlib wheel, as tests/browser/image_oracle.py writes it) inside the
framed sandbox document; it is decoded, preprocessed as the manifest declares, segmented and
thresholded there. Only the outputs and the mask go to Python, on Send. The test then searches the
Streamlit page's DOM, every message it received, every request of the browser and every websocket
frame for the file's name, stretches of its bytes and of its decoded pixels: nothing may be found,
while the same search finds the mask's share of foreground that Python printed, equal to the one
Pillow + LiteRT give for the same photograph (tests/browser/image_oracle.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid

import numpy as np
import pytest
from PIL import Image

from test_e2e import ARTIFACTS, ROOT, Procs, drive, wait_http

pytestmark = pytest.mark.skipif(
    not (ROOT / "build" / "web" / "models" / "selfie_segmentation.tflite").exists(), reason="needs scripts/build-web")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    procs = Procs(tmp_path_factory.mktemp("image-e2e"))
    try:
        url = procs.streamlit("examples/image_demo.py")
        wait_http(url + "/_stcore/health")
        yield url
    finally:
        procs.close()


@pytest.fixture(scope="module")
def private_photo(tmp_path_factory):
    d = tmp_path_factory.mktemp("photo")
    subprocess.run([sys.executable, str(ROOT / "tests" / "browser" / "image_oracle.py"), "selfie", str(d / "ref")], check=True)
    ref = json.loads((d / "ref" / "reference.json").read_text())
    img = next(i for i in ref["images"] if i["file"] == "grace_hopper.png")
    name = f"private-photo-{uuid.uuid4().hex[:12]}.png"
    shutil.copyfile(d / "ref" / img["file"], d / name)
    raw = (d / name).read_bytes()
    pixels = np.asarray(Image.open(d / name).convert("RGB"))
    # Stretches of the file and of its decoded pixels (rows with detail, 24 bytes each).
    hexes = [raw[o:o + 24].hex() for o in range(2000, len(raw) - 24, len(raw) // 12)]
    hexes += [pixels[y, 100:108].tobytes().hex() for y in range(150, pixels.shape[0], 100)]
    assert len(set(hexes)) == len(hexes)
    mask = img["result"]["mask"]
    share = f"{sum(mask) / len(mask):.4f}"
    spec = d / "private.json"
    spec.write_text(json.dumps({"file": str(d / name), "strings": [name], "hex": hexes, "controls": [share]}))
    return {"spec": spec, "share": share, "markers": 1 + len(hexes)}


def test_image_picked_in_the_frame_never_reaches_the_page_nor_any_request(app, private_photo):
    ARTIFACTS.mkdir(exist_ok=True)
    out = drive("image", app + "/", ARTIFACTS / "streamlit-image.png",
                extra_env={"DRIVE_PRIVATE": str(private_photo["spec"]), "DRIVE_TIMEOUT_MS": "120000"})
    # Python got the mask the sandbox computed, the same as Pillow + LiteRT's.
    assert out["pythonSaw"].startswith(f"Person mask: {private_photo['share']} of the 256x256 mask"), out["pythonSaw"]
    assert out["frameResult"].startswith("mask 256×256: "), out["frameResult"]
    assert out["inputUiInPage"] == 0
    runtime = out["inputFrameSrc"].split("/sandbox.html")[0]
    assert runtime != app and out["inputFrameSrc"].startswith(runtime + "/sandbox.html?")
    assert out["chooserInFrame"] == runtime, out["chooserInFrame"]
    priv = out["privacy"]
    assert priv["pageCanReadFrame"] is False
    assert priv["pointerEventsInPageWhileInputting"] == 0, priv
    assert set(priv["sandboxMessageTypes"]) <= {"hello", "pong", "progress", "ready", "result", "input-result"}, priv
    assert priv["inputResults"] == [{
        "keys": ["id", "outputs", "result", "seq", "type", "v"],
        "outputs": {"activation_10": {"keys": ["data", "shape"], "typed": "Float32Array", "length": 65536, "shape": [1, 256, 256, 1]}},
        "result": {"keys": ["height", "kind", "mask", "width"], "kind": "mask", "typed": "Uint8Array"},
    }], priv["inputResults"]
    assert priv["requestsAfterInput"] == [], priv["requestsAfterInput"]
    assert priv["searched"]["markers"] == private_photo["markers"] and priv["searched"]["websocketFrames"] > 0
    assert priv["leaks"] == [], priv["leaks"]
    # The same search finds what is meant to reach Python: the share it printed.
    where = priv["controls"][private_photo["share"]]
    assert "websocket frames" in where and "page DOM" in where, where
    assert not out["pageErrors"], out["pageErrors"]


@pytest.fixture(scope="module")
def camera_app(tmp_path_factory):
    procs = Procs(tmp_path_factory.mktemp("camera-e2e"))
    try:
        url = procs.streamlit("examples/camera_demo.py")
        wait_http(url + "/_stcore/health")
        yield url
    finally:
        procs.close()


def test_camera_frames_stay_in_the_frame_and_python_gets_masks_at_the_apps_rate(camera_app, private_photo):
    """examples/camera_demo.py (input="camera", rate=2) with Chromium's fake camera playing the
    photograph (its Y4M from image_oracle.py): Python gets masks, the page never a frame."""
    d = private_photo["spec"].parent
    y4m = d / "ref" / "grace_hopper.y4m"
    raw = y4m.read_bytes()
    # Stretches of the frame's luma plane (after the 2 header lines), searched for like the photo's bytes.
    body = raw.index(b"FRAME\n") + 6
    spec = d / "camera.json"
    spec.write_text(json.dumps({"strings": [], "hex": [raw[body + o:body + o + 24].hex() for o in range(40000, 300000, 26000)],
                                "controls": []}))
    out = drive("camera", camera_app + "/", ARTIFACTS / "streamlit-camera.png", extra_env={
        "DRIVE_PRIVATE": str(spec), "DRIVE_TIMEOUT_MS": "120000",
        "CHROMIUM_EXTRA_ARGS": json.dumps(["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                                           f"--use-file-for-fake-video-capture={y4m}"])})
    assert out["frameAllow"] == "cross-origin-isolated; camera"
    share = float(out["pythonSaw"].split()[3])  # "Camera person mask: 0.5788 of the 256x256 mask"
    assert abs(share - float(private_photo["share"])) < 0.05, (share, private_photo["share"])
    assert out["frames"] > out["sent"] >= 2, (out["frames"], out["sent"])
    priv = out["privacy"]
    assert priv["pageCanReadFrame"] is False
    assert set(priv["sandboxMessageTypes"]) <= {"hello", "pong", "progress", "ready", "result", "input-result"}, priv
    assert len(priv["inputResults"]) == out["sent"]
    for r in priv["inputResults"]:
        assert r["keys"] == ["id", "outputs", "result", "seq", "type", "v"] and r["result"]["kind"] == "mask", r
    assert priv["leaks"] == [], priv["leaks"]
    assert not out["pageErrors"], out["pageErrors"]
