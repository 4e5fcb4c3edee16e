"""Validation of ``security_config`` and ``inference_params``, and the comparison of what
was asked with the policy actually served.

The served policy (headers from the edge app or from the package's local server) is
authoritative: ``security_config`` never loosens it. It states what the caller requires;
the component checks the live environment against it and refuses to run when it falls short.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence


class SecurityConfigError(ValueError):
    """A ``security_config`` that is malformed or asks for something unsafe."""


class InferenceParamsError(ValueError):
    """``inference_params`` that cannot be turned into the model's input."""


class ModelPathError(ValueError):
    """A ``model_path`` that is not a manifest name or a model URL on the serving origin."""


CONFIG_KEYS = ("coop", "coep", "csp", "sandbox", "requireHTTPS")

COOP_VALUES = {"same-origin"}
COOP_UNSAFE = {"unsafe-none", "same-origin-allow-popups", "noopener-allow-popups"}
COEP_VALUES = {"require-corp", "credentialless"}
COEP_UNSAFE = {"unsafe-none"}

# CSP Level 3, Trusted Types, and the few still-shipped extras. Anything else is a typo.
CSP_DIRECTIVES = {
    "default-src", "script-src", "script-src-elem", "script-src-attr", "style-src",
    "style-src-elem", "style-src-attr", "img-src", "font-src", "connect-src", "media-src",
    "object-src", "frame-src", "child-src", "worker-src", "manifest-src", "fenced-frame-src",
    "base-uri", "form-action", "frame-ancestors", "sandbox", "report-uri", "report-to",
    "upgrade-insecure-requests", "block-all-mixed-content", "require-trusted-types-for",
    "trusted-types", "webrtc",
}
FETCH_DIRECTIVES = {
    "script-src", "script-src-elem", "script-src-attr", "style-src", "style-src-elem",
    "style-src-attr", "img-src", "font-src", "connect-src", "media-src", "object-src",
    "frame-src", "child-src", "worker-src", "manifest-src", "fenced-frame-src",
}
SOURCE_LIST_DIRECTIVES = FETCH_DIRECTIVES | {"default-src", "base-uri", "form-action", "frame-ancestors"}
# A meta/HTTP CSP cannot give these here: they are decided by the server and the iframe.
NOT_CONFIGURABLE = {
    "sandbox": "use security_config['sandbox'] (the iframe's sandbox attribute) instead",
    "report-uri": "reporting is configured on the server that serves the sandbox",
    "report-to": "reporting is configured on the server that serves the sandbox",
}
SAFE_KEYWORDS = {"'self'", "'none'", "'wasm-unsafe-eval'", "'strict-dynamic'", "'report-sample'"}
UNSAFE_KEYWORDS = {"'unsafe-eval'", "'unsafe-inline'", "'unsafe-hashes'", "'unsafe-allow-redirects'", "'inline-speculation-rules'"}
BARE_KEYWORDS = {k.strip("'") for k in SAFE_KEYWORDS | UNSAFE_KEYWORDS}
# Scheme-only sources allow every host of that scheme; data: in scripts is script injection.
UNSAFE_SCHEMES = {"http:", "https:", "ws:", "wss:", "data:", "filesystem:", "javascript:"}
SAFE_SCHEMES_BY_DIRECTIVE = {"blob:": {"worker-src", "child-src", "img-src", "media-src", "connect-src", "default-src"},
                             "data:": {"img-src", "font-src", "media-src"}}
HOST_SOURCE = re.compile(r"^(?:(https?|wss?)://)?([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:]+\])(:\d{1,5})?(/[^\s;,*]*)?$", re.I)
HASH_OR_NONCE = re.compile(r"^'(sha256|sha384|sha512)-[A-Za-z0-9+/_-]+={0,2}'$|^'nonce-[A-Za-z0-9+/_-]+={0,2}'$")

