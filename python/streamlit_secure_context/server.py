"""The no-Spin default: serve the browser runtime (build/web) from this process.

A small stdlib HTTP server on 127.0.0.1 in a daemon thread. It applies the edge app's header
policy, not a copy of it: the headers per kind of response, the content types and the cache
rules are data generated from components/edge-core (``policy.json``, `secure-context policy
--json`, bundled by scripts/build-python), and it serves exactly the files of build/web's
asset-manifest.json (checked against their sha256 and size when the server starts), as the edge
does: exact paths only, strong ETags, 304, one byte range, HEAD, 405 for other methods, and the
policy on every reply, errors included. tests/policy/ compares its headers with the edge's.

Who may frame ``sandbox.html`` is server-side configuration, fixed when the server starts:
``$SECURE_CONTEXT_FRAME_ANCESTORS`` (origins, space or comma separated: https://host[:port], or
http:// for a loopback host), else the origins Streamlit is configured to be reached at on this
machine (``browser.serverAddress`` / ``server.address`` and ``browser.serverPort``; loopback
hosts over http, or any host over https when Streamlit serves TLS). Nothing a browser sends
changes it.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import ipaddress
import json
import os
import re
import threading
import urllib.parse
from pathlib import Path
from typing import Iterable

CSP_REPORT_PATH = "/__csp-report"
MAX_REPORT_BYTES = 64 * 1024
MAX_PATH = 1024
_HERE = Path(__file__).resolve().parent


class AssetsError(RuntimeError):
    """The browser runtime's files are missing or do not match their manifest."""


def _load_policy() -> dict:
    """The edge's policy as data: the package's copy, or build/policy.json in a source checkout."""
    for candidate in (_HERE / "policy.json", _HERE.parents[1] / "build" / "policy.json"):
        if candidate.is_file():
            policy = json.loads(candidate.read_text(encoding="utf-8"))
            if policy.get("format") != "secure-context-policy/1":
                raise ImportError(f"{candidate}: unknown policy format {policy.get('format')!r}")
            return policy
    raise ImportError("policy.json not found: run scripts/build-web and scripts/build-python to bundle the browser runtime")


POLICY = _load_policy()
CONTENT_TYPES: dict[str, str] = POLICY["content_types"]
MAX_FRAME_ANCESTORS: int = POLICY["frame_ancestors"]["max"]


def _headers_of(kind: str) -> list[tuple[str, str]]:
    return [(n, v) for n, v in POLICY["headers"][kind]]


def _csp_directives(kind: str) -> tuple[str, ...]:
    csp = dict(_headers_of(kind))["content-security-policy"]
    return tuple(d.strip() for d in csp.split(";") if d.strip() and not d.strip().startswith("frame-ancestors"))


# The CSP of the runtime's documents, frame-ancestors aside (for tests and config checks).
CSP_DIRECTIVES = _csp_directives("sandbox-document")


# ---------------------------------------------------------------------------------------
# Allowed parents: server-side configuration only


def _is_loopback(host: str) -> bool:
    h = host.lower().strip("[]")
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


_HOST = re.compile(r"^(?:\[[0-9a-f:.]+\]|(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*)$")


def parse_origin(item: str) -> str:
    """``https://host[:port]`` (or ``http://`` for a loopback host), lower-case; ValueError otherwise."""
    u = urllib.parse.urlsplit(item.strip().lower())
    try:
        port = u.port
    except ValueError:
        raise ValueError(f"{item!r} is not an allowed origin (bad port)") from None
    host = u.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if (u.scheme not in ("http", "https") or not host or u.username or u.password or u.path or u.query
            or u.fragment or not _HOST.match(host) or port == 0 or item.strip().lower() != f"{u.scheme}://{u.netloc}"):
        raise ValueError(f"{item!r} is not an allowed origin: expected https://host[:port]")
    if u.scheme == "http" and not _is_loopback(host):
        raise ValueError(f"{item!r} is not an allowed origin: plain http is only allowed for loopback hosts")
    return f"{u.scheme}://{host}" + (f":{port}" if port is not None else "")


