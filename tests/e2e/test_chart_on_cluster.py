"""The chart's life on a real cluster, one step per test, in order: install (the
server first, then the training Job), training and readiness, a forecast through the
Service, helm test, autoscaling under load, an upgrade without failed requests,
retraining picked up live, rollback, uninstall.

Each step builds on the one before (`state`), so `make e2e` stops at the first
failure (-x); the failing step's report carries the namespace's events, objects and
logs. Steps print their outcome and duration as they go and in a table at the end.
"""

import hashlib
import json
import math
import re
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests
from e2elib import (
    CHART,
    RELEASE,
    ROOT,
    CommandFailed,
    port_forward,
    restarts,
    run,
    traffic_job,
    traffic_totals,
    wait_until,
)

pytestmark = pytest.mark.e2e

VALUES = Path(__file__).resolve().parent / "values-e2e.yaml"
HORIZON = 12
INSTALL_TIMEOUT = 600
# Server pods of revision 1, before autoscaling is turned on.
FIXED_REPLICAS = 2


def timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


def image_values(cluster) -> list[str]:
    settings = cluster.settings
    return ["--set", f"image.repository={settings.image_repository}",
            "--set", f"image.tag={settings.image_tag}"]


def server_started(cluster) -> list[str]:
    """Names of the server pods whose container has started (probes may still fail)."""
    started = []
    for pod in cluster.server_pods():
        statuses = pod["status"].get("containerStatuses") or [{}]
        if statuses[0].get("started") and "running" in statuses[0].get("state", {}):
            started.append(pod["metadata"]["name"])
    return started


def test_install(cluster, steps, state):
    settings = cluster.settings
    with steps.step(f"load image {settings.image}"):
        run([*settings.loader, settings.image], timeout=600)

    # Revision 1 has no training Job, so its server pods start before any model
    # exists, whatever the scheduler and the image cache do; revision 2 adds the Job.
    # (Installed together, the Job could finish before the server process started, and
    # the next step would have nothing to prove.) Revision 1 also has no HPA and a
    # fixed count of two, so revision 2 turns autoscaling on for a running release.
    with steps.step("helm install without training; the server starts, unready"):
        cluster.helm("install", RELEASE, str(CHART), "--values", str(VALUES),
                     *image_values(cluster), "--set", "training.enabled=false",
                     "--set", "autoscaling.enabled=false",
                     "--set", f"replicaCount={FIXED_REPLICAS}", timeout=120)
        state["installed"] = True
        started = wait_until("a server container passes its startup probe",
                             INSTALL_TIMEOUT, lambda: server_started(cluster))
        for pod in cluster.server_pods():
            status = pod["status"]["containerStatuses"][0]
            assert not status["ready"], f"ready without a model: {status}"
        steps.write(f"[e2e] started without a model: {', '.join(started)}")

    with steps.step("helm upgrade --wait with the training Job"):
        cluster.helm("upgrade", RELEASE, str(CHART), "--values", str(VALUES),
                     *image_values(cluster), "--wait", "--timeout",
                     f"{INSTALL_TIMEOUT}s", timeout=INSTALL_TIMEOUT)
        release = json.loads(cluster.helm("status", RELEASE, "-o", "json"))
        assert release["info"]["status"] == "deployed", release["info"]
        assert release["version"] == 2, release["version"]

    with steps.step("turning autoscaling on kept the pods until the HPA acted"):
        # Without the count written back, Kubernetes defaults it to 1 the moment
        # Helm removes it. The HPA (minReplicas 1) may lower it later, but then it
        # says so in an event.
        replicas = cluster.one("deployment", "server")["spec"]["replicas"]
        events = cluster.get("events")["items"]
        rescaled = [e["message"] for e in events if e["reason"] == "SuccessfulRescale"]
        steps.write(f"[e2e] replicas {replicas} after the upgrade; HPA rescales: "
                    f"{rescaled}")
        assert replicas == FIXED_REPLICAS or rescaled, (
            f"the Deployment went from {FIXED_REPLICAS} to {replicas} pods with no "
            "HPA decision: the upgrade dropped its replica count")