SANDBOX_REQUIRED = ("allow-scripts", "allow-same-origin")
SANDBOX_UNSAFE = {
    "allow-top-navigation": "lets the engine frame navigate the Streamlit page away",
    "allow-top-navigation-by-user-activation": "lets the engine frame navigate the Streamlit page away",
    "allow-top-navigation-to-custom-protocols": "lets the engine frame open external protocol handlers",
    "allow-popups": "lets the engine frame open new windows (a way out of the sandbox)",
    "allow-popups-to-escape-sandbox": "lets windows opened by the frame run unsandboxed",
    "allow-modals": "lets the frame block the page with alert/confirm/print",
    "allow-forms": "lets the frame submit forms (a data exfiltration channel)",
    "allow-downloads": "lets the frame write files to the user's disk",
    "allow-pointer-lock": "lets the frame capture the pointer",
    "allow-presentation": "lets the frame start presentations",
    "allow-orientation-lock": "lets the frame lock the screen orientation",
    "allow-storage-access-by-user-activation": "lets the frame request third-party storage access",
}

DEFAULT_SANDBOX = list(SANDBOX_REQUIRED)


@dataclass(frozen=True)
class SecurityConfig:
    """A validated ``security_config``. ``None`` fields were not asked for."""

    coop: str | None = None
    coep: str | None = None
    csp: dict[str, list[str]] = field(default_factory=dict)
    sandbox: tuple[str, ...] = tuple(DEFAULT_SANDBOX)
    require_https: bool = False

    @property
    def require_isolation(self) -> bool:
        """COOP same-origin plus a COEP means: the engine must be cross-origin isolated."""
        return self.coop is not None or self.coep is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "coop": self.coop,
            "coep": self.coep,
            "csp": self.csp,
            "sandbox": list(self.sandbox),
            "requireHTTPS": self.require_https,
            "requireIsolation": self.require_isolation,
        }


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_source(directive: str, src: Any) -> str:
    if not isinstance(src, str) or not src.strip():
        raise SecurityConfigError(f"security_config['csp'][{directive!r}]: sources are non-empty strings, got {src!r}")
    s = src.strip()
    low = s.lower()
    if " " in s or ";" in s or "," in s:
        raise SecurityConfigError(
            f"security_config['csp'][{directive!r}]: {s!r} holds several sources; give a list with one source per item"
        )
    if low in UNSAFE_KEYWORDS:
        raise SecurityConfigError(
            f"security_config['csp'][{directive!r}]: {s} is unsafe and is never allowed "
            "(it re-enables script injection); the engine needs only 'self' and 'wasm-unsafe-eval'"
        )
    if "*" in s:
        raise SecurityConfigError(
            f"security_config['csp'][{directive!r}]: wildcard source {s!r} is not allowed; list exact origins"
        )
    if low in SAFE_KEYWORDS:
        return low
    if low in BARE_KEYWORDS:
        raise SecurityConfigError(
            f"security_config['csp'][{directive!r}]: keyword {s!r} must be quoted: \"'{low}'\""
        )
    if HASH_OR_NONCE.match(s):
        return s
    if s.startswith("'"):
        raise SecurityConfigError(f"security_config['csp'][{directive!r}]: unknown keyword source {s}")
    if re.fullmatch(r"[a-z][a-z0-9+.-]*:", low):
        if directive in SAFE_SCHEMES_BY_DIRECTIVE.get(low, set()):
            return low
        if low in UNSAFE_SCHEMES or low == "blob:":
            raise SecurityConfigError(
                f"security_config['csp'][{directive!r}]: scheme source {s!r} allows any resource of that scheme; "
                "it is not allowed here"
            )
        raise SecurityConfigError(f"security_config['csp'][{directive!r}]: unknown scheme source {s!r}")
    if HOST_SOURCE.match(s):
        return s
    raise SecurityConfigError(f"security_config['csp'][{directive!r}]: {s!r} is not a valid CSP source")


