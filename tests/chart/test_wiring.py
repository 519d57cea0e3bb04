"""The chart's objects fit together in ways no schema can see.

Each test renders with Helm's engine and reads the objects back: selectors
against labels, probe ports against container ports, claim names across the
Job and the Deployment, and so on.
"""

import json
import re
from pathlib import PurePosixPath

import pytest
import yaml

from chartlib import CHART, NAMESPACE, RELEASE, ci_render, pod_specs, render

pytestmark = pytest.mark.chart

CONTRACT_SETTINGS = {
    "SALES_FORECAST_MODEL_DIR",
    "SALES_FORECAST_HOST",
    "SALES_FORECAST_PORT",
    "SALES_FORECAST_WORKERS",
    "SALES_FORECAST_THREADS",
    "SALES_FORECAST_TIMEOUT",
    "SALES_FORECAST_GRACEFUL_TIMEOUT",
    "SALES_FORECAST_LOG_LEVEL",
    "SALES_FORECAST_MODEL_NAME",
    "SALES_FORECAST_RELOAD_INTERVAL",
    "SALES_FORECAST_UPLOADS",
    "SALES_FORECAST_UPLOAD_HOSTS",
    "PROMETHEUS_MULTIPROC_DIR",
}


def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def server_container(rendered) -> dict:
    spec = rendered.one("Deployment")["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == "server")


def pod_labels(rendered) -> dict:
    return rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]


def mounts_by_name(container: dict) -> dict:
    return {m["name"]: m for m in container.get("volumeMounts", [])}


def test_default_render_has_the_core_objects(default_render):
    kinds = sorted(o["kind"] for o in default_render.objects)

    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Job",
            "PersistentVolumeClaim",
            "PodDisruptionBudget",
            "Pod",
            "Service",
            "ServiceAccount",
        ]
    )


def test_every_object_is_namespaced_and_labelled(rendered):
    for obj in rendered.objects:
        meta = obj["metadata"]
        assert meta["namespace"] == NAMESPACE, meta["name"]
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE, meta["name"]
        assert len(meta["name"]) <= 63, meta["name"]


def test_deployment_selector_matches_its_own_pods(rendered):
    deployment = rendered.one("Deployment")

    selector = deployment["spec"]["selector"]["matchLabels"]

    assert matches(selector, pod_labels(rendered))


def test_service_selects_server_pods_and_not_training_or_test_pods(rendered):
    selector = rendered.one("Service")["spec"]["selector"]

    assert matches(selector, pod_labels(rendered))
    for name, _ in pod_specs(rendered):
        obj = next(o for o in rendered.objects if o["metadata"]["name"] == name)
        if obj["kind"] == "Deployment":
            continue
        labels = (
            obj["metadata"]["labels"]
            if obj["kind"] == "Pod"
            else obj["spec"]
            .get("template", obj["spec"].get("jobTemplate", {}))
            .get("metadata", {})
            .get("labels", {})
        )
        assert not matches(selector, labels), f"Service would route to {name}"


def test_service_port_targets_the_container_port_by_name(rendered):
    service_port = rendered.one("Service")["spec"]["ports"][0]
    container_ports = {p["name"]: p for p in server_container(rendered)["ports"]}

    assert service_port["name"] == "http"
    assert service_port["targetPort"] in container_ports
    assert container_ports["http"]["containerPort"] == 8080


def test_probes_use_the_contract_paths_on_a_declared_port(rendered):
    container = server_container(rendered)
    port_names = {p["name"] for p in container["ports"]}
    service_targets = {
        p["targetPort"] for p in rendered.one("Service")["spec"]["ports"]
    }

    paths = {}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] in port_names, f"{probe} port {get['port']!r}"
        assert get["port"] in service_targets, f"{probe} port not behind the Service"
        paths[probe] = get["path"]

    assert paths == {
        "startupProbe": "/healthz",
        "readinessProbe": "/readyz",
        "livenessProbe": "/healthz",
    }


