"""The seed's demo, on the real runtime: `streamlit run examples/basic_demo.py`.

The engine is served by the package itself (a local server on 127.0.0.1) unless
SECURE_CONTEXT_URL names the edge app (e.g. https://ml.example.com/).
"""

import json

import streamlit as st

from streamlit_secure_context import streamlit_secure_context

# One 8x8 image from the digits test set (models/digits-test/x.npy[0], a "2"): ink counts 0..16.
SAMPLE_PIXELS = [
    0, 0, 7, 16, 14, 3, 0, 0, 0, 0, 9, 14, 11, 15, 0, 0, 0, 0, 1, 5, 0, 15, 5, 0, 0, 0, 0, 0, 0, 16, 5, 0,
    0, 0, 0, 0, 3, 16, 4, 0, 0, 0, 0, 1, 12, 14, 1, 0, 0, 0, 5, 12, 16, 16, 14, 1, 0, 0, 8, 16, 14, 10, 13, 3,
]
SAMPLE_DIGIT = [p / 16 for p in SAMPLE_PIXELS]

SECURITY_CONFIG = {
    "coop": "same-origin",
    "coep": "require-corp",
    "csp": {
        "default-src": ["'self'"],
        "script-src": ["'self'", "'wasm-unsafe-eval'"],
        "worker-src": ["'self'", "blob:"],
    },
    "sandbox": ["allow-scripts", "allow-same-origin"],
    "requireHTTPS": True,
}

st.set_page_config(page_title="streamlit-secure-context demo", page_icon="🔒")
st.title("Secure ML inference in the browser")
st.caption(
    "The model runs in your browser, in a sandboxed, cross-origin-isolated iframe; it is verified "
    "(SRI + SHA-256) before it runs."
)

st.subheader("1. Inference on data from Python")
result = streamlit_secure_context(
    model_path="digits",
    security_config=SECURITY_CONFIG,
    inference_params={"input": SAMPLE_DIGIT},
    key="example1",
)
if result is None:
    st.info("Waiting for the browser…")
else:
    pred = result.get("prediction") or {}
    st.write(f"Inference result: **{pred.get('label')}** ({pred.get('score', 0):.1%}), "
             f"isolation: {result['isolation']['mode']}, model sha256 {result['model']['sha256'][:12]}…")
    probs = result["outputs"]["probabilities"]["data"]
    # repr of each float: exactly the float32 values the engine computed.
    st.code(json.dumps({"probabilities": probs}), language="json")

st.subheader("2. Client-only input: draw a digit")
st.caption("You draw (or pick a file) inside the sandbox frame, served by the engine's origin: this page never "
           "sees the input, and only the probabilities come back to Python.")
drawn = streamlit_secure_context(
    model_path="digits",
    security_config=SECURITY_CONFIG,
    inference_params=None,
    key="drawn",
)
if drawn is not None:
    st.write(f"You drew a **{drawn['prediction']['label']}** ({drawn['prediction']['score']:.1%}).")
    st.code(json.dumps({"result_of_your_input": drawn["outputs"]["probabilities"]["data"]}), language="json")
