"""Helpers of the end-to-end suite: the cluster's own tools as subprocesses, timed
steps, in-cluster traffic jobs, and what to show when a step fails.

Everything goes through the real CLIs (kubectl, helm) against whatever cluster
KUBECONFIG names, so the same suite runs on kind and on the offline cluster of
hack/cluster/. The suite's settings come from the environment:

    KUBECONFIG         the cluster (required)
    E2E_IMAGE          the app image to install (default sales-forecast:dev)
    E2E_IMAGE_LOADER   command that copies a local image into the cluster; the image
                       name is appended (e.g. "kind load docker-image --name kind", or
                       "hack/cluster/load-image.sh" for the offline cluster)
    KUBECTL, HELM      the binaries (default: kubectl and helm on PATH)
    E2E_NAMESPACE      namespace to use (default: a fresh sf-e2e-<random> one)
    E2E_KEEP           1 keeps the namespace after the run, for a look by hand
"""

import json
import os
import re
import shlex
import subprocess
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "sales-forecast"
HERE = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
RELEASE = "sf"


class CommandFailed(AssertionError):
    """A CLI call that failed; the message carries its command line and output."""


@dataclass
class Settings:
    kubeconfig: str
    image: str
    loader: list[str]
    kubectl: str
    helm: str
    namespace: str
    keep: bool

    @classmethod
    def from_env(cls) -> "Settings":
        kubeconfig = os.environ.get("KUBECONFIG", "")
        if not kubeconfig or not Path(kubeconfig.split(":")[0]).is_file():
            raise CommandFailed(
                f"KUBECONFIG is {kubeconfig!r}, which names no file; point it at the "
                f"cluster to test (for the offline cluster: make cluster-up, then "
                f"KUBECONFIG=/var/lib/sales-forecast-cluster/admin.kubeconfig)")
        loader = os.environ.get("E2E_IMAGE_LOADER", "")
        if not loader:
            raise CommandFailed(
                "E2E_IMAGE_LOADER is empty; set it to the command that copies a local "
                "image into the cluster, e.g. 'kind load docker-image --name kind' or "
                "'hack/cluster/load-image.sh'")
        return cls(
            kubeconfig=kubeconfig,
            image=os.environ.get("E2E_IMAGE", "sales-forecast:dev"),
            loader=shlex.split(loader),
            kubectl=os.environ.get("KUBECTL", "kubectl"),
            helm=os.environ.get("HELM", "helm"),
            namespace=os.environ.get("E2E_NAMESPACE")
            or f"sf-e2e-{uuid.uuid4().hex[:6]}",
            keep=os.environ.get("E2E_KEEP") == "1",
        )

    @property
    def image_repository(self) -> str:
        # A tag is what follows the last ':' unless that ':' belongs to a registry port.
        name, _, tag = self.image.rpartition(":")
        if not name or "/" in tag:
            return self.image
        return name

    @property
    def image_tag(self) -> str:
        return self.image[len(self.image_repository) + 1:] or "latest"