def test_training_job_writes_model_and_waiting_pods_turn_ready(cluster, steps, state):
    with steps.step("training Job completes, waiting pods turn ready in place"):
        job = cluster.one("job", "training")
        job = cluster.wait_job(job["metadata"]["name"], timeout=300)
        pods = cluster.server_pods()
        assert pods, "the release has no server pods"

        # The model the Job wrote, read back from the claim by a server pod.
        name = pods[0]["metadata"]["name"]
        version = cluster.current_version(name)
        metadata = json.loads(cluster.exec_python(
            name, f"print(open('/models/versions/{version}/metadata.json').read())"))
        assert metadata["version"] == version
        state["first_version"] = version
        created = timestamp(metadata["created_at"])

        # Pods whose server started before that model existed had nothing to load at
        # first; they must have become ready on their own, never restarted.
        waited = []
        for pod in pods:
            status = pod["status"]["containerStatuses"][0]
            assert status["ready"], f"{pod['metadata']['name']} is not ready: {status}"
            assert restarts(pod) == 0, f"{pod['metadata']['name']} restarted: {status}"
            started = timestamp(status["state"]["running"]["startedAt"])
            if started < created:
                waited.append(pod["metadata"]["name"])
        assert waited, (f"every server pod started after the model was written "
                        f"({metadata['created_at']}), so none proved it can wait for "
                        f"one; pods: {[p['metadata']['name'] for p in pods]}")
        steps.write(f"[e2e] model {version}; pods that started before it and turned "
                    f"ready without a restart: {', '.join(waited)}")


def local_forecast(tmp: Path) -> dict:
    """Train on the same data with the same code, here, and answer the same request."""
    model_dir = tmp / "models"
    run([sys.executable, "-m", "training", "--data", str(ROOT / "data" / "wineind.csv"),
         "--model-dir", str(model_dir)], timeout=600)
    from service.app import create_app
    from service.config import Settings

    client = create_app(Settings(model_dir=model_dir), watch=False).test_client()
    reply = client.post("/forecast", json={"horizon": HORIZON})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    return reply.get_json()


def test_forecast_through_service_matches_local_training(cluster, steps, state):
    with steps.step("forecast via port-forward equals a local training's"):
        service = cluster.one("service", "server")["metadata"]["name"]
        with port_forward(cluster, f"service/{service}", 8080) as base:
            reply = requests.post(f"{base}/forecast", json={"horizon": HORIZON},
                                  timeout=30)
        assert reply.status_code == 200, reply.text
        remote = reply.json()
        assert remote["model_version"] == state["first_version"]

        # The image's bundled data must be the repository's, or the comparison is moot.
        pod = cluster.server_pods()[0]["metadata"]["name"]
        image_sha = cluster.exec_python(
            pod, "import hashlib; print(hashlib.sha256(open('/app/data/wineind.csv',"
            " 'rb').read()).hexdigest())").strip()
        local_sha = hashlib.sha256((ROOT / "data" / "wineind.csv").read_bytes()
                                   ).hexdigest()
        assert image_sha == local_sha, \
            "the image bundles other data than data/wineind.csv"

        with tempfile.TemporaryDirectory() as tmp:
            local = local_forecast(Path(tmp))
        got = [(p["date"], p["sales"]) for p in remote["forecast"]]
        want = [(p["date"], p["sales"]) for p in local["forecast"]]
        assert [d for d, _ in got] == [d for d, _ in want]
        for (date, a), (_, b) in zip(got, want):
            assert math.isclose(a, b, rel_tol=1e-9), (date, a, b)
        steps.write(f"[e2e] {len(got)} months equal within 1e-9; first "
                    f"{got[0][0]}: {got[0][1]:.3f}")