def test_hpa_targets_the_deployment_and_replicas_are_left_to_it(default_render):
    hpa = default_render.one("HorizontalPodAutoscaler")
    deployment = default_render.one("Deployment")

    target = hpa["spec"]["scaleTargetRef"]

    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"],
        "Deployment",
        deployment["metadata"]["name"],
    )
    assert "replicas" not in deployment["spec"]
    metric = hpa["spec"]["metrics"][0]["resource"]
    assert metric["name"] == "cpu"
    assert server_container(default_render)["resources"]["requests"]["cpu"]
    assert set(hpa["spec"]["behavior"]) == {"scaleUp", "scaleDown"}


def test_without_autoscaling_the_deployment_sets_replicas():
    rendered = render({"autoscaling": {"enabled": False}, "replicaCount": 3})

    assert rendered.of_kind("HorizontalPodAutoscaler") == []
    assert rendered.one("Deployment")["spec"]["replicas"] == 3


def test_pdb_selects_the_server_pods(default_render):
    pdb = default_render.one("PodDisruptionBudget")

    assert matches(pdb["spec"]["selector"]["matchLabels"], pod_labels(default_render))


def test_topology_spread_counts_server_pods(default_render):
    spec = default_render.one("Deployment")["spec"]["template"]["spec"]

    (constraint,) = spec["topologySpreadConstraints"]

    assert matches(
        constraint["labelSelector"]["matchLabels"], pod_labels(default_render)
    )


def test_job_and_deployment_mount_the_same_claim(rendered):
    deployment_claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in rendered.one("Deployment")["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "models"
    }
    pvcs = [p["metadata"]["name"] for p in rendered.of_kind("PersistentVolumeClaim")]

    assert len(deployment_claims) == 1
    for name, spec in pod_specs(rendered):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        if "models" in volumes:
            claim = volumes["models"]["persistentVolumeClaim"]["claimName"]
            assert {claim} == deployment_claims, name
    if pvcs:
        assert set(pvcs) == deployment_claims


def test_only_training_writes_the_model_store_by_default(default_render):
    server_mount = mounts_by_name(server_container(default_render))["models"]
    job_spec = default_render.one("Job")["spec"]["template"]["spec"]
    job_mount = mounts_by_name(job_spec["containers"][0])["models"]

    assert server_mount["mountPath"] == job_mount["mountPath"] == "/models"
    assert server_mount["readOnly"] is True
    assert not job_mount.get("readOnly", False)


def test_uploads_make_the_server_mount_writable_and_set_the_env():
    rendered = render({"config": {"uploads": True,
                                  "uploadHosts": ["Forecast.example.com", "intra"]}})

    server_mount = mounts_by_name(server_container(rendered))["models"]
    settings = rendered.one("ConfigMap")["data"]

    assert server_mount["readOnly"] is False
    assert settings["SALES_FORECAST_UPLOADS"] == "1"
    assert settings["SALES_FORECAST_UPLOAD_HOSTS"] == "forecast.example.com,intra"


def test_settings_reach_the_pods_through_envfrom(default_render):
    settings = default_render.one("ConfigMap")
    env_from = server_container(default_render)["envFrom"]

    assert env_from == [{"configMapRef": {"name": settings["metadata"]["name"]}}]
    assert CONTRACT_SETTINGS <= set(settings["data"])
    assert settings["data"]["SALES_FORECAST_UPLOADS"] == "0"
    assert settings["data"]["SALES_FORECAST_PORT"] == "8080"
    assert settings["data"]["SALES_FORECAST_MODEL_DIR"] == "/models"