def run(args: list[str], *, timeout: float, check: bool = True, env: dict | None = None,
        stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run a command; on failure raise with the command line and both outputs."""
    try:
        result = subprocess.run(args, input=stdin, capture_output=True, text=True,
                                check=False, timeout=timeout, cwd=ROOT,
                                env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as error:
        raise CommandFailed(f"{shlex.join(args)} did not finish within {timeout:.0f} s;"
                            f" output so far:\n{error.stdout or ''}{error.stderr or ''}"
                            ) from None
    if check and result.returncode != 0:
        raise CommandFailed(f"{shlex.join(args)} exited {result.returncode}:\n"
                            f"{result.stdout[-4000:]}{result.stderr[-4000:]}")
    return result


@dataclass
class Cluster:
    """kubectl and helm bound to one kubeconfig and one namespace."""

    settings: Settings

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    def kubectl(self, *args: str, timeout: float = 60, check: bool = True,
                stdin: str | None = None, namespaced: bool = True) -> str:
        base = [self.settings.kubectl, "--kubeconfig", self.settings.kubeconfig]
        if namespaced:
            base += ["--namespace", self.namespace]
        return run([*base, *args], timeout=timeout, check=check, stdin=stdin).stdout

    def get(self, *args: str, namespaced: bool = True) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json",
                                       namespaced=namespaced))

    def apply(self, manifest: dict) -> None:
        self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))

    def helm(self, *args: str, timeout: float = 600) -> str:
        return run([self.settings.helm, "--kubeconfig", self.settings.kubeconfig,
                    "--namespace", self.namespace, *args],
                   timeout=timeout + 30).stdout

    def server_pods(self, release: str = RELEASE,
                    namespace: str | None = None) -> list[dict]:
        """A release's serving pods that are not on their way out (by default the
        suite's release, in its namespace)."""
        pods = self.get("pods", "--namespace", namespace or self.namespace, "-l",
                        f"app.kubernetes.io/instance={release},"
                        "app.kubernetes.io/component=server",
                        namespaced=False)["items"]
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    def one(self, kind: str, component: str) -> dict:
        items = self.get(kind, "-l", f"app.kubernetes.io/instance={RELEASE},"
                         f"app.kubernetes.io/component={component}")["items"]
        if len(items) != 1:
            names = [i["metadata"]["name"] for i in items]
            raise CommandFailed(f"expected one {kind} of component {component!r} in "
                                f"release {RELEASE}, found {names}")
        return items[0]

    def exec_python(self, pod: str, code: str, timeout: float = 60) -> str:
        return self.kubectl("exec", pod, "-c", "server", "--", "python", "-c", code,
                            timeout=timeout)

    def pod_model_version(self, pod: str) -> str:
        """The version one pod serves, asked from inside the pod (not via the
        Service, which would answer from any pod)."""
        reply = self.exec_python(pod, "import urllib.request as u; print(u.urlopen("
                                 "'http://127.0.0.1:8080/model', timeout=5).read()"
                                 ".decode())")
        return json.loads(reply)["version"]

    def current_version(self, pod: str) -> str:
        return self.exec_python(pod, "print(open('/models/CURRENT').read().strip())"
                                ).strip()

    def wait_job(self, name: str, timeout: float) -> dict:
        """Wait for a Job to succeed; raise as soon as it has failed."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get("job", name)
            conditions = {c["type"]: c["status"]
                          for c in job.get("status", {}).get("conditions", [])}
            if conditions.get("Complete") == "True":
                return job
            if conditions.get("Failed") == "True":
                raise CommandFailed(f"Job {name} failed: {job['status']}")
            if time.monotonic() > deadline:
                raise CommandFailed(f"Job {name} not complete after {timeout:.0f} s: "
                                    f"{job.get('status')}")
            time.sleep(2)

    def dump(self) -> str:
        """Events, objects, descriptions and logs of the namespace, for a failure."""
        parts = []

        def section(title: str, *args: str, timeout: float = 60) -> None:
            try:
                text = self.kubectl(*args, timeout=timeout, check=False)
            except CommandFailed as error:
                text = str(error)
            parts.append(f"----- {title}\n{text}")

        section("events", "get", "events", "--sort-by=.lastTimestamp")
        section("objects", "get", "all,pvc,hpa,configmap", "-o", "wide")
        section("pods described", "describe", "pods")
        section("hpa described", "describe", "hpa")
        pods = self.get("pods")["items"]
        for pod in pods:
            name = pod["metadata"]["name"]
            section(f"logs {name}", "logs", name, "--all-containers", "--tail=80")
            restarted = any(s.get("restartCount", 0)
                            for s in pod["status"].get("containerStatuses", []))
            if restarted:
                section(f"previous logs {name}", "logs", name, "--all-containers",
                        "--previous", "--tail=80")
        section("nodes", "describe", "nodes")
        text = "\n".join(parts)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"dump-{int(time.time())}.txt").write_text(text)
        return text


def restarts(pod: dict) -> int:
    return sum(s.get("restartCount", 0)
               for s in pod["status"].get("containerStatuses", []))


def wait_until(what: str, timeout: float, probe, interval: float = 3):
    """Call PROBE until it returns something truthy; fail naming WHAT on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not reached within {timeout:.0f} s (last: {last!r})")


@contextmanager
def port_forward(cluster: Cluster, target: str, port: int, timeout: float = 30):
    """Yield the base URL of a `kubectl port-forward` to TARGET on loopback."""
    args = [cluster.settings.kubectl, "--kubeconfig", cluster.settings.kubeconfig,
            "--namespace", cluster.namespace, "port-forward", "--address", "127.0.0.1",
            target, f"0:{port}"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        deadline = time.monotonic() + timeout
        # kubectl prints "Forwarding from 127.0.0.1:PORT -> 8080" once it listens.
        while True:
            line = process.stdout.readline()
            match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
            if match:
                break
            if not line and process.poll() is not None:
                raise CommandFailed(f"{shlex.join(args)} exited {process.returncode}: "
                                    f"{process.stderr.read()}")
            if time.monotonic() > deadline:
                raise CommandFailed(f"{shlex.join(args)} printed no forwarding line "
                                    f"within {timeout} s")
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def traffic_job(cluster: Cluster, name: str, *, url: str, seconds: int, threads: int,
                pause: float, cpu: str) -> dict:
    """A Job that sends POST /forecast to URL from inside the cluster, for at most
    SECONDS, and prints running totals (see traffic.py). It runs the app image,
    the one image with Python that every cluster under test has."""
    settings = cluster.settings
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "sf-e2e"}},
        "spec": {
            "backoffLimit": 0,
            # A hard stop on top of the script's own deadline.
            "activeDeadlineSeconds": seconds + 60,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/part-of": "sf-e2e"}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                        "runAsGroup": 10001},
                    "containers": [{
                        "name": "traffic",
                        "image": f"{settings.image_repository}:{settings.image_tag}",
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "/e2e/traffic.py", url, str(seconds),
                                    str(threads), str(pause)],
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                      "limits": {"cpu": cpu, "memory": "256Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": False,
                                            "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "script", "mountPath": "/e2e"}],
                    }],
                    "volumes": [{"name": "script",
                                 "configMap": {"name": "sf-e2e-traffic"}}],
                },
            },
        },
    }