def _validate_csp(csp: Any) -> dict[str, list[str]]:
    if not isinstance(csp, Mapping):
        raise SecurityConfigError(f"security_config['csp'] must be a dict of directive -> list of sources, got {type(csp).__name__}")
    out: dict[str, list[str]] = {}
    for name, sources in csp.items():
        if not isinstance(name, str):
            raise SecurityConfigError(f"security_config['csp']: directive names are strings, got {name!r}")
        d = name.strip().lower()
        if d not in CSP_DIRECTIVES:
            raise SecurityConfigError(f"security_config['csp']: unknown CSP directive {name!r}{_suggest(d, CSP_DIRECTIVES)}")
        if d in NOT_CONFIGURABLE:
            raise SecurityConfigError(f"security_config['csp']: {d!r} cannot be set here: {NOT_CONFIGURABLE[d]}")
        if isinstance(sources, str):
            sources = sources.split()
        if not isinstance(sources, (list, tuple)):
            raise SecurityConfigError(f"security_config['csp'][{d!r}] must be a list of strings, got {type(sources).__name__}")
        if d in ("upgrade-insecure-requests", "block-all-mixed-content"):
            if sources:
                raise SecurityConfigError(f"security_config['csp'][{d!r}] takes no values (use [])")
            out[d] = []
            continue
        if d == "require-trusted-types-for":
            if list(sources) != ["'script'"]:
                raise SecurityConfigError(f"security_config['csp']['require-trusted-types-for'] must be [\"'script'\"]")
            out[d] = ["'script'"]
            continue
        if d == "trusted-types":
            for p in sources:
                if not isinstance(p, str) or p in ("*", "'allow-duplicates'") or not re.fullmatch(r"[A-Za-z0-9\-#=_/@.%]+|'none'", p):
                    raise SecurityConfigError(f"security_config['csp']['trusted-types']: {p!r} is not an allowed policy name")
            out[d] = list(sources)
            continue
        if d == "webrtc":
            if list(sources) not in (["'block'"], ["'allow'"]):
                raise SecurityConfigError("security_config['csp']['webrtc'] must be [\"'block'\"] or [\"'allow'\"]")
            out[d] = list(sources)
            continue
        if not sources:
            raise SecurityConfigError(f"security_config['csp'][{d!r}] is empty; use [\"'none'\"] to allow nothing")
        checked = [_check_source(d, s) for s in sources]
        if "'none'" in checked and len(checked) > 1:
            raise SecurityConfigError(f"security_config['csp'][{d!r}]: 'none' cannot be combined with other sources")
        if "'wasm-unsafe-eval'" in checked and d not in ("script-src", "default-src", "script-src-elem"):
            raise SecurityConfigError(f"security_config['csp'][{d!r}]: 'wasm-unsafe-eval' only means something in script-src")
        out[d] = checked
    return out


def _validate_sandbox(sandbox: Any) -> tuple[str, ...]:
    if isinstance(sandbox, str):
        sandbox = sandbox.split()
    if not isinstance(sandbox, (list, tuple)):
        raise SecurityConfigError(f"security_config['sandbox'] must be a list of sandbox tokens, got {type(sandbox).__name__}")
    tokens: list[str] = []
    for t in sandbox:
        if not isinstance(t, str):
            raise SecurityConfigError(f"security_config['sandbox']: tokens are strings, got {t!r}")
        tok = t.strip().lower()
        if tok in SANDBOX_UNSAFE:
            raise SecurityConfigError(f"security_config['sandbox']: {tok!r} is not allowed: it {SANDBOX_UNSAFE[tok]}")
        if tok not in SANDBOX_REQUIRED:
            raise SecurityConfigError(
                f"security_config['sandbox']: unknown sandbox token {t!r}{_suggest(tok, list(SANDBOX_UNSAFE) + list(SANDBOX_REQUIRED))}"
            )
        if tok not in tokens:
            tokens.append(tok)
    missing = [t for t in SANDBOX_REQUIRED if t not in tokens]
    if missing:
        raise SecurityConfigError(
            f"security_config['sandbox'] must include {' and '.join(missing)}: the engine frame runs a module worker "
            "and verifies the model with WebCrypto and the Cache API, which need scripts and its own origin"
        )
    return tuple(tokens)


