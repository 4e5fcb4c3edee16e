"""Test app for the end-to-end test: one scenario per ?case= query parameter."""

import streamlit as st

from streamlit_secure_context import streamlit_secure_context

SAMPLE = [0.5] * 64
case = st.query_params.get("case", "bad_config")
st.title(f"secure-context check: {case}")

if case == "bad_config":
    # Raises SecurityConfigError: Streamlit shows the exception and its message.
    streamlit_secure_context("digits", security_config={"csp": {"script-src": ["'self'", "'unsafe-eval'"]}},
                             inference_params={"input": SAMPLE}, key="bad")
elif case == "csp_mismatch":
    # Valid, but stricter than what is served (the engine needs 'wasm-unsafe-eval'): refused.
    streamlit_secure_context("digits", security_config={"csp": {"script-src": ["'self'"]}},
                             inference_params={"input": SAMPLE}, key="csp")
elif case == "require":
    # coop/coep + requireHTTPS: fails closed in the browser when the environment falls short.
    r = streamlit_secure_context("digits", security_config={"coop": "same-origin", "coep": "require-corp", "requireHTTPS": True},
                                 inference_params={"input": SAMPLE}, key="req")
    st.write("result:", None if r is None else r["prediction"])
elif case == "silent":
    # Client-only with return_result=False: the user's result stays in the frame; Python gets None.
    r = streamlit_secure_context("digits", inference_params=None, return_result=False, key="silent")
    st.write("silent result:", "None" if r is None else "a value")