def test_writable_paths_are_emptydir_volumes(default_render):
    container = server_container(default_render)
    mounts = mounts_by_name(container)
    volumes = {
        v["name"]: v
        for v in default_render.one("Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    metrics_dir = default_render.one("ConfigMap")["data"]["PROMETHEUS_MULTIPROC_DIR"]

    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert mounts["tmp"]["mountPath"] == "/tmp"
    assert mounts["metrics"]["mountPath"] == metrics_dir
    assert "emptyDir" in volumes["tmp"] and "emptyDir" in volumes["metrics"]


def test_config_checksum_changes_with_a_setting_and_only_then():
    def checksum(values):
        deployment = render(values).one("Deployment")
        return deployment["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]

    base = checksum({})

    assert checksum({"config": {"workers": 3}}) != base
    assert checksum({"config": {"logLevel": "debug"}}) != base
    assert checksum({"replicaCount": 5, "autoscaling": {"enabled": False}}) == base


def test_termination_grace_outlasts_the_graceful_timeout():
    for graceful in (5, 20, 90):
        rendered = render({"config": {"gracefulTimeoutSeconds": graceful}})
        spec = rendered.one("Deployment")["spec"]["template"]["spec"]
        settings = rendered.one("ConfigMap")["data"]
        pre_stop = spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]

        assert settings["SALES_FORECAST_GRACEFUL_TIMEOUT"] == str(graceful)
        assert spec["terminationGracePeriodSeconds"] > graceful + pre_stop
        assert spec["terminationGracePeriodSeconds"] <= graceful + pre_stop + 30


def test_every_pod_runs_hardened(rendered):
    for name, spec in pod_specs(rendered):
        pod = spec["securityContext"]
        assert spec["automountServiceAccountToken"] is False, name
        assert pod["runAsNonRoot"] is True, name
        assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (
            10001,
            10001,
            10001,
        ), name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["limits"]["memory"], name


def test_service_account_does_not_mount_a_token(default_render):
    account = default_render.one("ServiceAccount")
    spec = default_render.one("Deployment")["spec"]["template"]["spec"]

    assert account["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == account["metadata"]["name"]


def test_model_claim_is_kept_on_uninstall_unless_turned_off():
    kept = render({}).one("PersistentVolumeClaim")["metadata"]["annotations"]
    dropped = render({"modelStore": {"keepOnUninstall": False}}).one(
        "PersistentVolumeClaim"
    )

    assert kept["helm.sh/resource-policy"] == "keep"
    assert "helm.sh/resource-policy" not in dropped["metadata"].get("annotations", {})


def test_model_store_settings_reach_the_claim():
    pvc = render(
        {
            "modelStore": {
                "accessMode": "ReadWriteMany",
                "size": "5Gi",
                "storageClass": "nfs",
            }
        }
    ).one("PersistentVolumeClaim")
    static = render({"modelStore": {"storageClass": "-"}}).one("PersistentVolumeClaim")

    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert pvc["spec"]["storageClassName"] == "nfs"
    assert static["spec"]["storageClassName"] == ""


def test_existing_claim_replaces_the_chart_claim():
    rendered = render({"modelStore": {"existingClaim": "shared-models"}})

    assert rendered.of_kind("PersistentVolumeClaim") == []
    for name, spec in pod_specs(rendered):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        if "models" in volumes:
            assert volumes["models"]["persistentVolumeClaim"]["claimName"] == (
                "shared-models"
            ), name


JOB_NAME = re.compile(rf"{RELEASE}-sales-forecast-train-(\d+)-([0-9a-f]{{8}})")


def job_name(values: dict, **how) -> str:
    return render(values, **how).one("Job")["metadata"]["name"]


def test_training_job_name_changes_with_each_revision():
    first = render({}, revision=1).one("Job")
    upgrade = render({}, revision=2, upgrade=True).one("Job")

    first_name = JOB_NAME.fullmatch(first["metadata"]["name"])
    upgrade_name = JOB_NAME.fullmatch(upgrade["metadata"]["name"])
    assert first_name and first_name[1] == "1"
    assert upgrade_name and upgrade_name[1] == "2"
    assert first_name[2] == upgrade_name[2]
    assert "helm.sh/hook" not in upgrade["metadata"].get("annotations", {})
    assert "ttlSecondsAfterFinished" not in upgrade["spec"]


CSV = "date,sales\n2024-01-01,120\n"


def merged(base: dict, change: dict) -> dict:
    out = dict(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            value = merged(base[key], value)
        out[key] = value
    return out


@pytest.mark.parametrize(
    "change",
    [
        {"image": {"tag": "0.2.0"}},
        {"image": {"digest": "sha256:" + "a" * 64}},
        {"training": {"seriesName": "shop"}},
        {"training": {"resources": {"limits": {"memory": "3Gi"}}}},
        {"training": {"data": {"source": "url",
                               "url": "https://data.example.test/a.csv"}}},
        {"training": {"data": {"configMap": {"csv": CSV + "2024-02-01,131\n"}}}},
        {"training": {"data": {"configMap": {"key": "shop.csv"}}}},
    ],
    ids=["tag", "digest", "series-name", "resources", "source", "csv", "key"],
)
def test_a_change_to_what_training_uses_renames_the_job_within_a_revision(change):
    # `helm template` (Argo CD, skaffold render, kubectl apply) always says
    # revision 1: without the hash a new image would keep the Job's name
    # and meet its immutable pod template.
    base = {"training": {"data": {"source": "configMap", "configMap": {"csv": CSV}}}}

    assert job_name(merged(base, change)) != job_name(base)


def test_what_training_does_not_use_keeps_the_job_name():
    base = job_name({})

    assert job_name({"replicaCount": 5, "autoscaling": {"enabled": False}}) == base
    assert job_name({"config": {"workers": 4}, "podLabels": {"team": "a"}}) == base
    assert job_name({}, release=RELEASE) == base


def test_long_release_names_keep_job_names_within_limits():
    release = "r" * 60
    rendered = render(
        {"retraining": {"enabled": True}}, revision=123456, release=release
    )

    job = rendered.one("Job")["metadata"]["name"]
    cron = rendered.one("CronJob")["metadata"]["name"]

    assert re.fullmatch(r"r+-[0-9a-f]{8}-train-123456-[0-9a-f]{8}", job), job
    assert len(job) <= 63
    assert cron.endswith("-retrain") and len(cron) <= 52


def test_cut_names_of_long_releases_sharing_a_prefix_stay_apart():
    values = {"retraining": {"enabled": True}, "networkPolicy": {"enabled": True}}
    names = []
    for release in ("b" * 44 + "-team-a", "b" * 44 + "-team-b"):
        rendered = render(values, revision=7, release=release)
        names.append({(o["kind"], o["metadata"]["name"]) for o in rendered.objects})

    limits = {"Job": 63, "CronJob": 52, "Pod": 63, "NetworkPolicy": 63}
    for kind, name in names[0] | names[1]:
        assert len(name) <= limits.get(kind, 253), name
    assert names[0].isdisjoint(names[1]), names[0] & names[1]


def test_short_names_are_not_cut_or_hashed():
    rendered = render(
        {"retraining": {"enabled": True}, "networkPolicy": {"enabled": True}}
    )
    names = {o["metadata"]["name"] for o in rendered.objects}

    assert {
        f"{RELEASE}-sales-forecast-retrain",
        f"{RELEASE}-sales-forecast-deny-ingress",
        f"{RELEASE}-sales-forecast-test",
    } <= names


def training_args(rendered) -> list[str]:
    container = rendered.one("Job")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "training"]
    return container["args"]


def arg_after(args: list[str], flag: str) -> str:
    """The value of a flag given as `--flag VALUE` or as `--flag=VALUE`."""
    for index, arg in enumerate(args):
        if arg == flag:
            return args[index + 1]
        if arg.startswith(f"{flag}="):
            return arg.removeprefix(f"{flag}=")
    raise AssertionError(f"{flag} is not among the arguments {args}")


def test_training_defaults_to_the_bundled_data(default_render):
    args = training_args(default_render)

    assert arg_after(args, "--data") == "/app/data/wineind.csv"
    assert arg_after(args, "--model-dir") == "/models"
    assert "--strict" not in args and "--series-col" not in args


@pytest.mark.parametrize(
    "values_file, data_arg",
    [
        ("data-configmap-values.yaml", "/data/shop.csv"),
        ("data-pvc-values.yaml", "/data/exports/monthly.csv"),
        ("data-url-values.yaml", "https://data.example.test/sales/monthly.csv"),
    ],
    ids=["configmap", "pvc", "url"],
)
def test_training_data_sources(values_file, data_arg):
    rendered = ci_render(values_file)
    args = training_args(rendered)
    spec = rendered.one("Job")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}

    assert arg_after(args, "--data") == data_arg
    if values_file.startswith("data-url"):
        assert "data" not in volumes
        assert arg_after(args, "--series-col") == "store" and "--strict" in args
        return
    assert mounts_by_name(spec["containers"][0])["data"]["readOnly"] is True
    if "configmap" in values_file:
        made = [
            c
            for c in rendered.of_kind("ConfigMap")
            if "training-data" in c["metadata"]["name"]
        ]
        assert volumes["data"]["configMap"]["name"] == made[0]["metadata"]["name"]
        assert made[0]["data"]["shop.csv"].startswith("date,sales\n2024-01-01,120")
    else:
        assert volumes["data"]["persistentVolumeClaim"] == {
            "claimName": "sales-history",
            "readOnly": True,
        }


@pytest.mark.parametrize(
    "path", ["sales #2024.csv", "x: y.csv", "exports/{a}.csv", "'quoted'.csv"]
)
def test_a_pvc_path_reaches_the_training_command_whole(path):
    rendered = render(
        {
            "training": {
                "data": {"source": "pvc", "pvc": {"claimName": "h", "path": path}}
            }
        }
    )

    assert arg_after(training_args(rendered), "--data") == f"/data/{path}"


def made_training_data(key: str, csv: str) -> tuple[dict, dict]:
    """The chart-made data ConfigMap and the Job's data volume."""
    rendered = render(
        {
            "training": {
                "data": {"source": "configMap", "configMap": {"key": key, "csv": csv}}
            }
        }
    )
    made = next(
        c
        for c in rendered.of_kind("ConfigMap")
        if c["metadata"]["name"].endswith("-training-data")
    )
    spec = rendered.one("Job")["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v["name"] == "data")
    assert arg_after(training_args(rendered), "--data") == f"/data/{key}"
    return made, volume


@pytest.mark.parametrize(
    "csv",
    [
        "  date,sales\n2024-01-01,120\n",
        "\tdate,sales\n2024-01-01,120",
        "date,sales # note\nkey: value\n- 1\n",
        '"date","sales"\n\n\n',
    ],
    ids=["leading-spaces", "leading-tab", "yaml-syntax", "quotes-blank-lines"],
)
def test_chart_made_training_data_holds_the_csv_exactly(csv):
    made, _ = made_training_data("sales.csv", csv)

    assert made["data"] == {"sales.csv": csv}


@pytest.mark.parametrize("key", [".sales.csv", "sales_2024-01.csv", "a..b"])
def test_unusual_but_valid_data_keys_are_mounted_under_their_name(key):
    made, volume = made_training_data(key, "date,sales\n")

    assert list(made["data"]) == [key]
    assert volume["configMap"]["items"] == [{"key": key, "path": key}]


def test_series_name_and_force_reach_the_training_command():
    plain = training_args(render({}))
    chosen = training_args(
        render({"training": {"seriesName": "wineind", "force": True}}))

    assert "--series-name" not in plain and "--force" not in plain
    assert arg_after(chosen, "--series-name") == "wineind" and "--force" in chosen


def test_the_store_keeps_ten_versions_unless_told_otherwise():
    from training.cli import parse_args

    default = training_args(render({}))
    every = training_args(render({"training": {"keep": 0}}))
    three = training_args(render({"training": {"keep": 3}}))

    assert arg_after(default, "--keep") == "10"
    assert not any(a.startswith("--keep") for a in every)
    assert arg_after(three, "--keep") == "3"
    assert parse_args(["--data", "x.csv", *three[2:]]).keep == 3


def test_names_starting_with_a_dash_reach_training_as_values_not_options():
    from training.cli import parse_args

    names = {"dateColumn": "-date", "salesColumn": "--sales",
             "seriesColumn": "-store", "seriesName": "-1 store"}

    parsed = parse_args(training_args(render({"training": names})))

    assert (parsed.date_col, parsed.sales_col, parsed.series_col,
            parsed.series_name) == ("-date", "--sales", "-store", "-1 store")
    assert str(parsed.data) == "/app/data/wineind.csv"


def test_refused_data_and_unpromoted_versions_fail_the_job_without_retries():
    from training.cli import EXIT_BAD_INPUT, EXIT_NOT_PROMOTED

    rendered = render({"retraining": {"enabled": True}})
    job = rendered.one("Job")["spec"]
    cron = rendered.one("CronJob")["spec"]["jobTemplate"]["spec"]

    for spec in (job, cron):
        rules = spec["podFailurePolicy"]["rules"]
        assert rules[0] == {"action": "FailJob", "onExitCodes": {
            "containerName": "train", "operator": "In",
            "values": [EXIT_BAD_INPUT, EXIT_NOT_PROMOTED]}}
        assert rules[1]["action"] == "Ignore"
        assert spec["template"]["spec"]["containers"][0]["name"] == "train"


def test_a_download_that_may_pass_is_retried_by_the_job(tmp_path, capsys):
    """A data server that is down for a moment must not fail the Job for good: the
    exit code of such a download is not one the podFailurePolicy ends the Job on, so
    training.backoffLimit applies."""
    import socket

    from training.cli import main

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    job = render({}).one("Job")["spec"]
    fail_job = job["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"]

    code = main([f"--data=http://127.0.0.1:{port}/sales.csv",
                 f"--model-dir={tmp_path / 'models'}"])

    assert "Cannot download" in capsys.readouterr().err
    assert code != 0 and code not in fail_job
    assert job["backoffLimit"] > 0


def test_a_url_behind_a_private_ca_is_downloaded_trusting_its_bundle():
    """A data server inside the cluster has a certificate a private CA signed; the
    training pods of the Job and of the CronJob trust exactly the given bundle."""
    rendered = render({
        "retraining": {"enabled": True},
        "training": {"data": {
            "source": "url", "url": "https://csv.data.svc/sales.csv",
            "caBundle": {"configMapName": "kube-root-ca.crt", "key": "ca.crt"}}},
    })
    cron = rendered.one("CronJob")["spec"]["jobTemplate"]["spec"]

    for spec in (rendered.one("Job")["spec"], cron):
        pod = spec["template"]["spec"]
        train = pod["containers"][0]
        env = {e["name"]: e["value"] for e in train["env"]}
        mounts = {m["name"]: m for m in train["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        bundle = PurePosixPath(mounts["ca"]["mountPath"]) / "ca.crt"

        assert env["SSL_CERT_FILE"] == str(bundle)
        assert mounts["ca"]["readOnly"] is True
        assert volumes["ca"]["configMap"] == {
            "name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}


def test_without_a_bundle_the_url_download_trusts_the_image_store():
    rendered = render({"training": {"data": {
        "source": "url", "url": "https://data.example.test/a.csv"}}})
    train = rendered.one("Job")["spec"]["template"]["spec"]["containers"][0]

    assert "SSL_CERT_FILE" not in {e["name"] for e in train["env"]}
    assert "ca" not in {m["name"] for m in train["volumeMounts"]}


def test_a_release_whose_values_predate_the_ca_bundle_still_upgrades():
    # `helm upgrade --reuse-values` keeps the defaults of the chart the release was
    # installed with; null removes the key here the way such an upgrade lacks it.
    for source in ({"source": "url", "url": "https://data.example.test/a.csv"},
                   {"source": "bundled"}):
        rendered = render({"training": {"data": {**source, "caBundle": None}}})
        train = rendered.one("Job")["spec"]["template"]["spec"]["containers"][0]

        assert "SSL_CERT_FILE" not in {e["name"] for e in train["env"]}


def test_existing_data_configmap_is_mounted_not_made():
    rendered = render(
        {
            "training": {
                "data": {"source": "configMap", "configMap": {"name": "history"}}
            }
        }
    )
    volumes = {
        v["name"]: v for v in rendered.one("Job")["spec"]["template"]["spec"]["volumes"]
    }

    assert volumes["data"]["configMap"]["name"] == "history"
    assert [c["metadata"]["name"] for c in rendered.of_kind("ConfigMap")] == [
        f"{RELEASE}-sales-forecast-config"
    ]


def test_retraining_cronjob_trains_like_the_job():
    rendered = render({"retraining": {"enabled": True}})

    job_pod = rendered.one("Job")["spec"]["template"]["spec"]
    cron_pod = rendered.one("CronJob")["spec"]["jobTemplate"]["spec"]["template"][
        "spec"
    ]

    assert cron_pod == job_pod


def test_servicemonitor_scrapes_the_service_http_port():
    rendered = ci_render("servicemonitor-values.yaml")
    monitor = rendered.one("ServiceMonitor")
    service = rendered.one("Service")

    (endpoint,) = monitor["spec"]["endpoints"]

    assert matches(
        monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"]
    )
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_prometheusrule_carries_the_rules_file():
    rule = ci_render("prometheusrule-values.yaml").one("PrometheusRule")
    source = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())

    assert rule["spec"] == {"groups": source["groups"]}


def test_dashboard_configmap_is_labelled_for_the_grafana_sidecar():
    dashboard = next(
        c
        for c in ci_render("dashboard-values.yaml").of_kind("ConfigMap")
        if c["metadata"]["name"].endswith("-dashboard")
    )
    source = json.loads((CHART / "files" / "dashboard.json").read_text())

    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"]["grafana_folder"] == "Sales"
    assert json.loads(dashboard["data"]["sales-forecast.json"]) == source


def test_networkpolicy_admits_the_http_port_and_the_test_pod():
    rendered = ci_render("networkpolicy-values.yaml")
    policies = {p["metadata"]["name"]: p for p in rendered.of_kind("NetworkPolicy")}
    allow = policies[f"{RELEASE}-sales-forecast"]
    deny = policies[f"{RELEASE}-sales-forecast-deny-ingress"]
    test_pod = rendered.one("Pod")
    job_pod = rendered.one("Job")["spec"]["template"]["metadata"]

    (rule,) = allow["spec"]["ingress"]
    peers = rule["from"]

    assert matches(allow["spec"]["podSelector"]["matchLabels"], pod_labels(rendered))
    assert not matches(allow["spec"]["podSelector"]["matchLabels"], job_pod["labels"])
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert any(
        "podSelector" in p
        and matches(p["podSelector"]["matchLabels"], test_pod["metadata"]["labels"])
        for p in peers
    )
    for labels in (
        pod_labels(rendered),
        job_pod["labels"],
        test_pod["metadata"]["labels"],
    ):
        assert matches(deny["spec"]["podSelector"]["matchLabels"], labels)
    assert "ingress" not in deny["spec"] and deny["spec"]["policyTypes"] == ["Ingress"]


def test_ingress_routes_to_the_service_port():
    rendered = ci_render("ingress-values.yaml")
    ingress = rendered.one("Ingress")
    service = rendered.one("Service")

    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]

    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert ingress["spec"]["tls"][0]["secretName"] == "forecast-tls"


def test_helm_test_pod_calls_the_service(default_render):
    (pod,) = default_render.hooks()
    service = default_render.one("Service")
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}

    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert env["BASE_URL"] == (
        f"http://{service['metadata']['name']}.{NAMESPACE}.svc:"
        f"{service['spec']['ports'][0]['port']}"
    )
    assert (
        pod["spec"]["containers"][0]["image"]
        == server_container(default_render)["image"]
    )
    script = pod["spec"]["containers"][0]["args"][0]
    compile(script, "helm-test", "exec")
    assert "/readyz" in script and "/forecast" in script


DIGEST = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"


def test_image_digest_pins_every_container():
    rendered = ci_render("digest-values.yaml")

    for name, spec in pod_specs(rendered):
        for container in spec["containers"]:
            assert container["image"].endswith("@" + DIGEST), name


def test_notes_show_port_forward_and_curl(default_render):
    notes = default_render.notes

    assert f"port-forward service/{RELEASE}-sales-forecast 8080:8080" in notes
    assert "curl -s http://127.0.0.1:8080/readyz" in notes
    assert "/forecast" in notes
    assert f"helm test {RELEASE}" in notes


def test_notes_show_the_ingress_urls_with_their_scheme():
    notes = render(
        {
            "ingress": {
                "enabled": True,
                "hosts": ["forecast.example.test", "plain.example.test"],
                "tls": [{"hosts": ["forecast.example.test"], "secretName": "t"}],
            }
        }
    ).notes

    assert "https://forecast.example.test/" in notes
    assert "http://plain.example.test/" in notes
    assert "example.test" not in ci_render("default").notes


def test_notes_warn_that_uploads_let_anyone_replace_the_model():
    warning = "anyone who can reach the Service can replace the served model"

    notes = render({"config": {"uploads": True}}).notes

    assert warning in notes
    assert "config.uploadHosts" in notes
    assert warning not in ci_render("default").notes
