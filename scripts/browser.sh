#!/usr/bin/env bash
# Provides what the headless-browser tests need and prints two lines: the Chromium
# executable and the node_modules directory holding playwright-core.
#  - Chromium: Debian's `chromium` package (installed with apt-get when missing and run as
#    root; otherwise it says how to install it);
#  - playwright-core (npm, pinned) in $GAUNTLET_CACHE/browser, installed once; it drives the
#    system Chromium and downloads no browser of its own.
# `make test` calls it before the tests; the server's browser test
# (crates/gauntlet-server/tests/server/browser.rs) reads what it installed.
set -euo pipefail

PLAYWRIGHT_VERSION=1.65.1

CACHE="${GAUNTLET_CACHE:-$HOME/.cache/gauntlet}"
DIR="$CACHE/browser"
STAMP="$DIR/.playwright-core-$PLAYWRIGHT_VERSION"
log() { echo "browser.sh: $*" >&2; }

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian's chromium (once)"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2
    CHROMIUM=$(command -v chromium)
  else
    log "chromium is not installed; install Debian's chromium (sudo apt-get install chromium) and rerun"
    exit 2
  fi
fi
if [ ! -f "$STAMP" ]; then
  command -v npm >/dev/null || { log "npm not found; install Node.js 18+ first"; exit 2; }
  mkdir -p "$DIR"
  log "installing playwright-core@$PLAYWRIGHT_VERSION into $DIR (once; later runs are offline)"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$DIR" --no-audit --no-fund --silent \
    "playwright-core@$PLAYWRIGHT_VERSION" >&2
  touch "$STAMP"
fi
echo "$CHROMIUM"
echo "$DIR/node_modules"