def validate_security_config(config: Mapping[str, Any] | None) -> SecurityConfig:
    """Checks ``security_config`` and returns it normalized; raises :class:`SecurityConfigError`."""
    if config is None:
        return SecurityConfig()
    if isinstance(config, SecurityConfig):
        return config
    if not isinstance(config, Mapping):
        raise SecurityConfigError(f"security_config must be a dict, got {type(config).__name__}")
    for k in config:
        if k not in CONFIG_KEYS:
            raise SecurityConfigError(
                f"security_config: unknown key {k!r}{_suggest(str(k), CONFIG_KEYS)}; known keys: {', '.join(CONFIG_KEYS)}"
            )
    coop = config.get("coop")
    if coop is not None:
        if not isinstance(coop, str):
            raise SecurityConfigError(f"security_config['coop'] must be a string, got {type(coop).__name__}")
        if coop in COOP_UNSAFE:
            raise SecurityConfigError(
                f"security_config['coop'] = {coop!r} does not give cross-origin isolation; use 'same-origin' "
                "(or leave coop and coep out to run without requiring isolation)"
            )
        if coop not in COOP_VALUES:
            raise SecurityConfigError(f"security_config['coop']: unknown value {coop!r}; expected 'same-origin'")
    coep = config.get("coep")
    if coep is not None:
        if not isinstance(coep, str):
            raise SecurityConfigError(f"security_config['coep'] must be a string, got {type(coep).__name__}")
        if coep in COEP_UNSAFE:
            raise SecurityConfigError(
                f"security_config['coep'] = {coep!r} does not give cross-origin isolation; use 'require-corp' or "
                "'credentialless' (or leave coop and coep out to run without requiring isolation)"
            )
        if coep not in COEP_VALUES:
            raise SecurityConfigError(f"security_config['coep']: unknown value {coep!r}; expected 'require-corp' or 'credentialless'")
    if (coop is None) != (coep is None):
        raise SecurityConfigError(
            "security_config: give both 'coop' and 'coep' (cross-origin isolation needs both) or neither"
        )
    csp = _validate_csp(config["csp"]) if "csp" in config else {}
    sandbox = _validate_sandbox(config["sandbox"]) if "sandbox" in config else tuple(DEFAULT_SANDBOX)
    https = config.get("requireHTTPS", False)
    if not isinstance(https, bool):
        raise SecurityConfigError(f"security_config['requireHTTPS'] must be True or False, got {https!r}")
    return SecurityConfig(coop=coop, coep=coep, csp=csp, sandbox=sandbox, require_https=https)


# ---------------------------------------------------------------------------------------
# The served policy against what was asked


def parse_csp(header: str) -> dict[str, list[str]]:
    """A CSP header as {directive: [sources]}; the first occurrence of a directive wins."""
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.strip().split()
        if not words:
            continue
        name = words[0].lower()
        if name not in out:
            out[name] = [w if not w.startswith("'") else w.lower() for w in words[1:]]
    return out


def _effective(policy: Mapping[str, list[str]], directive: str) -> list[str] | None:
    if directive in policy:
        return policy[directive]
    if directive in ("script-src-elem", "script-src-attr") and "script-src" in policy:
        return policy["script-src"]
    if directive in ("style-src-elem", "style-src-attr") and "style-src" in policy:
        return policy["style-src"]
    if directive == "worker-src":
        for d in ("child-src", "script-src"):
            if d in policy:
                return policy[d]
    if directive == "frame-src" and "child-src" in policy:
        return policy["child-src"]
    if directive in FETCH_DIRECTIVES:
        return policy.get("default-src")
    return None


def _union(a: list[str] | None, b: list[str] | None) -> list[str] | None:
    """The sources either context allows ('none' only when both allow nothing)."""
    if a is None or b is None:
        return None
    both = [s for s in dict.fromkeys([*a, *b]) if s != "'none'"]
    return both or ["'none'"]


