// Camera input mode (init.input.kind "camera"): live frames of the user's camera, in the sandbox
// document only. The camera is reachable here only when both say so: the sandbox document's
// Permissions-Policy (camera=(self), on sandbox.html alone; every other document of the origin
// has camera=()) and the embedder's iframe `allow="camera"` (the app's choice). The user starts
// it with a button in this frame. Each frame is made into the model's input tensor exactly as
// the manifest's image `preprocess` says (sandbox-image.js / media.js), run, post-processed and
// drawn here; the embedding page gets only outputs and the post-processed result, at most `rate`
// times a second (with report: true), never a frame.

import { describeResult, drawResult, framePixels } from "./sandbox-image.js";
import { el, deviceError } from "./sandbox-ui.js";

/** @typedef {import("./sandbox-image.js").Outputs} Outputs */

/**
 * Shows the camera UI and runs each frame through the pipeline.
 * @param {{ pipeline: import("./sandbox-image.js").Pipeline,
 *           send: ((outputs: Outputs, result: any) => void) | null, rate: number }} o
 *   send: posts outputs and result to the app; null when nothing may be sent (report: false).
 *   rate: results posted at most this many times a second.
 */
export function mountCameraInput({ pipeline, send, rate }) {
  const out = el("output", { className: "in-out", dataset: { role: "result" } });
  const view = el("canvas", { className: "in-view", width: 1, height: 1, dataset: { role: "view" } });
  const video = el("video", { muted: true, playsInline: true, hidden: true });
  const start = el("button", { type: "button", className: "in-btn in-primary", dataset: { role: "camera-start" } }, "Start the camera");
  const stop = el("button", { type: "button", className: "in-btn", dataset: { role: "camera-stop" }, disabled: true }, "Stop");
  const note = el("p", { className: "in-note" },
    send
      ? `Camera frames stay in this sandbox; only the model's output goes to the app, at most ${rate} time${rate === 1 ? "" : "s"} a second.`
      : "Camera frames stay in this sandbox; nothing is sent to the app.");
  const box = el("section", { className: "in-box", dataset: { role: "input", frames: "0", sent: "0" } }, note,
    el("div", { className: "in-row" }, start, stop), el("div", { className: "in-row" }, view), out, video);
  document.body.append(box);
  document.documentElement.dataset.ui = "input";

  /** @type {MediaStream | null} */ let stream = null;
  let running = false;
  let lastSent = -Infinity;
  const halt = () => {
    running = false;
    for (const t of stream?.getTracks() ?? []) t.stop();
    stream = null;
    video.srcObject = null;
    start.disabled = false;
    stop.disabled = true;
  };
  stop.addEventListener("click", () => { halt(); box.dataset.state = "stopped"; });
  start.addEventListener("click", async () => {
    if (running) return;
    start.disabled = true;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
      video.srcObject = stream;
      await video.play();
    } catch (e) {
      halt();
      out.value = deviceError("camera", e);
      box.dataset.state = "error";
      return;
    }
    running = true;
    stop.disabled = false;
    box.dataset.state = "running";
    loop();
  });

  async function loop() {
    while (running) {
      const w = video.videoWidth, h = video.videoHeight;
      if (!w || !h) {
        await new Promise((r) => setTimeout(r, 30));
        continue;
      }
      try {
        const pixels = framePixels(video, w, h);
        const r = await pipeline(pixels);
        if (!running) break;
        drawResult(view, video, w, h, r.result, r.placement, r.boxes);
        out.value = describeResult(r.result, r.outputs);
        box.dataset.frames = String(Number(box.dataset.frames) + 1);
        const now = performance.now();
        if (send && now - lastSent >= 1000 / rate) {
          lastSent = now;
          send(r.outputs, r.result);
          box.dataset.sent = String(Number(box.dataset.sent) + 1);
        }
      } catch (e) {
        out.value = `cannot run on the camera: ${e?.message ?? e}`;
        box.dataset.state = "error";
        halt();
        return;
      }
      // Let the page paint (and the user press Stop) between frames.
      await new Promise((r) => setTimeout(r, 0));
    }
  }
  return box;
}