def traffic_totals(cluster: Cluster, job: str) -> dict:
    """The last running totals a traffic Job printed ({} before the first)."""
    logs = cluster.kubectl("logs", f"job/{job}", check=False)
    totals = {}
    for line in logs.splitlines():
        if line.startswith("{"):
            totals = json.loads(line)
    return totals


class Steps:
    """Prints each step's outcome and duration as it ends, and a table at the end."""

    def __init__(self, write):
        self.write = write
        self.rows: list[tuple[str, str, float]] = []

    @contextmanager
    def step(self, name: str):
        start = time.monotonic()
        self.write(f"[e2e] {name} ...")
        try:
            yield
        except BaseException:
            elapsed = time.monotonic() - start
            self.rows.append((name, "FAILED", elapsed))
            self.write(f"[e2e] {name}: FAILED after {elapsed:.1f} s")
            raise
        elapsed = time.monotonic() - start
        self.rows.append((name, "ok", elapsed))
        self.write(f"[e2e] {name}: ok in {elapsed:.1f} s")

    def table(self) -> list[str]:
        lines = [f"{'step':58} {'outcome':8} {'seconds':>8}"]
        lines += [f"{name[:58]:58} {outcome:8} {seconds:8.1f}"
                  for name, outcome, seconds in self.rows]
        total = sum(seconds for _, _, seconds in self.rows)
        lines.append(f"{'total':58} {'':8} {total:8.1f}")
        return lines
