"""`skaffold dev` on a real cluster, as a developer uses it: build, image into the
node, helm install, port-forward; `skaffold verify` passes against it; then an edited
Python file is synced into the running pod, a changed template is rebuilt and rolled
out, and Ctrl-C uninstalls.

skaffold runs in a copy of the working tree (edits never touch the repository) with
the release and namespace skaffold.yaml names. E2E_SKAFFOLD is the command that runs
skaffold against this cluster, resolved inside the copy: hack/cluster/e2e.sh sets
`hack/cluster/skaffold.sh` for the offline cluster; on kind `skaffold` with
SKAFFOLD_KUBE_CONTEXT set does (skaffold loads images into kind itself).
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
import requests
import yaml
from e2elib import ARTIFACTS, ROOT, CommandFailed, restarts, run, wait_until

pytestmark = pytest.mark.e2e

# The first build, the copy into the node, the training Job and the rollout.
FIRST_DEPLOY_TIMEOUT = 900
SYNC_TIMEOUT = 120
REBUILD_TIMEOUT = 600
EXIT_TIMEOUT = 180
FORWARDED = re.compile(r"remote port \d+ -> http://127\.0\.0\.1:(\d+)")


class DevLoop:
    """A running `skaffold dev` in a copy of the tree, and what it printed."""

    def __init__(self, cluster, command: list[str], tree: Path, log: Path, process,
                 release: dict):
        self.cluster = cluster
        self.command = command
        self.tree = tree
        self.log = log
        self.process = process
        self.release = release["name"]
        self.namespace = release["namespace"]
        self.url = ""
        self.pods_before_sync: dict[str, int] = {}

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def running(self) -> bool:
        if self.process.poll() is None:
            return True
        raise CommandFailed(f"skaffold dev exited {self.process.returncode}; the end "
                            f"of its output ({self.log}):\n{self.tail()}")

    def server_pods(self) -> dict[str, int]:
        """Ready server pods that are not going away: name -> restarts."""
        ready = {}
        for pod in self.cluster.server_pods(self.release, self.namespace):
            conditions = {c["type"]: c["status"]
                          for c in pod["status"].get("conditions", [])}
            if conditions.get("Ready") == "True":
                ready[pod["metadata"]["name"]] = restarts(pod)
        return ready

    def get(self, path: str) -> requests.Response | None:
        try:
            return requests.get(self.url + path, timeout=10)
        except requests.RequestException:
            # The forward reconnects while pods roll.
            return None

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.tree / relative
        text = path.read_text()
        assert text.count(old) == 1, f"{relative} no longer holds {old!r} once"
        path.write_text(text.replace(old, new))


def copy_tree(target: Path) -> None:
    """The working tree as git sees it (tracked and untracked, not ignored files), with
    the tool caches shared by a link so nothing is built twice."""
    listed = run(["git", "ls-files", "-z", "--cached", "--others",
                  "--exclude-standard"], timeout=60).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".cache").symlink_to(ROOT / ".cache")


@pytest.fixture(scope="module")
def dev_loop(cluster, steps, tmp_path_factory):
    command = os.environ.get("E2E_SKAFFOLD", "")
    if not command:
        pytest.skip("E2E_SKAFFOLD is not set: no command runs skaffold against this "
                    "cluster (hack/cluster/e2e.sh sets it for the offline cluster)")
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    (release,) = config["deploy"]["helm"]["releases"]
    taken = cluster.kubectl("get", "namespace", release["namespace"], check=False,
                            namespaced=False)
    if taken.strip():
        raise CommandFailed(f"namespace {release['namespace']} already exists; skaffold"
                            f" would deploy into it, so the step stops rather than "
                            f"touch what is there")

    tree = tmp_path_factory.mktemp("skaffold-tree")
    copy_tree(tree)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / f"skaffold-dev-{uuid.uuid4().hex[:6]}.log"
    with log.open("w") as sink:
        process = subprocess.Popen([*shlex.split(command), "dev"], cwd=tree,
                                   stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    loop = DevLoop(cluster, shlex.split(command), tree, log, process, release)
    steps.write(f"[e2e] skaffold dev (pid {process.pid}) writes to {log}")
    try:
        yield loop
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        with steps.step(f"delete namespace {loop.namespace} (skaffold's)"):
            cluster.kubectl("delete", "namespace", loop.namespace, "--wait=true",
                            "--timeout=180s", "--ignore-not-found", namespaced=False,
                            timeout=200)


def test_skaffold_dev_builds_loads_deploys_and_forwards(dev_loop, steps):
    with steps.step("skaffold dev: build, image into the node, deploy, forward"):
        match = wait_until("skaffold forwards the Service to loopback",
                           FIRST_DEPLOY_TIMEOUT,
                           lambda: dev_loop.running()
                           and FORWARDED.search(dev_loop.output()))
        dev_loop.url = f"http://127.0.0.1:{match.group(1)}"
        # Files edited before skaffold has listed them count as the starting state.
        wait_until("skaffold watches the files", 120,
                   lambda: dev_loop.running()
                   and "Watching for changes..." in dev_loop.output())
        wait_until("/readyz answers 200 through skaffold's forward", 300,
                   lambda: getattr(dev_loop.get("/readyz"), "status_code", 0) == 200)
        answer = requests.post(dev_loop.url + "/forecast", json={"horizon": 3},
                               timeout=30)

        assert answer.status_code == 200, answer.text
        assert len(answer.json()["forecast"]) == 3
        assert "Build [sales-forecast] succeeded" in dev_loop.output()
        dev_loop.pods_before_sync = dev_loop.server_pods()
        assert dev_loop.pods_before_sync, "no ready server pod"


def test_skaffold_verify_passes_against_the_release(dev_loop, steps):
    with steps.step("skaffold verify: its forecast check through the Service"):
        # The image the release runs, as `skaffold build --file-output` would list it.
        deployed = re.search(r"Tags used in deployment:\n - sales-forecast -> (\S+)",
                             dev_loop.output())
        assert deployed, "skaffold dev named no deployed image"
        artifacts = dev_loop.tree.parent / "verify-artifacts.json"
        artifacts.write_text(json.dumps({"builds": [
            {"imageName": "sales-forecast", "tag": deployed.group(1)}]}))

        result = subprocess.run([*dev_loop.command, "verify", "--build-artifacts",
                                 str(artifacts)], cwd=dev_loop.tree, text=True,
                                capture_output=True, timeout=420)

        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_an_edited_python_file_is_synced_into_the_running_pod(dev_loop, steps):
    token = uuid.uuid4().hex[:12]
    with steps.step("skaffold dev: a Python edit is synced, workers reload"):
        dev_loop.edit("service/app.py", 'json_response({"status": "alive"})',
                      f'json_response({{"status": "alive", "edit": "{token}"}})')

        def health_has_token():
            dev_loop.running()
            health = dev_loop.get("/healthz")
            return (health is not None and health.status_code == 200
                    and health.json().get("edit") == token)

        wait_until("/healthz answers with the edit", SYNC_TIMEOUT, health_has_token,
                   interval=1)

        assert "Syncing 1 files" in dev_loop.output()
        # The same pods, never restarted: the file was copied in, not rebuilt.
        assert dev_loop.server_pods() == dev_loop.pods_before_sync
        assert dev_loop.output().count("Build [sales-forecast] succeeded") == 1


def test_a_changed_template_is_rebuilt_and_rolled_out(dev_loop, steps):
    token = uuid.uuid4().hex[:12]
    with steps.step("skaffold dev: a template edit is rebuilt and rolled out"):
        dev_loop.edit("service/templates/base.html", '<link rel="icon" href="data:,">',
                      f'<link rel="icon" href="data:,">\n  '
                      f'<meta name="e2e-edit" content="{token}">')

        def page_has_token():
            dev_loop.running()
            page = dev_loop.get("/")
            return page is not None and page.status_code == 200 and token in page.text

        wait_until("the page carries the edited template", REBUILD_TIMEOUT,
                   page_has_token)

        output = dev_loop.output()
        assert output.count("Build [sales-forecast] succeeded") == 2
        # One copy into the node per build (or the note that the node has it).
        assert len(re.findall(r"^load-image: (?:loaded )?sales-forecast:\S+ \(sha256:",
                              output, re.MULTILINE)) == 2
        pods = wait_until("only the new pods are left", 120,
                          lambda: not set(dev_loop.server_pods())
                          & set(dev_loop.pods_before_sync)
                          and dev_loop.server_pods())
        assert pods


def test_ctrl_c_stops_skaffold_and_uninstalls_the_release(dev_loop, steps, cluster):
    with steps.step("skaffold dev: Ctrl-C uninstalls the release"):
        os.killpg(dev_loop.process.pid, signal.SIGINT)
        dev_loop.process.wait(timeout=EXIT_TIMEOUT)

        settings = cluster.settings
        releases = run([settings.helm, "--kubeconfig", settings.kubeconfig, "list",
                        "--namespace", dev_loop.namespace, "--short"],
                       timeout=60).stdout
        assert dev_loop.release not in releases.split(), releases
        assert "Cleaning up..." in dev_loop.output()
        wait_until("every server pod is gone", 120,
                   lambda: not cluster.get("pods", "--namespace", dev_loop.namespace,
                                           "-l", "app.kubernetes.io/component=server",
                                           namespaced=False)["items"])