def parse_frame_ancestors(value: str) -> list[str]:
    out: list[str] = []
    for item in re.split(r"[\s,]+", value.strip()):
        if item:
            o = parse_origin(item)
            if o not in out:
                out.append(o)
    if len(out) > MAX_FRAME_ANCESTORS:
        raise ValueError(f"{len(out)} origins; at most {MAX_FRAME_ANCESTORS}")
    return out


def configured_parents() -> list[str]:
    """The origins allowed to frame sandbox.html: $SECURE_CONTEXT_FRAME_ANCESTORS, else Streamlit's configured address."""
    explicit = os.environ.get("SECURE_CONTEXT_FRAME_ANCESTORS")
    if explicit is not None:
        try:
            return parse_frame_ancestors(explicit)
        except ValueError as e:
            raise ValueError(f"SECURE_CONTEXT_FRAME_ANCESTORS: {e}") from None
    try:
        from streamlit import config

        port = config.get_option("browser.serverPort") or config.get_option("server.port") or 8501
        hosts = [config.get_option("browser.serverAddress"), config.get_option("server.address")]
        tls = bool(config.get_option("server.sslCertFile"))
    except Exception:  # noqa: BLE001 - streamlit not importable or not configured: its defaults
        port, hosts, tls = 8501, ["localhost"], False
    out: list[str] = []
    hosts = [h for h in hosts if h]
    if not hosts or any(_is_loopback(h) for h in hosts):
        hosts += ["localhost", "127.0.0.1"]
    for h in hosts:
        scheme = "https" if tls else "http"
        try:
            o = parse_origin(f"{scheme}://{h}:{int(port)}")
        except ValueError:
            continue  # plain http to a non-loopback host: never a parent
        if o not in out:
            out.append(o)
    return out[:MAX_FRAME_ANCESTORS]


# ---------------------------------------------------------------------------------------
# The runtime's files


def _package_web_dir() -> Path:
    return _HERE / "web"


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
    if not isinstance(manifest, dict) or not manifest:
        raise AssetsError(f"{root}/asset-manifest.json lists no files")
    for rel, meta in manifest.items():
        if path_to_key("/" + rel) != rel or not isinstance(meta, dict):
            raise AssetsError(f"asset-manifest.json: invalid entry {rel!r}")
        try:
            data = (root / rel).read_bytes()
        except OSError as e:
            raise AssetsError(f"{rel} is listed in asset-manifest.json but cannot be read: {e}") from e
        if hashlib.sha256(data).hexdigest() != meta.get("sha256") or len(data) != meta.get("size"):
            raise AssetsError(f"{rel} does not match its sha256 in asset-manifest.json; rebuild with scripts/build-python")
    return manifest


_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


def path_to_key(raw: str) -> str | None:
    """The request path as an allowlist key, or None (404): the edge's rules (edge-core app.rs)."""
    if len(raw) > MAX_PATH or not raw.startswith("/"):
        return None
    if re.search(r"%(?![0-9A-Fa-f]{2})", raw) or any(ord(c) > 0x7F for c in raw):
        return None
    try:
        s = urllib.parse.unquote_to_bytes(raw).decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\\:%" for c in s):
        return None
    rel = s[1:]
    if not rel:
        return "index.html"
    if all(seg and not seg.startswith(".") and _SEGMENT.match(seg) for seg in rel.split("/")):
        return rel
    return None


def _kind(key: str) -> str:
    kinds = POLICY["kinds"]
    if key in kinds["paths"]:
        return kinds["paths"][key]
    for suffix, kind in kinds["suffixes"].items():
        if key.endswith(suffix):
            return kind
    return kinds["names"].get(key.rsplit("/", 1)[-1], kinds["default"])


def _parse_range(v: str, size: int):
    """None (ignore the header), "unsatisfiable", or (start, end)."""
    m = re.fullmatch(r"bytes=(\d{0,19})-(\d{0,19})", v.strip())
    if not m or (not m[1] and not m[2]):
        return None
    if not m[1]:
        n = int(m[2])
        if n == 0 or size == 0:
            return "unsatisfiable"
        return size - min(n, size), size - 1
    start = int(m[1])
    if m[2] and int(m[2]) < start:
        return None
    end = min(int(m[2]) if m[2] else size - 1, size - 1)
    if start >= size:
        return "unsatisfiable"
    return start, end


