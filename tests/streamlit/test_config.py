"""security_config validation: every bad config raises SecurityConfigError with its message."""

import re

import pytest

from streamlit_secure_context import SecurityConfigError, compare_policy, validate_security_config
from streamlit_secure_context.server import POLICY, CSP_DIRECTIVES

SEED = {
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
SERVED = {
    "content-security-policy": "; ".join([*CSP_DIRECTIVES, "frame-ancestors 'self' http://127.0.0.1:8501"]),
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
    "document-isolation-policy": "isolate-and-require-corp",
}
# worker.js's headers (the edge's policy, as data). The engine worker no longer runs under them: the
# sandbox starts it from a blob: URL of the SRI-verified worker.js, so it runs under sandbox.html's
# CSP (SERVED); the union of both is still what compare_policy checks, which can only be stricter.
WORKER = dict(POLICY["headers"]["worker"])


def test_the_seed_config_is_valid_and_normalized():
    c = validate_security_config(SEED)
    assert c.require_isolation and c.require_https
    assert c.sandbox == ("allow-scripts", "allow-same-origin")
    assert c.csp["worker-src"] == ["'self'", "blob:"]
    assert c.to_json()["requireIsolation"] is True


def test_no_config_means_defaults():
    c = validate_security_config(None)
    assert not c.require_isolation and not c.require_https and c.csp == {}
    assert c.sandbox == ("allow-scripts", "allow-same-origin")


BAD = [
    ("not a dict", ["coop"], "security_config must be a dict, got list"),
    ("unknown key", {"cop": "same-origin"}, "security_config: unknown key 'cop' (did you mean 'coop'?)"),
    ("unknown key, no suggestion", {"frobnicate": 1}, "security_config: unknown key 'frobnicate'; known keys: coop, coep, csp, sandbox, requireHTTPS"),
    ("coop unsafe-none", {"coop": "unsafe-none", "coep": "require-corp"}, "security_config['coop'] = 'unsafe-none' does not give cross-origin isolation"),
    ("coop allow-popups", {"coop": "same-origin-allow-popups", "coep": "require-corp"}, "security_config['coop'] = 'same-origin-allow-popups' does not give cross-origin isolation"),
    ("coop unknown", {"coop": "strict", "coep": "require-corp"}, "security_config['coop']: unknown value 'strict'; expected 'same-origin'"),
    ("coop type", {"coop": 1, "coep": "require-corp"}, "security_config['coop'] must be a string, got int"),
    ("coep unsafe-none", {"coop": "same-origin", "coep": "unsafe-none"}, "security_config['coep'] = 'unsafe-none' does not give cross-origin isolation"),
    ("coep unknown", {"coop": "same-origin", "coep": "require-cors"}, "security_config['coep']: unknown value 'require-cors'"),
    ("coep type", {"coop": "same-origin", "coep": None, "csp": 1}, "give both 'coop' and 'coep'"),
    ("coop without coep", {"coop": "same-origin"}, "security_config: give both 'coop' and 'coep' (cross-origin isolation needs both) or neither"),
    ("csp not a dict", {"csp": "default-src 'self'"}, "security_config['csp'] must be a dict of directive -> list of sources, got str"),
    ("unknown CSP directive", {"csp": {"script-scr": ["'self'"]}}, "security_config['csp']: unknown CSP directive 'script-scr' (did you mean 'script-src'?)"),
    ("unknown CSP directive 2", {"csp": {"allow-everything": []}}, "security_config['csp']: unknown CSP directive 'allow-everything'"),
    ("csp sandbox directive", {"csp": {"sandbox": []}}, "security_config['csp']: 'sandbox' cannot be set here: use security_config['sandbox']"),
    ("csp report-uri", {"csp": {"report-uri": ["/r"]}}, "security_config['csp']: 'report-uri' cannot be set here"),
    ("unsafe-eval", {"csp": {"script-src": ["'self'", "'unsafe-eval'"]}}, "security_config['csp']['script-src']: 'unsafe-eval' is unsafe and is never allowed"),
    ("unsafe-inline", {"csp": {"style-src": ["'unsafe-inline'"]}}, "security_config['csp']['style-src']: 'unsafe-inline' is unsafe and is never allowed"),
    ("unsafe-hashes", {"csp": {"script-src": ["'unsafe-hashes'"]}}, "security_config['csp']['script-src']: 'unsafe-hashes' is unsafe"),
    ("star source", {"csp": {"connect-src": ["*"]}}, "security_config['csp']['connect-src']: wildcard source '*' is not allowed; list exact origins"),
    ("star subdomain", {"csp": {"img-src": ["https://*.example.com"]}}, "security_config['csp']['img-src']: wildcard source 'https://*.example.com' is not allowed"),
    ("scheme-only https", {"csp": {"script-src": ["https:"]}}, "security_config['csp']['script-src']: scheme source 'https:' allows any resource of that scheme"),
    ("data: in script-src", {"csp": {"script-src": ["data:"]}}, "security_config['csp']['script-src']: scheme source 'data:' allows any resource"),
    ("blob: in script-src", {"csp": {"script-src": ["blob:"]}}, "security_config['csp']['script-src']: scheme source 'blob:' allows any resource"),
    ("unquoted keyword", {"csp": {"default-src": ["self"]}}, "security_config['csp']['default-src']: keyword 'self' must be quoted: \"'self'\""),
    ("unknown keyword", {"csp": {"default-src": ["'selff'"]}}, "security_config['csp']['default-src']: unknown keyword source 'selff'"),
    ("several sources in one string", {"csp": {"default-src": ["'self' https://a.example"]}}, "holds several sources; give a list with one source per item"),
    ("none with others", {"csp": {"object-src": ["'none'", "'self'"]}}, "security_config['csp']['object-src']: 'none' cannot be combined with other sources"),
    ("empty list", {"csp": {"img-src": []}}, "security_config['csp']['img-src'] is empty; use [\"'none'\"] to allow nothing"),
    ("wasm-unsafe-eval outside scripts", {"csp": {"worker-src": ["'wasm-unsafe-eval'"]}}, "'wasm-unsafe-eval' only means something in script-src"),
    ("bad source", {"csp": {"img-src": ["ht!tp://x"]}}, "security_config['csp']['img-src']: 'ht!tp://x' is not a valid CSP source"),
    ("source not a string", {"csp": {"img-src": [3]}}, "security_config['csp']['img-src']: sources are non-empty strings, got 3"),
    ("sources not a list", {"csp": {"img-src": 3}}, "security_config['csp']['img-src'] must be a list of strings, got int"),
    ("upgrade with values", {"csp": {"upgrade-insecure-requests": ["'self'"]}}, "security_config['csp']['upgrade-insecure-requests'] takes no values"),
    ("trusted types wildcard", {"csp": {"trusted-types": ["*"]}}, "security_config['csp']['trusted-types']: '*' is not an allowed policy name"),
    ("require-trusted-types-for", {"csp": {"require-trusted-types-for": ["'style'"]}}, "security_config['csp']['require-trusted-types-for'] must be"),
    ("sandbox top navigation", {"sandbox": ["allow-scripts", "allow-same-origin", "allow-top-navigation"]}, "security_config['sandbox']: 'allow-top-navigation' is not allowed: it lets the engine frame navigate the Streamlit page away"),
    ("sandbox popups", {"sandbox": ["allow-scripts", "allow-same-origin", "allow-popups"]}, "security_config['sandbox']: 'allow-popups' is not allowed"),
    ("sandbox popups escape", {"sandbox": ["allow-scripts", "allow-same-origin", "allow-popups-to-escape-sandbox"]}, "'allow-popups-to-escape-sandbox' is not allowed"),
    ("sandbox forms", {"sandbox": ["allow-scripts", "allow-same-origin", "allow-forms"]}, "security_config['sandbox']: 'allow-forms' is not allowed"),
    ("sandbox modals", {"sandbox": ["allow-scripts", "allow-same-origin", "allow-modals"]}, "'allow-modals' is not allowed"),
    ("sandbox unknown token", {"sandbox": ["allow-scripts", "allow-same-origin", "allow-scirpts"]}, "security_config['sandbox']: unknown sandbox token 'allow-scirpts' (did you mean 'allow-scripts'?)"),
    ("sandbox missing same-origin", {"sandbox": ["allow-scripts"]}, "security_config['sandbox'] must include allow-same-origin"),
    ("sandbox missing both", {"sandbox": []}, "security_config['sandbox'] must include allow-scripts and allow-same-origin"),
    ("sandbox type", {"sandbox": 5}, "security_config['sandbox'] must be a list of sandbox tokens, got int"),
    ("requireHTTPS type", {"requireHTTPS": "yes"}, "security_config['requireHTTPS'] must be True or False, got 'yes'"),
]


@pytest.mark.parametrize("config,message", [(c, m) for _, c, m in BAD], ids=[n for n, _, _ in BAD])
def test_bad_config_raises_with_a_clear_message(config, message):
    with pytest.raises(SecurityConfigError, match=re.escape(message)):
        validate_security_config(config)


def test_security_config_error_is_a_value_error():
    assert issubclass(SecurityConfigError, ValueError)


# ---------------------------------------------------------------- what is served vs what was asked

def test_served_policy_meets_the_seed_config():
    assert compare_policy(validate_security_config(SEED), SERVED, worker_headers=WORKER) == []


def test_wasm_compiles_in_the_sandbox_document_and_workers_start_from_blob_only():
    # The engine worker is a blob: URL of the verified worker.js and inherits sandbox.html's CSP.
    assert "script-src 'self' 'wasm-unsafe-eval'" in SERVED["content-security-policy"]
    assert "worker-src blob:" in SERVED["content-security-policy"]
    assert "'wasm-unsafe-eval'" not in dict(POLICY["headers"]["document"])["content-security-policy"]


def test_served_policy_allows_more_than_asked():
    p = compare_policy(validate_security_config({"csp": {"script-src": ["'self'"]}}), SERVED, worker_headers=WORKER)
    assert p == ["CSP script-src: the served policy allows 'wasm-unsafe-eval', which security_config does not "
                 "(the engine cannot run without 'wasm-unsafe-eval' in script-src)"]
    # The sandbox document alone says the same: the engine's worker runs under its CSP.
    assert compare_policy(validate_security_config({"csp": {"script-src": ["'self'"]}}), SERVED) == p


def test_directive_the_server_does_not_restrict():
    p = compare_policy(validate_security_config({"csp": {"frame-ancestors": ["'self'"]}}), {"content-security-policy": "default-src 'none'"})
    assert p == ["CSP frame-ancestors: asked for 'self', but the served policy does not restrict it"]


def test_served_none_is_stricter_than_anything():
    assert compare_policy(validate_security_config({"csp": {"object-src": ["https://cdn.example"]}}), SERVED) == []


def test_no_csp_served():
    p = compare_policy(validate_security_config({"csp": {"default-src": ["'self'"]}}), {})
    assert p == ["a CSP was asked for, but sandbox.html is served without Content-Security-Policy"]


def test_isolation_asked_but_no_coep_served():
    p = compare_policy(validate_security_config({"coop": "same-origin", "coep": "require-corp"}), {"cross-origin-opener-policy": "same-origin"})
    assert p == ["isolation was asked for (coep 'require-corp'), but sandbox.html is served without a COEP that allows it (got 'none')"]


def test_isolation_asked_without_coop_or_dip():
    p = compare_policy(validate_security_config({"coop": "same-origin", "coep": "require-corp"}), {"cross-origin-embedder-policy": "require-corp"})
    assert p == ["coop 'same-origin' was asked for, but sandbox.html is served without COOP same-origin or Document-Isolation-Policy"]
