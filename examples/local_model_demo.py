"""Your own model file in a Streamlit app, no manifest edit, no JavaScript:

    SECURE_CONTEXT_BIN=target/release/secure-context MODEL_FILE=my_classifier.onnx \
        streamlit run examples/local_model_demo.py

The package serves the runtime itself (no base_url), so it takes a local file as model_path: the
engine checks it as `secure-context models add` does (refusing a model it cannot load, with its
error), the file is hashed and pinned when first used, served from the package's own origin and
verified by the sandbox like every model. `model_options` is the manifest entry's declared
processing: here PP-OCR's text-direction classifier (models/fetch.py puts it in models/; Apache-2.0,
from the rapidocr-onnxruntime wheel), BGR stretched to 48x192, (x/255 - 0.5)/0.5, two classes.
The user picks a picture of a line of text inside the sandbox frame; only the classes come back.
"""

import os

import streamlit as st

from streamlit_secure_context import streamlit_secure_context

MODEL = os.environ.get("MODEL_FILE", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx")

st.set_page_config(page_title="Your own model, privately", page_icon="🔒")
st.title("Is this line of text upside down?")
st.caption("Pick a picture of one line of text in the frame below and press Send: the picture stays in the frame.")

result = streamlit_secure_context(
    MODEL, input="image", key="line", timeout_ms=120000,
    model_options={
        "name": "my-text-direction", "labels": ["0", "180"], "license": "Apache-2.0",
        "preprocess": {"kind": "image", "size": [48, 192], "channels": "bgr", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        "postprocess": {"kind": "classes", "top_k": 2},
    })
if result is None:
    st.info("Waiting for a picture…")
else:
    top = result["result"]["classes"][0][0]
    st.write(f"Text direction: **{top['label']}** degrees, score {top['score']:.4f}, "
             f"model sha256 {result['model']['sha256'][:12]}…")
