"""The example behind the st.App cross-origin-isolation helper:
`streamlit run tests/streamlit/isolated_app.py` (streamlit finds the literal st.App call)."""

import streamlit as st

from streamlit_secure_context.isolation import isolation_middleware

app = st.App("../../examples/basic_demo.py", middleware=[isolation_middleware()])