def test_helm_test_passes(cluster, steps):
    with steps.step("helm test"):
        # No --logs: the test pod's hook-delete-policy removes it once it succeeds,
        # before helm could read its log; a failed one stays for the failure dump.
        out = cluster.helm("test", RELEASE, "--timeout", "300s", timeout=300)
        assert re.search(r"Phase:\s+Succeeded", out), out


def hpa_status(cluster) -> dict:
    return cluster.one("hpa", "server").get("status", {})


def cpu_utilization(status: dict) -> int | None:
    metrics = status.get("currentMetrics") or [{}]
    return metrics[0].get("resource", {}).get("current", {}).get("averageUtilization")


def test_hpa_scales_up_under_load_and_back_down(cluster, steps, state):
    hpa = cluster.one("hpa", "server")
    low = hpa["spec"]["minReplicas"]
    service = cluster.one("service", "server")["metadata"]["name"]
    url = f"http://{service}.{cluster.namespace}.svc:8080"

    with steps.step(f"metrics reach the HPA, which settles at {low}"):
        wait_until("the HPA reads a CPU figure", 180,
                   lambda: cpu_utilization(hpa_status(cluster)) is not None)
        # Revision 1 ran a fixed count above minReplicas: scaling up proves
        # something only from minReplicas.
        wait_until(f"the idle release at {low} pods", 180, lambda: (
            hpa_status(cluster).get("desiredReplicas") == low
            and len(cluster.server_pods()) == low), interval=5)

    with steps.step(f"HPA scales above {low} under in-cluster load"):
        cluster.apply(traffic_job(cluster, "sf-e2e-load", url=url, seconds=240,
                                  threads=8, pause=0, cpu="1"))

        def scaled():
            status = hpa_status(cluster)
            deployment = cluster.one("deployment", "server")["status"]
            if status.get("desiredReplicas", 0) > low and \
                    deployment.get("readyReplicas", 0) > low:
                return (status["desiredReplicas"], deployment["readyReplicas"],
                        status.get("currentMetrics"))
            return None

        try:
            desired, ready, metrics = wait_until("scale-up", 240, scaled, interval=5)
        finally:
            load = traffic_totals(cluster, "sf-e2e-load")
            cluster.kubectl("delete", "job", "sf-e2e-load", "--wait=true",
                            "--cascade=foreground", timeout=120)
        steps.write(f"[e2e] scaled to {desired} desired / {ready} ready; load sent "
                    f"{load}; metrics {json.dumps(metrics)}")
        assert load.get("ok", 0) > 0, f"the load job got no answer: {load}"

    with steps.step(f"HPA scales back to {low} after the load"):
        wait_until("scale-down", 300, lambda: (
            hpa_status(cluster).get("desiredReplicas") == low
            and len(cluster.server_pods()) == low), interval=5)


def test_upgrade_rolls_pods_without_failed_requests(cluster, steps, state):
    service = cluster.one("service", "server")["metadata"]["name"]
    url = f"http://{service}.{cluster.namespace}.svc:8080"
    before = {p["metadata"]["uid"] for p in cluster.server_pods()}

    with steps.step("helm upgrade with a client running throughout"):
        cluster.apply(traffic_job(cluster, "sf-e2e-client", url=url, seconds=300,
                                  threads=2, pause=0.05, cpu="250m"))
        wait_until("the client's first answers", 120,
                   lambda: traffic_totals(cluster, "sf-e2e-client").get("ok", 0) > 0)

        # A changed service setting changes the ConfigMap checksum: the pods roll. The
        # retraining CronJob comes with it, for the next step.
        cluster.helm("upgrade", RELEASE, str(CHART), "--values", str(VALUES),
                     *image_values(cluster), "--set", "config.logLevel=debug",
                     "--set", "retraining.enabled=true", "--wait", "--timeout",
                     f"{INSTALL_TIMEOUT}s", timeout=INSTALL_TIMEOUT)
        deployment = cluster.one("deployment", "server")["metadata"]["name"]
        cluster.kubectl("rollout", "status", f"deployment/{deployment}",
                        "--timeout=300s", timeout=320)
        # Old pods stop serving only after their preStop pause; let the client see
        # that whole window before counting.
        time.sleep(15)
        totals = traffic_totals(cluster, "sf-e2e-client")
        failures = [line for line in cluster.kubectl(
            "logs", "job/sf-e2e-client").splitlines() if line.startswith("FAILED")]
        cluster.kubectl("delete", "job", "sf-e2e-client", "--wait=true",
                        "--cascade=foreground", timeout=120)

        after = {p["metadata"]["uid"] for p in cluster.server_pods()}
        assert not before & after, "the upgrade left old pods running: nothing rolled"
        steps.write(f"[e2e] client during the rollout: {totals}")
        assert totals.get("ok", 0) > 0
        assert totals.get("failed") == 0 and not failures, failures[:10]


