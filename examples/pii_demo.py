"""Find personal data in a note without the note ever reaching Python: `streamlit run examples/pii_demo.py`.

The user types or pastes the note inside the sandbox frame (a document of the runtime's origin,
which this Streamlit page cannot read). The model's own tokenizer and the PII model run there; the
frame shows the note redacted. Only the model's output (logits: one row of label scores per token
of each window) comes back to Python: never the text, nor where its tokens are.
"""

import streamlit as st

from streamlit_secure_context import streamlit_secure_context

st.set_page_config(page_title="Redact a note privately", page_icon="🔒")
st.title("Redact a note in your browser")
st.caption("Paste a note (synthetic data only in demos) in the frame below and press the button: personal "
           "data is found and blacked out inside the frame. This app only learns how many tokens were flagged.")

result = streamlit_secure_context(model_path="pii", key="note", timeout_ms=120000)
if result is None:
    st.info("Waiting for a note…")
else:
    logits = result["outputs"]["logits"]
    windows, tokens, labels = logits["shape"]
    data = logits["data"]
    flagged = sum(
        1 for t in range(windows * tokens)
        if max(range(labels), key=lambda k: data[t * labels + k]) != 0
    )
    st.write(f"Tokens flagged as personal data: **{flagged}** of {windows * tokens} "
             f"({windows} window{'s' if windows > 1 else ''}), "
             f"isolation: {result['isolation']['mode']}, model sha256 {result['model']['sha256'][:12]}…")
