#!/usr/bin/env bash
# Installs the Prometheus server and promtool that `pytest -m prometheus` runs
# (tests/test_prometheus.py) from Debian's "prometheus" package.
#
# Idempotent: when both binaries are already on PATH nothing is done. Debian's
# package would also install a service, but this machine has no init system and
# the tests start their own server on 127.0.0.1 with a private port and data
# directory, so the packaged service is never started here; policy-rc.d keeps
# apt's maintainer scripts from trying to.
#
# Usage: hack/install-prometheus.sh   (as root; needs apt-get)
set -euo pipefail

say() { printf '[install-prometheus] %s\n' "$*"; }
# shellcheck source=lib/apt.sh
source "$(dirname "$0")/lib/apt.sh"

if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
    say "already installed: $(prometheus --version 2>&1 | sed -n 1p)"
    exit 0
fi

require_root "prometheus or promtool" prometheus

# Exit code 101 tells invoke-rc.d not to start the packaged service.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
fi
trap 'if [[ $created_policy -eq 1 ]]; then rm -f "$policy"; fi' EXIT

say "installing Debian's prometheus package"
apt_install "prometheus or promtool" prometheus

say "installed: $(prometheus --version 2>&1 | sed -n 1p)"
promtool --version 2>&1 | sed -n 1p
