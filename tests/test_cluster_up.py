"""hack/cluster/up.sh on a running cluster, its daemons stood in for by small
processes: what it does to a kube-proxy whose configuration changed."""

import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("bash") is None,
                                reason="bash is not installed")

# up.sh sourced gives its functions alone; the steps before kube-proxy's are
# stubbed, and running_pid names the stand-in as the running kube-proxy.
SCRIPT = r"""
source hack/cluster/up.sh
for step in make_cgroup_root save_sysctls write_kubelet_config wait_for \
    start_daemon; do
    eval "$step() { :; }"
done
running_pid() { [[ $1 == kube-proxy ]] && printf '%s\n' "$STAND_IN"; }
echo "an earlier configuration" >"$CLUSTER_STATE/kube-proxy-config.yaml"
start_node
"""


def test_a_kube_proxy_that_ignores_sigterm_is_killed_when_its_configuration_changed(
        tmp_path):
    stand_in = subprocess.Popen(["bash", "-c", "trap '' TERM; while :; do sleep 0.1; "
                                 "done"], start_new_session=True)
    try:
        started = time.monotonic()
        result = subprocess.run(
            ["bash", "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True,
            timeout=30, env={**os.environ, "CLUSTER_STATE": str(tmp_path),
                             "CLUSTER_RUN": str(tmp_path / "run"),
                             "CLUSTER_STOP_TIMEOUT": "1",
                             "STAND_IN": str(stand_in.pid)})

        assert result.returncode == 0, result.stderr
        assert stand_in.wait(timeout=5) == -signal.SIGKILL
        assert time.monotonic() - started < 10
        assert "still runs 1s after SIGTERM; killing it" in result.stderr
        assert "kind: KubeProxyConfiguration" in \
            (tmp_path / "kube-proxy-config.yaml").read_text()
    finally:
        if stand_in.poll() is None:
            os.killpg(stand_in.pid, signal.SIGKILL)
            stand_in.wait()