def compare_policy(asked: SecurityConfig, headers: Mapping[str, str], *, path: str = "sandbox.html",
                   worker_headers: Mapping[str, str] | None = None) -> list[str]:
    """What the served headers of the sandbox document fail to give, as sentences (empty: all good).

    ``headers``: the response headers of sandbox.html, lower-case names; the engine worker runs
    under its CSP (started from a blob: URL of the verified worker.js). ``worker_headers``: those of
    worker.js, for a runtime that starts its worker from the URL: what it allows counts too.
    """
    problems: list[str] = []
    h = {k.lower(): v for k, v in headers.items()}
    served_csp_header = h.get("content-security-policy")
    worker_csp = {k.lower(): v for k, v in (worker_headers or {}).items()}.get("content-security-policy")
    if asked.csp:
        if not served_csp_header:
            problems.append(f"a CSP was asked for, but {path} is served without Content-Security-Policy")
        else:
            served = parse_csp(served_csp_header)
            in_worker = parse_csp(worker_csp) if worker_csp else None
            for directive, want in asked.csp.items():
                have = _effective(served, directive)
                if in_worker is not None and directive != "frame-ancestors":
                    have = _union(have, _effective(in_worker, directive))
                if directive in SOURCE_LIST_DIRECTIVES:
                    if have is None:
                        problems.append(f"CSP {directive}: asked for {' '.join(want)}, but the served policy does not restrict it")
                        continue
                    if "'none'" in have:
                        continue  # stricter than anything asked
                    extra = [s for s in have if s not in want and not (s == "'report-sample'")]
                    if extra:
                        problems.append(
                            f"CSP {directive}: the served policy allows {' '.join(extra)}, which security_config does not"
                            + (" (the engine cannot run without 'wasm-unsafe-eval' in script-src)" if "'wasm-unsafe-eval'" in extra else "")
                        )
                elif directive in ("upgrade-insecure-requests", "block-all-mixed-content", "require-trusted-types-for", "trusted-types", "webrtc"):
                    if have is None:
                        problems.append(f"CSP {directive}: asked for, but not in the served policy")
                    elif directive == "trusted-types" and [p for p in have if p not in want]:
                        problems.append(f"CSP trusted-types: the served policy allows {' '.join(p for p in have if p not in want)}, which security_config does not")
    if asked.require_isolation:
        coep = h.get("cross-origin-embedder-policy", "").split(";")[0].strip()
        dip = h.get("document-isolation-policy", "").split(";")[0].strip()
        if coep not in COEP_VALUES:
            problems.append(f"isolation was asked for (coep {asked.coep!r}), but {path} is served without a COEP that allows it (got {coep or 'none'!r})")
        elif asked.coep == "require-corp" and coep != "require-corp" and dip != "isolate-and-require-corp":
            problems.append(f"coep 'require-corp' was asked for, but {path} is served with COEP {coep!r}")
        if h.get("cross-origin-opener-policy", "").split(";")[0].strip() != "same-origin" and not dip:
            problems.append(f"coop 'same-origin' was asked for, but {path} is served without COOP same-origin or Document-Isolation-Policy")
    return problems


# ---------------------------------------------------------------------------------------
# inference_params


def _flatten(x: Any, path: str = "input") -> list[float]:
    out: list[float] = []

    def rec(v: Any, p: str) -> None:
        if isinstance(v, bool):
            raise InferenceParamsError(f"inference_params[{p}]: booleans are not numbers")
        if isinstance(v, (int, float)):
            f = float(v)
            if not math.isfinite(f):
                raise InferenceParamsError(f"inference_params[{p}]: {v!r} is not finite (NaN and infinities cannot travel as JSON)")
            out.append(f)
            return
        if hasattr(v, "tolist") and callable(v.tolist):  # numpy arrays and scalars
            return rec(v.tolist(), p)
        if isinstance(v, (list, tuple)):
            for i, e in enumerate(v):
                rec(e, f"{p}[{i}]")
            return
        raise InferenceParamsError(f"inference_params[{p}]: expected numbers or (nested) lists of numbers, got {type(v).__name__}")
    rec(x, path)
    return out


