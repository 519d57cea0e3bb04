#!/usr/bin/env bash
# Installs what `pytest -m browser` (tests/test_browser.py) drives: Debian's
# chromium, and the Playwright Python package pinned in requirements/dev.txt into
# the project venv. Playwright is only the driver here: it is pointed at
# /usr/bin/chromium and never downloads a browser of its own.
#
# Idempotent: each part is installed only when missing.
#
# Usage: hack/install-browser.sh   (as root for apt-get; run after `make venv`)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[install-browser] %s\n' "$*"; }
# shellcheck source=lib/apt.sh
source hack/lib/apt.sh

VENV=${VENV:-.venv}
# Playwright's own browser download must never run, whatever calls pip.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

if command -v chromium >/dev/null; then
    say "chromium already installed: $(chromium --version 2>/dev/null | sed -n 1p)"
else
    say "installing Debian's chromium"
    # DejaVu gives the screenshots readable text on a machine with no other fonts.
    packages=(chromium fonts-dejavu-core)
    apt_install chromium "${packages[@]}"
    say "installed: $(chromium --version 2>/dev/null | sed -n 1p)"
fi

pin=$(grep -E '^playwright==' requirements/dev.txt || true)
if [[ -z $pin ]]; then
    say "requirements/dev.txt pins no playwright version; add one (playwright==X.Y.Z)." >&2
    exit 1
fi
if [[ ! -x $VENV/bin/python ]]; then
    say "no virtual environment at $VENV; run 'make venv' first." >&2
    exit 1
fi
installed=$("$VENV/bin/python" -c \
    'import importlib.metadata as m; print(m.version("playwright"))' 2>/dev/null || true)
if [[ "playwright==$installed" == "$pin" ]]; then
    say "$pin already in $VENV"
else
    say "installing $pin into $VENV"
    "$VENV/bin/python" -m pip install --quiet "$pin"
fi