# ---------------------------------------------------------------------------------------
# HTTP


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet by default
        if os.environ.get("SECURE_CONTEXT_SERVER_LOG"):
            super().log_message(format, *args)

    @property
    def owner(self) -> "AssetServer":
        return self.server.owner  # type: ignore[attr-defined]

    # No `Server` header (the policy owns it); every reply, http.server's own errors included,
    # goes through _send.
    def send_response(self, code: int, message: str | None = None) -> None:
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server answers unknown methods with 501: the edge says 405.
        if code == 501:
            code = 405
        texts = {400: "bad request\n", 404: "not found\n", 405: "method not allowed\n", 408: "request timeout\n",
                 413: "payload too large\n", 414: "uri too long\n", 431: "request header fields too large\n"}
        self.close_connection = True
        self._error(code, texts.get(code, "error\n"), head=getattr(self, "command", None) == "HEAD")

    def _policy(self, kind: str) -> list[tuple[str, str]]:
        parents = self.owner.parents
        framed = kind == "sandbox-document" and bool(parents)
        out = []
        for n, v in _headers_of("sandbox-document-framed" if framed else kind):
            if n == "content-security-policy":
                v = v.replace(POLICY["frame_ancestors"]["placeholder"], " ".join(parents)) + f"; report-uri {CSP_REPORT_PATH}"
            out.append((n, v))
        return out

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes, head: bool = False) -> None:
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and status not in (204, 304):
            self.wfile.write(body)

    def _error(self, status: int, text: str, extra: Iterable[tuple[str, str]] = (), head: bool = False) -> None:
        headers = [*self._policy("resource"), *extra, ("content-type", "text/plain; charset=utf-8"),
                   ("cache-control", POLICY["cache"]["none"])]
        self._send(status, headers, text.encode(), head)

    def _method_not_allowed(self) -> None:
        self._drain()
        self._error(405, "method not allowed\n", [("allow", POLICY["allow"])], head=self.command == "HEAD")

    def _drain(self) -> None:
        """Reads and drops a request body of at most MAX_REPORT_BYTES; a longer one ends the connection."""
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if 0 <= n <= MAX_REPORT_BYTES and not self.headers.get("Transfer-Encoding"):
            self.rfile.read(n)
        else:
            self.close_connection = True

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _method_not_allowed

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        if path != CSP_REPORT_PATH:
            return self._method_not_allowed()
        raw = self.headers.get("Content-Length")
        try:
            n = int(raw) if raw is not None else -1
        except ValueError:
            n = -1
        if self.headers.get("Transfer-Encoding") or n < 0:
            self.close_connection = True
            return self._error(411 if n < 0 and raw is None else 400, "a CSP report needs a Content-Length\n")
        if n > MAX_REPORT_BYTES:
            self.close_connection = True
            return self._error(413, "payload too large\n")
        body = self.rfile.read(n)
        with self.owner.lock:
            self.owner.csp_reports.append(body[:4096].decode("utf-8", "replace"))
            del self.owner.csp_reports[:-100]
        self._send(204, [*self._policy("resource"), ("cache-control", POLICY["cache"]["none"])], b"")

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        key = path_to_key(path)
        with self.owner.lock:
            meta = self.owner.files.get(key) if key is not None else None
            data = self.owner.overlay.get(key) if key is not None else None
        if meta is None:
            return self._error(404, "not found\n", head=head)
        try:
            data = data if data is not None else (self.owner.root / key).read_bytes()
        except OSError:
            return self._error(404, "not found\n", head=head)
        if len(data) != meta["size"]:
            return self._error(503, "site unavailable: a file changed since the build\n", head=head)
        cache = POLICY["cache"]
        etag = f'"{meta["sha256"]}"'
        headers = [*self._policy(_kind(key)), ("etag", etag),
                   ("cache-control", cache["immutable"] if meta.get("immutable") else cache["revalidate"])]
        inm = self.headers.get_all("If-None-Match") or []
        tags = [t.strip().removeprefix("W/") for v in inm for t in v.split(",")]
        if any(t in ("*", etag) for t in tags):
            return self._send(304, headers, b"", head=True)
        headers += [("content-type", meta["content-type"]), ("accept-ranges", "bytes")]
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng is not None and (if_range is None or if_range.strip() == etag):
            r = _parse_range(rng, len(data))
            if r == "unsatisfiable":
                return self._error(416, "range not satisfiable\n",
                                   [("content-range", f"bytes */{len(data)}"), ("accept-ranges", "bytes")], head=head)
            if r is not None:
                a, b = r
                headers.append(("content-range", f"bytes {a}-{b}/{len(data)}"))
                return self._send(206, headers, data[a:b + 1], head)
        self._send(200, headers, data, head)


