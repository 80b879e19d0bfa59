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
  log "installing torch==$TORCH_VERSION and onnxruntime==$ORT_VERSION (a few minutes the first time)"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q \
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

echo "export GAUNTLET_CACHE=\"$CACHE\""
echo "export PATH=\"$VENV/bin:\$PATH\""
echo "export LIBTORCH_USE_PYTORCH=1"
echo "export LIBTORCH_BYPASS_VERSION_CHECK=\${LIBTORCH_BYPASS_VERSION_CHECK:-0}"
echo "export GAUNTLET_TORCH_LIB=\"$SITE/torch/lib\""
echo "export GAUNTLET_ORT_DYLIB_DEFAULT=\"$ORT_LIB\""
