"""The no-Spin default: serve the browser runtime (build/web) from this process.

A small stdlib HTTP server on 127.0.0.1 in a daemon thread, with the header policy of the
reference server (tests/browser/serve.mjs) and of the edge app: COOP same-origin,
COEP require-corp, CORP same-origin, nosniff, no-referrer, the runtime's strict CSP with
Trusted Types, and on sandbox.html Document-Isolation-Policy plus a frame-ancestors that
lists the Streamlit origins registered by the component (nothing else may frame it).

Every file is checked against build/web's asset-manifest.json (sha256, size) when the server
starts; a directory that does not match is refused.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import posixpath
import re
import threading
import urllib.parse
from pathlib import Path
from typing import Iterable

# The runtime's CSP: static/csp-directives.txt, the one list every server reads. Installed, it
# comes with the runtime in web/; in a source checkout, from static/.
def _read_csp_directives() -> tuple:
    here = Path(__file__).resolve().parent
    for candidate in (here / "web" / "csp-directives.txt", here.parents[1] / "static" / "csp-directives.txt"):
        if candidate.is_file():
            lines = candidate.read_text(encoding="utf-8").splitlines()
            return tuple(l.strip() for l in lines if l.strip() and not l.lstrip().startswith("#"))
    raise ImportError("csp-directives.txt not found: run scripts/build-python to bundle the browser runtime")


CSP_DIRECTIVES = _read_csp_directives()
CSP_REPORT_PATH = "/__csp-report"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
    ".tflite": "application/octet-stream",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}
HASHED = re.compile(r"\.[0-9a-f]{8}\.[a-z]+$")
ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")


class AssetsError(RuntimeError):
    """The browser runtime's files are missing or do not match their manifest."""


def _package_web_dir() -> Path:
    return Path(__file__).resolve().parent / "web"


def find_web_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where build/web is: the argument, $SECURE_CONTEXT_WEB_DIR, or the copy inside the package."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    elif os.environ.get("SECURE_CONTEXT_WEB_DIR"):
        candidates.append(Path(os.environ["SECURE_CONTEXT_WEB_DIR"]))
    else:
        candidates.append(_package_web_dir())
    for c in candidates:
        if (c / "sandbox.html").is_file() and (c / "asset-manifest.json").is_file():
            return c.resolve()
    raise AssetsError(
        f"the browser runtime is not at {candidates[0]}: build it and copy it into the package with "
        "`scripts/build-python` (or set SECURE_CONTEXT_WEB_DIR to a build/web directory, or pass base_url= "
        "to use the edge app)"
    )


