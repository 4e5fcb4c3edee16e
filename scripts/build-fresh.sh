# Sourced by the build scripts: skip a build whose inputs are unchanged.
#
# A build records a digest of its inputs (file contents and paths, not mtimes: a copied or freshly
# checked-out tree is judged by what it holds) in a stamp file next to its outputs, after it
# succeeded, and skips when the digest is the same and every output is still there. The stamp is
# removed before a build starts, so a failed or interrupted build never looks fresh.
# FORCE_BUILD=1 rebuilds anyway. Cargo builds need none of this: cargo has its own check.

# The digest of everything in the given files and directories, plus stdin's text (settings
# that change the output, such as paths given in the environment).
# A missing input is not an error here (the digest differs from one with it).
inputs_digest() {
  {
    cat
    printf '%s\n' "$@"
    find "$@" -type f -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 -r sha256sum
    true
  } | sha256sum | cut -c1-64
}

# fresh STAMP DIGEST OUTPUT...: true when STAMP holds DIGEST and every OUTPUT exists.
fresh() {
  local stamp=$1 digest=$2
  shift 2
  [ -z "${FORCE_BUILD:-}" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ] || return 1
  for o in "$@"; do [ -e "$o" ] || return 1; done
}

# stale STAMP: the build starts; nothing it leaves behind looks fresh until `stamp`.
stale() { rm -f "$1"; }

# stamp STAMP DIGEST: the build succeeded.
stamp() { mkdir -p "$(dirname "$1")"; printf '%s\n' "$2" > "$1.tmp" && mv "$1.tmp" "$1"; }