def _sri(data: bytes) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def _repin(parent: bytes, old: bytes, new: bytes, parent_name: str, child: str) -> bytes:
    """``parent`` with ``child``'s pin (its SRI, held exactly once) changed from ``old``'s to ``new``'s."""
    text = parent.decode("utf-8")
    n = text.count(_sri(old))
    if n != 1:
        raise AssetsError(f"{parent_name} holds {child}'s pin {n} times, expected once: rebuild with scripts/build-python")
    return text.replace(_sri(old), _sri(new)).encode("utf-8")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class AssetServer:
    """build/web on http://127.0.0.1:PORT/, under the edge's policy. Start with :meth:`start`.

    ``parents``: the origins allowed to frame sandbox.html (default: :func:`configured_parents`).
    Fixed for the server's life.
    """

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0, parents: Iterable[str] | None = None) -> None:
        self.root = Path(root).resolve()
        self.files = verify_web_dir(self.root)
        self.host = host
        self.port = port
        if parents is None:
            chosen = configured_parents()
        else:
            chosen = []
            for o in parents:
                p = parse_origin(o)
                if p not in chosen:
                    chosen.append(p)
        if len(chosen) > MAX_FRAME_ANCESTORS:
            raise ValueError(f"{len(chosen)} parents; at most {MAX_FRAME_ANCESTORS}")
        self.parents: tuple[str, ...] = tuple(chosen)
        self.csp_reports: list[str] = []
        # Files served from memory instead of root: local models added by add_model, and the
        # manifest and documents re-pinned for them.
        self.overlay: dict[str, bytes] = {}
        self.added: set[str] = set()
        self.lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def _bytes(self, rel: str) -> bytes:
        return self.overlay[rel] if rel in self.overlay else (self.root / rel).read_bytes()

    def add_model(self, entry: dict, data: bytes) -> None:
        """Serves a model that is not in the build (a local file, checked by the engine into
        ``entry`` by local_model.py): the file, the manifest with its entry, and the chain pinning
        the manifest re-pinned as web/pins.mjs's repin does (the manifest's SRI in sandbox.js,
        sandbox.js's in sandbox.html). Replaces a model this method added under the same name."""
        name, file = entry["name"], entry["file"]
        if hashlib.sha256(data).hexdigest() != entry["sha256"] or len(data) != entry["size"]:
            raise ValueError(f"model {name!r}: its bytes do not match its entry")
        with self.lock:
            old_manifest = self._bytes("models/manifest.json")
            manifest = json.loads(old_manifest)
            kept = []
            for m in manifest["models"]:
                if m.get("file") in self.added and m.get("name") == name:
                    continue
                if m.get("name") == name or m.get("file") == file or (m.get("tokenizer") or {}).get("file") == file:
                    raise ValueError(f"a model named {name!r} (or a file {file!r}) is already served: give the local model "
                                     "another name, model_options={'name': ...}")
                kept.append(m)
            manifest["models"] = [*kept, entry]
            new_manifest = (json.dumps(manifest, indent=2) + "\n").encode()
            old_js = self._bytes("sandbox.js")
            js = _repin(old_js, old_manifest, new_manifest, "sandbox.js", "models/manifest.json")
            html = _repin(self._bytes("sandbox.html"), old_js, js, "sandbox.html", "sandbox.js")
            changed = {f"models/{file}": data, "models/manifest.json": new_manifest, "sandbox.js": js, "sandbox.html": html}
            for rel, b in changed.items():
                self.overlay[rel] = b
                self.files[rel] = {**self.files.get(rel, {"content-type": CONTENT_TYPES[Path(rel).suffix], "immutable": False}),
                                   "sha256": hashlib.sha256(b).hexdigest(), "size": len(b)}
            self.added.add(file)

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
