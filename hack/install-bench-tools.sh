#!/usr/bin/env bash
# Installs what `make bench` (bench/perf) drives and compares against:
#
#   wrk            Debian's HTTP load generator, the client of every run.
#   MLServer       Seldon's model server with its scikit-learn runtime, the reference
#                  for the V2 infer endpoint, in its own venv (.cache/mlserver-venv):
#                  its dependencies (FastAPI, uvicorn, grpc) must not leak into the
#                  project's locks. Its scikit-learn is pinned to the project's, so
#                  it loads the very pipeline the benchmark fits and saves with joblib.
#
# Idempotent: each part is skipped when it is already there (the venv is checked by
# importing its runtime, not by the folder existing, so a half-made venv is redone).
#
# Usage: hack/install-bench-tools.sh   (as root for apt-get; run from anywhere)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${MLSERVER_VENV:-$ROOT/.cache/mlserver-venv}
PYTHON=${PYTHON:-python3.11}
MLSERVER_VERSION=1.7.1
# MLServer 1.7.1 calls an event-loop API that uvloop 0.22 removed: it does not start.
UVLOOP_PIN="uvloop<0.22"

say() { printf '[install-bench-tools] %s\n' "$*"; }
# shellcheck source=lib/apt.sh
source "$ROOT/hack/lib/apt.sh"

pinned() {  # the version of package $1 in the project's runtime lock
    sed -n "s/^$1==\(.*\)$/\1/p" "$ROOT/requirements/runtime.txt"
}

if command -v wrk >/dev/null; then
    say "wrk already installed: $(command -v wrk)"
else
    say "installing Debian's wrk package"
    apt_install wrk wrk
fi

if "$VENV/bin/python" -c "import mlserver, mlserver_sklearn, sklearn" 2>/dev/null; then
    say "MLServer already installed in $VENV"
else
    say "installing MLServer $MLSERVER_VERSION into $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet "mlserver==$MLSERVER_VERSION" \
        "mlserver-sklearn==$MLSERVER_VERSION" "$UVLOOP_PIN" \
        "scikit-learn==$(pinned scikit-learn)" "pandas==$(pinned pandas)" \
        "numpy==$(pinned numpy)" "joblib==$(pinned joblib)"
fi
"$VENV/bin/python" -c "import mlserver, sklearn; print('[install-bench-tools] mlserver',
    mlserver.__version__, 'scikit-learn', sklearn.__version__)"
