#!/usr/bin/env bash
# Installs schemathesis (PyPI, pinned) into $GAUNTLET_CACHE/schemathesis-venv once and prints
# the path of its executable. The server's test `schemathesis` runs it against the real
# server (crates/gauntlet-server/tests/server/schemathesis.rs); `make test` calls this
# first, so a fresh machine needs nothing else. Later runs are offline.
set -euo pipefail

ST_VERSION=4.32.5
# hypothesis is pinned too: schemathesis accepts a range, and its generation must not drift.
HYPOTHESIS_VERSION=6.170.17

CACHE="${GAUNTLET_CACHE:-$HOME/.cache/gauntlet}"
VENV="$CACHE/schemathesis-venv"
STAMP="$VENV/.gauntlet-schemathesis-$ST_VERSION"

if [ ! -f "$STAMP" ]; then
  PY="${PYTHON:-python3}"
  command -v "$PY" >/dev/null || { echo "schemathesis.sh: python3 not found; install Python 3.10+ first" >&2; exit 2; }
  mkdir -p "$CACHE"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "schemathesis.sh: creating virtual environment at $VENV" >&2
    "$PY" -m venv "$VENV"
  fi
  echo "schemathesis.sh: installing schemathesis==$ST_VERSION (once; later runs are offline)" >&2
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-cache-dir -q \
      "schemathesis==$ST_VERSION" "hypothesis==$HYPOTHESIS_VERSION" >&2
  "$VENV/bin/schemathesis" --version >&2
  touch "$STAMP"
fi
echo "$VENV/bin/schemathesis"
