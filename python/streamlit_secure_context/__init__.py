"""Private ML inference for Streamlit apps: the model runs in the user's browser, in a
sandboxed, cross-origin-isolated iframe and a Web Worker (the secure-context runtime)."""

from .component import ServedPolicyError, prepare, streamlit_secure_context
from .config import (
    InferenceParamsError,
    ModelPathError,
    SecurityConfig,
    SecurityConfigError,
    compare_policy,
    validate_security_config,
)
from .server import AssetsError, AssetServer, default_server, find_web_dir

__all__ = [
    "AssetServer",
    "AssetsError",
    "InferenceParamsError",
    "ModelPathError",
    "SecurityConfig",
    "SecurityConfigError",
    "ServedPolicyError",
    "compare_policy",
    "default_server",
    "find_web_dir",
    "prepare",
    "streamlit_secure_context",
    "validate_security_config",
]
__version__ = "0.2.0"
