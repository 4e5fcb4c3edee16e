"""Find speech in a recording or on the microphone without a sample leaving the browser:
`streamlit run examples/audio_demo.py` (a file), or open the page with `?source=microphone`.

Silero VAD runs inside the sandbox frame: the recording is decoded there (or the microphone is
opened there, when the user presses Start: the frame's allow="microphone", and the runtime's
Permissions-Policy lets its sandbox document alone use it), made into 16 kHz windows of 512
samples as the model's manifest entry declares, and run window by window with the model's state
carried between them. Python gets one speech probability per window: for a file when the user
presses Send, for the microphone at most twice a second.
"""

import streamlit as st

from streamlit_secure_context import streamlit_secure_context

st.set_page_config(page_title="Speech, privately", page_icon="🔒")
st.title("Find speech in your audio, in your browser")
microphone = st.query_params.get("source") == "microphone"
if microphone:
    st.caption("Press Start in the frame below. The sound stays in the frame; this app gets speech probabilities twice a second.")
    result = streamlit_secure_context("silero-vad", input="microphone", rate=2, key="microphone")
else:
    st.caption("Pick a recording in the frame below, then Send. The recording stays in the frame; this app gets speech probabilities.")
    result = streamlit_secure_context("silero-vad", input="audio", key="audio")

if result is None:
    st.info("Waiting for audio…")
else:
    r = result["result"]
    scores = r["scores"]
    speech = sum(s >= r["threshold"] for s in scores)
    if microphone:
        st.write(f"Speech heard: **{speech}** of the last {len(scores)} windows ({len(scores) * r['step']:.2f} s)")
    else:
        st.write(f"Speech in **{speech}** of {len(scores)} windows ({speech * r['step']:.2f} s of {len(scores) * r['step']:.2f} s)")
    st.caption("Last windows: " + " ".join(f"{s:.2f}" for s in scores[-16:]))
