#!/usr/bin/env bash
# Provisions the native runtimes Gauntlet links against, from PyPI only:
#   torch==2.13.0 (libtorch for `tch`) and onnxruntime==1.31.1 (libonnxruntime for `ort`),
# in a virtual environment under $GAUNTLET_CACHE (default ~/.cache/gauntlet), outside the clone
# so that CI runs and new clones reuse it. Idempotent: a complete venv is reused as it is.
# Prints `export` lines for the build on stdout; progress goes to stderr.
set -euo pipefail

TORCH_VERSION=2.13.0
ORT_VERSION=1.31.1
CACHE="${GAUNTLET_CACHE:-$HOME/.cache/gauntlet}"
VENV="$CACHE/venv"
STAMP="$VENV/.gauntlet-provisioned-torch${TORCH_VERSION}-ort${ORT_VERSION}"

log() { echo "bootstrap: $*" >&2; }

if [ ! -f "$STAMP" ]; then
  PY="${PYTHON:-python3}"
  command -v "$PY" >/dev/null || { log "python3 not found; install Python 3.9+ first"; exit 2; }
  mkdir -p "$CACHE"
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment at $VENV"
    "$PY" -m venv "$VENV"
  fi
  # torch's wheel with its CUDA libraries unpacks to about 5 GB; say so before pip fails half-way.
  FREE_KB=$(df -Pk "$CACHE" 2>/dev/null | awk 'NR==2 {print $4}' || true)
  if [ -n "$FREE_KB" ] && [ "$FREE_KB" -lt $((6 * 1024 * 1024)) ]; then
    log "warning: $((FREE_KB / 1024)) MB free under $CACHE; the venv needs about 5 GB and the build about 2 GB more"
  fi
  log "installing torch==$TORCH_VERSION and onnxruntime==$ORT_VERSION (a few minutes the first time)"
  # --no-cache-dir: the wheels (about 3 GB with torch's CUDA libraries) are unpacked into the
  # venv anyway; a second copy in pip's cache could fill a small CI disk.
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-cache-dir -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-cache-dir -q \
      "torch==$TORCH_VERSION" "onnxruntime==$ORT_VERSION" "numpy" "onnx" >&2
  touch "$STAMP"
else
  log "reusing $VENV"
fi

SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
ORT_LIB="$SITE/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION"
[ -f "$ORT_LIB" ] || { log "expected $ORT_LIB after install; remove $VENV and run again"; exit 2; }
[ -d "$SITE/torch/lib" ] || { log "expected $SITE/torch/lib after install; remove $VENV and run again"; exit 2; }
log "venv: $VENV"
log "libtorch: $SITE/torch/lib"
log "onnxruntime: $ORT_LIB"

# WordNet for the `sem` attack (parts of speech and lemmas): Debian's wordnet-base database
# files, fetched with `apt-get download` (no root needed once apt lists exist) and unpacked
# with `dpkg-deb -x` into $CACHE/wordnet. A GAUNTLET_WORDNET that holds index.noun wins.
# Never fatal: without it only `sem` is unavailable.
WORDNET_ROOT="$CACHE/wordnet"
find_wordnet() {
  { find "$1" -maxdepth 5 -name index.noun -print 2>/dev/null || true; } | head -n 1 | xargs -r dirname || true
}
WORDNET_DIR=""
if [ -n "${GAUNTLET_WORDNET:-}" ] && [ -n "$(find_wordnet "$GAUNTLET_WORDNET")" ]; then
  WORDNET_DIR="$(find_wordnet "$GAUNTLET_WORDNET")"
  log "wordnet: $WORDNET_DIR (from GAUNTLET_WORDNET)"
elif [ -n "$(find_wordnet "$WORDNET_ROOT")" ]; then
  WORDNET_DIR="$(find_wordnet "$WORDNET_ROOT")"
  log "wordnet: reusing $WORDNET_DIR"
elif command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
  log "fetching Debian's wordnet-base for the sem attack"
  WN_TMP="$(mktemp -d)"
  if (cd "$WN_TMP" && apt-get download -q wordnet-base) >&2 2>&1 \
      && rm -rf "$WORDNET_ROOT.partial" && mkdir -p "$WORDNET_ROOT.partial" \
      && dpkg-deb -x "$(ls "$WN_TMP"/wordnet-base_*.deb | head -n 1)" "$WORDNET_ROOT.partial" \
      && [ -n "$(find_wordnet "$WORDNET_ROOT.partial")" ]; then
    rm -rf "$WORDNET_ROOT" && mv "$WORDNET_ROOT.partial" "$WORDNET_ROOT"
    WORDNET_DIR="$(find_wordnet "$WORDNET_ROOT")"
    log "wordnet: $WORDNET_DIR"
  else
    rm -rf "$WORDNET_ROOT.partial"
    log "WARNING: could not fetch or unpack wordnet-base (apt-get download or dpkg-deb -x failed; 'apt-get update' may help); the sem attack is unavailable until GAUNTLET_WORDNET names a WordNet dict directory"
  fi
  rm -rf "$WN_TMP"
else
  log "WARNING: apt-get/dpkg-deb not found; the sem attack is unavailable until GAUNTLET_WORDNET names a WordNet dict directory"
fi

echo "export GAUNTLET_CACHE=\"$CACHE\""
echo "export PATH=\"$VENV/bin:\$PATH\""
echo "export LIBTORCH_USE_PYTORCH=1"
echo "export LIBTORCH_BYPASS_VERSION_CHECK=\${LIBTORCH_BYPASS_VERSION_CHECK:-0}"
echo "export GAUNTLET_TORCH_LIB=\"$SITE/torch/lib\""
echo "export GAUNTLET_ORT_DYLIB_DEFAULT=\"$ORT_LIB\""
[ -z "$WORDNET_DIR" ] || echo "export GAUNTLET_WORDNET=\"$WORDNET_DIR\""