def verify_web_dir(root: Path) -> dict[str, dict]:
    """Checks every file listed in asset-manifest.json; returns the manifest."""
    try:
        manifest = json.loads((root / "asset-manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise AssetsError(f"{root}/asset-manifest.json is unreadable: {e}") from e
    files = manifest.get("files", manifest) if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        raise AssetsError(f"{root}/asset-manifest.json lists no files")
    for rel, meta in files.items():
        p = root / rel.lstrip("/")
        try:
            data = p.read_bytes()
        except OSError as e:
            raise AssetsError(f"{rel} is listed in asset-manifest.json but cannot be read: {e}") from e
        if isinstance(meta, dict) and "sha256" in meta and hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise AssetsError(f"{rel} does not match its sha256 in asset-manifest.json; rebuild with scripts/build-python")
    return files


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "secure-context"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet by default
        if os.environ.get("SECURE_CONTEXT_SERVER_LOG"):
            super().log_message(format, *args)

    @property
    def owner(self) -> "AssetServer":
        return self.server.owner  # type: ignore[attr-defined]

    def _headers(self, path: str) -> dict[str, str]:
        ancestors = ["'self'"]
        if path == "/sandbox.html":
            ancestors += sorted(self.owner.parents)
        return {
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": self.owner.corp_for(path),
            "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": "; ".join([*CSP_DIRECTIVES, f"frame-ancestors {' '.join(ancestors)}", f"report-uri {CSP_REPORT_PATH}"]),
            "Cross-Origin-Opener-Policy": "same-origin",
            "Cross-Origin-Embedder-Policy": "require-corp",
            **({"Document-Isolation-Policy": "isolate-and-require-corp"} if path == "/sandbox.html" else {}),
        }

    def _send(self, status: int, headers: dict[str, str], body: bytes, head: bool = False) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        path = urllib.parse.urlsplit(self.path).path
        n = int(self.headers.get("Content-Length") or 0)
        if path != CSP_REPORT_PATH or n > 64 * 1024:
            self._send(405 if path != CSP_REPORT_PATH else 413, {}, b"")
            return
        body = self.rfile.read(n)
        with self.owner.lock:
            self.owner.csp_reports.append(body[:4096].decode("utf-8", "replace"))
            del self.owner.csp_reports[:-100]
        self._send(204, {}, b"")

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:  # noqa: N802
        path = urllib.parse.urlsplit(self.path).path
        try:
            rel = urllib.parse.unquote(path, errors="strict")
        except UnicodeDecodeError:
            self._send(400, {}, b"bad path", head)
            return
        if rel.endswith("/"):
            rel += "index.html"
        norm = posixpath.normpath(rel)
        if norm != rel or any(seg.startswith(".") for seg in rel.split("/")) or "\\" in rel or "\0" in rel:
            self._send(404, self._headers(path), b"not found", head)
            return
        file = (self.owner.root / rel.lstrip("/")).resolve()
        if not str(file).startswith(str(self.owner.root) + os.sep) or not file.is_file():
            self._send(404, self._headers(path), b"not found", head)
            return
        data = file.read_bytes()
        ext = file.suffix
        headers = {
            **self._headers(path),
            "Content-Type": CONTENT_TYPES.get(ext, "application/octet-stream"),
            "Cache-Control": "public, max-age=31536000, immutable" if HASHED.search(file.name) else "no-cache",
        }
        self._send(200, headers, data, head)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class AssetServer:
    """build/web on http://127.0.0.1:PORT/, with the runtime's headers. Start with :meth:`start`."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = Path(root).resolve()
        self.files = verify_web_dir(self.root)
        self.host = host
        self.port = port
        self.parents: set[str] = set()
        self.csp_reports: list[str] = []
        self.lock = threading.Lock()
        # An isolated Streamlit page (isolation.py) needs CORP cross-origin on sandbox.html.
        self.same_site_sandbox = os.environ.get("SECURE_CONTEXT_ISOLATED_PAGE") == "1"
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def corp_for(self, path: str) -> str:
        # An isolated embedder (see isolation.py) needs CORP on the framed document to admit
        # it (Chromium refuses same-site here: corp-not-same-site); frame-ancestors still
        # decides who may frame it. Otherwise same-origin, as serve.mjs.
        if path == "/sandbox.html" and self.same_site_sandbox:
            return "cross-origin"
        return "same-origin"

    def allow_parents(self, origins: Iterable[str]) -> None:
        """Lets these origins frame sandbox.html (frame-ancestors)."""
        for o in origins:
            if not ORIGIN.match(o) or urllib.parse.urlsplit(o).path:
                raise ValueError(f"not an http(s) origin: {o!r}")
            with self.lock:
                self.parents.add(o)

    @property
    def origin(self) -> str:
        if not self._httpd:
            raise RuntimeError("the asset server is not running")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> "AssetServer":
        if self._httpd:
            return self
        httpd = _Server((self.host, self.port), _Handler)
        httpd.owner = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="secure-context-assets", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


_default: AssetServer | None = None
_default_lock = threading.Lock()


def default_server() -> AssetServer:
    """The process-wide local server (started on first use; $SECURE_CONTEXT_PORT picks the port)."""
    global _default
    with _default_lock:
        if _default is None:
            port = int(os.environ.get("SECURE_CONTEXT_PORT", "0") or 0)
            _default = AssetServer(find_web_dir(), port=port).start()
        return _default