def build_inputs(params: Mapping[str, Any], model_inputs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``inference_params`` -> {input name: {"data": [floats], "shape": [ints]}}.

    ``{"input": [...]}`` feeds the model's single input (flat lists are reshaped to the
    manifest's shape; a symbolic leading dimension such as ``batch`` is inferred);
    ``{"input": {"name": [...]}}`` feeds inputs by name; ``"shape"`` overrides the shape.
    """
    if not isinstance(params, Mapping):
        raise InferenceParamsError(f"inference_params must be a dict like {{'input': [...]}}, got {type(params).__name__}")
    for k in params:
        if k not in ("input", "shape"):
            raise InferenceParamsError(f"inference_params: unknown key {k!r}; known keys: input, shape")
    if "input" not in params:
        raise InferenceParamsError("inference_params needs 'input' (or pass inference_params=None for the in-browser input mode)")
    raw = params["input"]
    by_name = {m["name"]: m for m in model_inputs}
    if isinstance(raw, Mapping):
        items = list(raw.items())
        for name, _ in items:
            if name not in by_name:
                raise InferenceParamsError(f"inference_params['input']: the model has no input {name!r} (inputs: {', '.join(by_name)})")
        missing = [n for n in by_name if n not in raw]
        if missing:
            raise InferenceParamsError(f"inference_params['input']: missing input(s) {', '.join(map(repr, missing))}")
        if "shape" in params:
            raise InferenceParamsError("inference_params['shape'] only goes with a single unnamed input")
    else:
        if len(model_inputs) != 1:
            raise InferenceParamsError(
                f"the model has {len(model_inputs)} inputs; give inference_params={{'input': {{name: data}}}} with {', '.join(by_name)}"
            )
        items = [(model_inputs[0]["name"], raw)]
    out: dict[str, dict[str, Any]] = {}
    for name, value in items:
        spec = by_name[name]
        if spec.get("dtype", "float32") != "float32":
            raise InferenceParamsError(f"input {name!r} is {spec.get('dtype')}; only float32 inputs can be given from Python")
        data = _flatten(value, f"'input'" if len(items) == 1 and not isinstance(raw, Mapping) else f"'input'][{name!r}")
        if not data:
            raise InferenceParamsError(f"inference_params: input {name!r} is empty")
        out[name] = {"data": data, "shape": _shape_for(name, spec.get("shape"), len(data), params.get("shape"))}
    return out


def _shape_for(name: str, declared: Any, n: int, override: Any) -> list[int]:
    if override is not None:
        if not isinstance(override, (list, tuple)) or not override or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in override):
            raise InferenceParamsError(f"inference_params['shape'] must be a list of positive integers, got {override!r}")
        total = math.prod(override)
        if total != n:
            raise InferenceParamsError(f"inference_params['shape'] {list(override)} holds {total} values, input has {n}")
        if declared is not None and len(declared) != len(override):
            raise InferenceParamsError(f"inference_params['shape'] has rank {len(override)}, the model's input {name!r} has rank {len(declared)}")
        if declared is not None:
            for i, (w, g) in enumerate(zip(declared, override)):
                if isinstance(w, int) and w != g:
                    raise InferenceParamsError(f"inference_params['shape']: dimension {i} is {g}, the model wants {w}")
        return list(override)
    if declared is None:
        return [n]
    fixed = [d for d in declared if isinstance(d, int)]
    free = [i for i, d in enumerate(declared) if not isinstance(d, int)]
    per = math.prod(fixed) if fixed else 1
    dims = "x".join(str(d) for d in declared)
    if len(free) > 1:
        raise InferenceParamsError(f"input {name!r} has shape [{dims}] with several free dimensions; give inference_params['shape']")
    if not free:
        if n != per:
            raise InferenceParamsError(f"input {name!r} needs exactly {per} values (shape [{dims}]), got {n}")
        return list(declared)
    if n % per != 0:
        raise InferenceParamsError(
            f"input {name!r}: {n} values do not fill a whole number of {'x'.join(map(str, fixed))} samples "
            f"(the model's shape is [{', '.join(map(str, declared))}])"
        )
    shape = list(declared)
    shape[free[0]] = n // per
    return shape
