"""Segment the camera without a frame ever leaving the browser: `streamlit run examples/camera_demo.py`.

The camera is opened inside the sandbox frame only (the frame's allow="camera", and the runtime's
Permissions-Policy lets its sandbox document alone use it), when the user presses Start there.
Each frame is made into the model's input as its manifest entry declares and segmented there; the
mask is drawn over the video in the frame. Python gets the mask at most twice a second.
"""

import streamlit as st

from streamlit_secure_context import streamlit_secure_context

st.set_page_config(page_title="Camera, privately", page_icon="🔒")
st.title("Find the person on your camera, in your browser")
st.caption("Press Start in the frame below. The video stays in the frame; this app gets the mask twice a second.")

result = streamlit_secure_context("selfie", input="camera", rate=2, key="camera")
if result is None:
    st.info("Waiting for the camera…")
else:
    r = result["result"]
    share = sum(r["mask"]) / len(r["mask"])
    st.write(f"Camera person mask: **{share:.4f}** of the {r['width']}x{r['height']} mask")
