"""Make the Streamlit app itself cross-origin isolated (streamlit >= 1.57, ``st.App``).

    # app.py  ->  streamlit run app.py
    import streamlit as st
    from streamlit_secure_context.isolation import isolation_middleware
    app = st.App("main.py", middleware=[isolation_middleware()])

(``streamlit run`` finds the app by the literal ``st.App(...)`` call, so write it out; the
``isolated_app()`` shortcut is for running under uvicorn directly.)

Every Streamlit response gets ``Cross-Origin-Opener-Policy: same-origin`` and
``Cross-Origin-Embedder-Policy: require-corp`` (or ``credentialless``) and
``Cross-Origin-Resource-Policy: same-origin``. The page is then ``crossOriginIsolated``, and so
is our engine iframe (it has ``allow="cross-origin-isolated"`` and sandbox.html sends COEP) in
every browser, not only in Chromium >= 137 where Document-Isolation-Policy does it without
the page's help.

Trade-offs: COEP applies to everything the page loads. Cross-origin images, fonts, scripts,
v1 components and ``st.iframe``/``st.components.v1.iframe`` content that do not send CORP (or
CORS) stop loading; map tiles, avatars and CDN assets are the usual casualties.
``credentialless`` relaxes that for no-cors subresources (not for iframes) but Safari does not
support it. COOP same-origin cuts ``window.opener`` links with popups (OAuth popups).
The engine iframe must admit an isolated embedder: sandbox.html needs
``Cross-Origin-Resource-Policy: cross-origin`` when the Streamlit page is on
another origin (Chromium blocks it with corp-not-same-site otherwise, even between two ports
of 127.0.0.1; frame-ancestors still decides who may frame it). The edge's policy does that
whenever frame ancestors are configured, and the package's local server, which applies the
same policy, always has them (Streamlit's configured origins).
"""

from __future__ import annotations

from typing import Any, Iterable

COEP_VALUES = ("require-corp", "credentialless")


class CrossOriginIsolationMiddleware:
    """Pure ASGI middleware adding COOP/COEP/CORP (and optional extra headers) to HTTP responses."""

    def __init__(self, app: Any, coep: str = "require-corp", extra_headers: Iterable[tuple[str, str]] = ()) -> None:
        if coep not in COEP_VALUES:
            raise ValueError(f"coep must be one of {', '.join(COEP_VALUES)}, got {coep!r}")
        self.app = app
        self.headers = [
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-embedder-policy", coep.encode()),
            (b"cross-origin-resource-policy", b"same-origin"),
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra_headers),
        ]
        self.names = {k for k, _ in self.headers}

    async def __call__(self, scope, receive, send):  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):  # noqa: ANN001
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in self.names]
                message = {**message, "headers": headers + self.headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def isolation_middleware(coep: str = "require-corp", extra_headers: Iterable[tuple[str, str]] = ()):
    """A ``starlette.middleware.Middleware`` for ``st.App(..., middleware=[...])``."""
    from starlette.middleware import Middleware

    return Middleware(CrossOriginIsolationMiddleware, coep=coep, extra_headers=tuple(extra_headers))


def isolated_app(script_path: str, *, coep: str = "require-corp", middleware: Iterable[Any] = (), **kwargs: Any):
    """``st.App(script_path, middleware=[isolation, *middleware], **kwargs)``."""
    import streamlit as st

    if not hasattr(st, "App"):
        raise RuntimeError("isolated_app needs streamlit >= 1.57 (st.App)")
    return st.App(script_path, middleware=[isolation_middleware(coep), *middleware], **kwargs)