def test_retraining_is_served_without_restart(cluster, steps, state):
    with steps.step("a retraining run is served live by every pod"):
        # The upgrade's own training Job must be done, or it could publish last.
        cluster.wait_job(cluster.one("job", "training")["metadata"]["name"], 300)
        pods = cluster.server_pods()
        first = pods[0]["metadata"]["name"]
        old_version = cluster.current_version(first)
        before = {p["metadata"]["name"]: restarts(p) for p in pods}

        cronjob = cluster.one("cronjob", "training")["metadata"]["name"]
        cluster.kubectl("create", "job", "sf-e2e-retrain", f"--from=cronjob/{cronjob}")
        cluster.wait_job("sf-e2e-retrain", timeout=300)
        new_version = cluster.current_version(first)
        assert new_version != old_version, "the retraining run published no new version"

        wait_until("every pod serves the new version", 120, lambda: all(
            cluster.pod_model_version(name) == new_version for name in before))
        after = {p["metadata"]["name"]: restarts(p) for p in cluster.server_pods()}
        kept = {name: after.get(name) for name in before}
        assert kept == before, f"pods replaced or restarted: {before} -> {after}"
        # The autoscaler may add a pod meanwhile: loading the new version costs each
        # worker CPU, counted against the suite's small request. It is no restart,
        # and it starts on the new version.
        added = sorted(set(after) - set(before))
        assert all(cluster.pod_model_version(name) == new_version for name in added), \
            f"a pod added meanwhile ({added}) does not serve {new_version}"
        steps.write(f"[e2e] {old_version} -> {new_version} on {sorted(before)} "
                    f"without a restart")
        state["retrained_version"] = new_version


def test_rollback_restores_the_trained_revision(cluster, steps, state):
    with steps.step("helm rollback to revision 2"):
        cluster.helm("rollback", RELEASE, "2", "--wait", "--timeout",
                     f"{INSTALL_TIMEOUT}s", timeout=INSTALL_TIMEOUT)
        history = json.loads(cluster.helm("history", RELEASE, "-o", "json"))
        assert [h["revision"] for h in history] == [1, 2, 3, 4], history
        assert "Rollback to 2" in history[-1]["description"], history[-1]

        values = json.loads(cluster.helm("get", "values", RELEASE, "-o", "json"))
        assert values.get("config", {}).get("logLevel") in (None, "info"), values
        cronjobs = cluster.get("cronjob", "-l", f"app.kubernetes.io/instance={RELEASE}")
        assert not cronjobs["items"], "the rollback left revision 3's CronJob behind"
        # The chart documents that a rollback re-creates the training Job of the
        # revision it returns to; that Job trains once more.
        job = cluster.one("job", "training")
        # <release>-sales-forecast-train-<revision>-<hash of the Job's inputs>
        assert re.search(r"-train-2-[0-9a-f]{8}$", job["metadata"]["name"]), job[
            "metadata"]["name"]
        cluster.wait_job(job["metadata"]["name"], 300)
        for pod in cluster.server_pods():
            status = pod["status"]["containerStatuses"][0]
            assert status["ready"], pod["metadata"]["name"]


