"""Segment a photo without the photo ever reaching Python: `streamlit run examples/image_demo.py`.

The user picks an image inside the sandbox frame (a document of the runtime's origin, which this
Streamlit page cannot read). The frame decodes it, makes the model's input exactly as the model's
manifest entry declares (`preprocess`: 256x256, RGB in [0, 1], NHWC), runs MediaPipe's selfie
segmentation there and draws the person mask over the picture (`postprocess`: mask). Only the
model's output and the mask come back to Python, when the user presses Send: never the image.
"""

import streamlit as st

from streamlit_secure_context import streamlit_secure_context

st.set_page_config(page_title="Segment a photo privately", page_icon="🔒")
st.title("Find the person in a photo, in your browser")
st.caption("Pick a photo in the frame below and press Send: the photo stays in the frame; this app only gets the mask.")

result = streamlit_secure_context("selfie", input="image", key="photo", timeout_ms=120000)
if result is None:
    st.info("Waiting for a photo…")
else:
    r = result["result"]
    share = sum(r["mask"]) / len(r["mask"])
    st.write(f"Person mask: **{share:.4f}** of the {r['width']}x{r['height']} mask, "
             f"isolation: {result['isolation']['mode']}, model sha256 {result['model']['sha256'][:12]}…")