def test_an_upgrade_that_would_change_the_model_claim_is_refused_by_name(cluster,
                                                                        steps):
    """Kubernetes refuses the whole upgrade with "spec is immutable"; the chart
    names the value and what to do instead, before anything changes."""
    with steps.step("upgrades changing the claim's access mode or class are refused"):
        claim = cluster.one("pvc", "model-store")
        name = claim["metadata"]["name"]
        before = json.loads(cluster.helm("history", RELEASE, "-o", "json"))
        asked = {"accessMode": "ReadWriteMany", "storageClass": "no-such-class"}
        for value, wanted in asked.items():
            with pytest.raises(CommandFailed) as refused:
                cluster.helm("upgrade", RELEASE, str(CHART), "--values", str(VALUES),
                             *image_values(cluster), "--set",
                             f"modelStore.{value}={wanted}")
            message = " ".join(str(refused.value).split())
            assert f"modelStore.{value}: the model claim {name} exists with" \
                in message, message
            assert "set modelStore.existingClaim" in message, message
        assert json.loads(cluster.helm("history", RELEASE, "-o", "json")) == before
        assert cluster.one("pvc", "model-store")["metadata"]["uid"] == \
            claim["metadata"]["uid"]


def test_uninstall_keeps_the_model_claim(cluster, steps, state):
    with steps.step("helm uninstall; the model claim and its models stay"):
        claim = cluster.one("pvc", "model-store")["metadata"]["name"]
        cluster.helm("uninstall", RELEASE, "--wait", "--timeout", "300s", timeout=300)
        state["installed"] = False

        selector = f"app.kubernetes.io/instance={RELEASE}"
        left = cluster.get("deployment,service,hpa,job,cronjob,configmap,pod", "-l",
                           selector)["items"]
        left = [f"{o['kind']}/{o['metadata']['name']}" for o in left
                if not o["metadata"].get("deletionTimestamp")]
        assert not left, f"helm uninstall left release objects: {left}"

        kept = cluster.get("pvc", claim)
        assert kept["status"]["phase"] == "Bound", kept["status"]
        # Read the claim back with a throwaway pod: every version trained is there.
        listing = read_claim(cluster, claim)
        assert state["retrained_version"] in listing["versions"], listing
        assert listing["current"] in listing["versions"], listing
        steps.write(f"[e2e] claim {claim} kept with {len(listing['versions'])} "
                    f"versions, CURRENT {listing['current']}")


def read_claim(cluster, claim: str) -> dict:
    settings = cluster.settings
    script = ("import json, os; print(json.dumps({'current': open('/models/CURRENT')"
              ".read().strip(), 'versions': sorted(os.listdir('/models/versions'))}))")
    cluster.apply({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "sf-e2e-claim-reader"},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                "runAsGroup": 10001, "fsGroup": 10001},
            "containers": [{
                "name": "reader",
                "image": f"{settings.image_repository}:{settings.image_tag}",
                "imagePullPolicy": "IfNotPresent",
                "command": ["python", "-c", script],
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "models", "mountPath": "/models",
                                  "readOnly": True}],
            }],
            "volumes": [{"name": "models",
                         "persistentVolumeClaim": {"claimName": claim}}],
        },
    })
    wait_until("the claim reader finishes", 120, lambda: cluster.get(
        "pod", "sf-e2e-claim-reader")["status"].get("phase") in ("Succeeded", "Failed"))
    out = cluster.kubectl("logs", "sf-e2e-claim-reader")
    cluster.kubectl("delete", "pod", "sf-e2e-claim-reader", "--wait=true")
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise CommandFailed(f"the claim reader printed no JSON: {out!r}") from None


def test_nothing_left_running(cluster, steps):
    with steps.step("no pod of the suite is left"):
        pods = cluster.get("pods")["items"]
        running = [p["metadata"]["name"] for p in pods
                   if p["status"].get("phase") in ("Pending", "Running")
                   and not p["metadata"].get("deletionTimestamp")]
        assert not running, running
