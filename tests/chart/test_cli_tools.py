"""The chart and skaffold.yaml through the real command-line tools.

helm (lint --strict, template, package), kubeconform (strict, on schemas
made offline from kubernetes-validate's), and skaffold (diagnose, render
--offline). All are built at pinned versions by hack/install-chart-tools.sh.
"""

import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from chartlib import (
    CHART,
    NAMESPACE,
    NEWEST_KUBE,
    OLDEST_KUBE,
    RELEASE,
    REPO,
    ci_render,
    need_tool,
    values_sets,
)

pytestmark = pytest.mark.chart

CRD_KINDS = ("ServiceMonitor", "PrometheusRule")


def run(command, *, timeout=300, env=None, cwd=REPO):
    return subprocess.run(
        [str(c) for c in command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def values_args(values_set):
    if values_set == "default":
        return []
    return ["--values", CHART / "ci" / values_set]


@pytest.fixture(scope="module")
def helm_cli():
    return need_tool("helm")


def test_helm_reports_the_pinned_version(helm_cli):
    result = run([helm_cli, "version", "--short"])

    assert result.stdout.startswith("v3.21.4"), result.stdout + result.stderr


def test_helm_lint_strict_passes_for_every_values_set(helm_cli, values_set):
    result = run([helm_cli, "lint", "--strict", CHART, *values_args(values_set)])

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


def test_helm_template_accepts_global_values(helm_cli):
    result = run([helm_cli, "template", RELEASE, CHART, "--set", "global.x=1"])

    assert result.returncode == 0, result.stderr


def test_helm_lint_strict_fails_on_a_bad_value(helm_cli):
    result = run([helm_cli, "lint", "--strict", CHART, "--set", "service.port=0"])

    assert result.returncode != 0
    assert "/service/port" in result.stdout + result.stderr


def test_helm_template_matches_the_engine_render(helm_cli, values_set):
    result = run(
        [
            helm_cli,
            "template",
            RELEASE,
            CHART,
            "--namespace",
            NAMESPACE,
            *values_args(values_set),
        ]
    )
    assert result.returncode == 0, result.stderr

    cli = sorted(
        (d["kind"], d["metadata"]["name"], json.dumps(d, sort_keys=True))
        for d in yaml.safe_load_all(result.stdout)
        if d
    )
    engine = sorted(
        (o["kind"], o["metadata"]["name"], json.dumps(o, sort_keys=True))
        for o in ci_render(values_set).objects
    )

    assert cli == engine


def test_helm_template_refuses_a_cluster_older_than_kubeversion(helm_cli):
    result = run([helm_cli, "template", RELEASE, CHART, "--kube-version", "1.29.9"])

    assert result.returncode != 0
    assert "kubeVersion" in result.stderr


@pytest.mark.parametrize("release", ["1st-forecast", "2024"])
def test_a_service_name_starting_with_a_digit_stops_before_1_36(helm_cli, release):
    command = [helm_cli, "template", release, CHART, "--kube-version"]

    old = run([*command, "1.35.4"])
    new = run([*command, "1.36.0"])
    renamed = run([*command, "1.35.4", "--set", "fullnameOverride=forecast"])

    assert old.returncode != 0
    assert "starts with a digit" in old.stderr
    assert "release name that starts with a letter" in old.stderr
    assert new.returncode == 0, new.stderr
    assert renamed.returncode == 0, renamed.stderr


def test_helm_package_leaves_out_ci_values(helm_cli, tmp_path):
    result = run([helm_cli, "package", CHART, "--destination", tmp_path])
    assert result.returncode == 0, result.stderr

    (archive,) = tmp_path.glob("sales-forecast-*.tgz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()

    assert "sales-forecast/values.schema.json" in names
    assert "sales-forecast/templates/tests/test-forecast.yaml" in names
    assert not [n for n in names if "/ci/" in n]


def standalone_schemas(version: str, kinds: set[str], root: Path) -> Path:
    """kubernetes-validate's strict schemas as self-contained files.

    Its files point into a shared /api/_definitions.json; kubeconform wants
    one file per kind, so the definitions are copied in and the references
    made local. File names (deployment-apps-v1.json) already follow
    kubeconform's {{ .ResourceKind }}{{ .KindSuffix }} pattern.
    """
    source = (
        Path(kubernetes_validate.__file__).parent
        / "kubernetes-json-schema"
        / f"v{version}-local-strict"
    )
    target = root / f"v{version}-standalone-strict"
    target.mkdir(parents=True, exist_ok=True)
    definitions = json.loads((source / "_definitions.json").read_text())["$defs"]

    for path in source.glob("*.json"):
        if path.name.split("-")[0] not in kinds:
            continue
        text = path.read_text().replace('"/api/_definitions.json#/$defs/', '"#/$defs/')
        schema = json.loads(text)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$defs"] = definitions
        (target / path.name).write_text(json.dumps(schema))
    return root


@pytest.fixture(scope="module")
def kubeconform_run(tmp_path_factory):
    kubeconform = need_tool("kubeconform")
    root = tmp_path_factory.mktemp("kubeconform")
    manifests = root / "manifests"
    manifests.mkdir()
    kinds = set()
    for name in values_sets():
        objects = ci_render(name).objects
        kinds |= {o["kind"].lower() for o in objects}
        (manifests / name).write_text(yaml.safe_dump_all(objects, sort_keys=False))
    schemas = root / "schemas"
    for version in (OLDEST_KUBE, NEWEST_KUBE):
        standalone_schemas(version, kinds, schemas)

    def validate(version, path=manifests):
        location = (
            f"{schemas}/{{{{ .NormalizedKubernetesVersion }}}}-standalone"
            "{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
        )
        # The prometheus-operator kinds have no Kubernetes schema; they are
        # checked with prometheus-operator's models in
        # test_kubernetes_schemas.py, and named here so nothing else slips.
        return run(
            [
                kubeconform,
                "-strict",
                "-summary",
                "-output",
                "json",
                "-kubernetes-version",
                version,
                "-schema-location",
                location,
                "-skip",
                ",".join(CRD_KINDS),
                path,
            ]
        )

    return validate


@pytest.mark.parametrize("version", [OLDEST_KUBE, NEWEST_KUBE])
def test_kubeconform_strict_accepts_every_rendered_object(kubeconform_run, version):
    result = kubeconform_run(version)
    report = json.loads(result.stdout)

    problems = [
        f"{r['kind']}/{r['name']} ({r['filename']}): {r['msg']}"
        for r in report["resources"]
        if r["status"] not in ("statusValid", "statusSkipped")
    ]

    assert result.returncode == 0 and not problems, "\n".join(problems) or result.stderr
    assert report["summary"]["valid"] > 50
    assert report["summary"]["invalid"] == report["summary"]["errors"] == 0


def test_kubeconform_rejects_an_unknown_field(kubeconform_run, tmp_path):
    deployment = ci_render("default").one("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(deployment))

    result = kubeconform_run(NEWEST_KUBE, broken)

    assert result.returncode != 0
    assert "livenesProbe" in result.stdout


# Not interactive: skaffold then never shows its usage-data prompt, which would
# write collect-metrics: true into the scratch global config on the first run.
SKAFFOLD_ENV = {
    "SKAFFOLD_UPDATE_CHECK": "false",
    "SKAFFOLD_INTERACTIVE": "false",
}


@pytest.fixture(scope="module")
def skaffold_cli(helm_cli, tmp_path_factory):
    skaffold = need_tool("skaffold")
    home = tmp_path_factory.mktemp("skaffold-home")
    # skaffold runs `helm`, so the pinned one must come first on PATH; its
    # global config goes to a scratch HOME so no developer setting leaks in.
    env = {
        **SKAFFOLD_ENV,
        "PATH": f"{Path(helm_cli).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "KUBECONFIG": str(home / "no-cluster"),
    }
    return skaffold, env


def test_skaffold_reports_the_pinned_version(skaffold_cli):
    skaffold, env = skaffold_cli

    result = run([skaffold, "version"], env=env)

    assert result.stdout.strip() == "v2.19.0", result.stdout + result.stderr


def test_skaffold_diagnose_parses_the_config(skaffold_cli):
    skaffold, env = skaffold_cli

    result = run([skaffold, "diagnose", "--yaml-only"], env=env)

    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert re.fullmatch(r"skaffold/v4beta\d+", config["apiVersion"])
    (artifact,) = config["build"]["artifacts"]
    assert artifact["image"] == "sales-forecast"
    assert config["build"]["local"]["push"] is False


def test_skaffold_dev_profile_syncs_python_and_reloads(skaffold_cli):
    skaffold, env = skaffold_cli

    result = run([skaffold, "diagnose", "--yaml-only", "--profile", "dev"], env=env)

    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    artifact = config["build"]["artifacts"][0]
    sync = artifact["sync"]["manual"]
    assert {s["src"] for s in sync} == {"service/**/*.py", "training/**/*.py"}
    assert {s["dest"] for s in sync} == {"/app"}
    assert artifact["docker"]["buildArgs"]["APP_FILES_OWNER"] == "10001:10001"
    (release,) = config["deploy"]["helm"]["releases"]
    # skaffold keeps setValues as strings and passes them with --set, which
    # turns "true" into a boolean again.
    assert release["setValues"]["config.reloadCode"] == "true"
    assert release["setValues"]["securityContext.readOnlyRootFilesystem"] == "false"


def test_skaffold_offline_cluster_profile_builds_on_the_local_base_and_loads(
        skaffold_cli):
    skaffold, env = skaffold_cli

    result = run([skaffold, "diagnose", "--yaml-only", "--profile",
                  "dev,offline-cluster"], env=env)

    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    artifact = config["build"]["artifacts"][0]
    # Both profiles change the build arguments; neither may drop the other's.
    assert artifact["docker"]["buildArgs"] == {
        "APP_FILES_OWNER": "10001:10001",
        "BASE_IMAGE": "sales-forecast-base:bookworm",
    }
    assert artifact["docker"]["secrets"] == [
        {"id": "pip_ca", "src": "/etc/ssl/certs/ca-certificates.crt"}]
    assert artifact["hooks"]["after"] == [
        {"command": ["hack/cluster/load-image.sh", "--skaffold"]}]
    # BuildKit comes from DOCKER_BUILDKIT=1 (hack/cluster/skaffold.sh), not from
    # useBuildkit, which adds a buildx-only flag.
    assert "useBuildkit" not in config["build"]["local"]
    assert config["build"]["local"]["useDockerCLI"] is True
    for hook in artifact["hooks"]["before"] + artifact["hooks"]["after"]:
        assert (REPO / hook["command"][0]).is_file(), hook


def test_skaffold_default_build_is_the_release_image(skaffold_cli):
    skaffold, env = skaffold_cli

    result = run([skaffold, "diagnose", "--yaml-only"], env=env)

    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    artifact = config["build"]["artifacts"][0]
    assert artifact["docker"]["buildArgs"] == {"APP_FILES_OWNER": "0:0"}
    assert "hooks" not in artifact
    assert config["build"]["local"]["useBuildkit"] is True


def skaffold_render(skaffold_cli, output, *extra):
    skaffold, env = skaffold_cli
    # --output keeps the manifests apart from skaffold's own notices, which
    # go to stdout as well.
    result = run(
        [
            skaffold,
            "render",
            "--offline=true",
            "--digest-source=none",
            "--images",
            "sales-forecast=sales-forecast:ci-fake-tag",
            "--output",
            output,
            *extra,
        ],
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [d for d in yaml.safe_load_all(output.read_text()) if d]


def test_skaffold_render_injects_the_built_image(skaffold_cli, tmp_path):
    objects = skaffold_render(skaffold_cli, tmp_path / "render.yaml")

    images = {
        c["image"]
        for o in objects
        if o["kind"] in ("Deployment", "Job")
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    kinds = {o["kind"] for o in objects}

    assert images == {"sales-forecast:ci-fake-tag"}
    assert {"Deployment", "Service", "Job", "PersistentVolumeClaim"} <= kinds
    assert all(o["metadata"].get("namespace") == "sales-forecast" for o in objects)


def test_skaffold_dev_render_turns_on_code_reload(skaffold_cli, tmp_path):
    objects = skaffold_render(
        skaffold_cli, tmp_path / "render.yaml", "--profile", "dev"
    )

    settings = next(
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-config")
    )
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]

    assert settings["data"]["SALES_FORECAST_RELOAD_CODE"] == "1"
    assert container["securityContext"]["readOnlyRootFilesystem"] is False


def test_names_with_yaml_syntax_arrive_whole_even_past_the_schema(helm_cli):
    # The schema refuses these; the templates quote them anyway, so a value
    # that slips past it (--skip-schema-validation, a parent chart's schema)
    # can never turn into a YAML comment or a mapping.
    odd = {
        "nameOverride": "n #1",
        "fullnameOverride": "f #2",
        "serviceAccount.name": "sa #3",
        "modelStore.storageClass": "sc #4",
        "ingress.enabled": None,
        "ingress.className": "ic #5",
        "priorityClassName": "pc #6",
        "topologySpread.topologyKey": "tk #7",
        "imagePullSecrets[0]": "ps #8",
        "training.data.source": "pvc",
        "training.data.pvc.claimName": "claim: 9",
        "training.data.pvc.path": "sales.csv",
        "retraining.enabled": None,
    }
    sets = []
    for key, value in odd.items():
        sets += ["--set", f"{key}=true"] if value is None else [
            "--set-string", f"{key}={value}"]

    result = run(
        [helm_cli, "template", RELEASE, CHART, "--skip-schema-validation", *sets]
    )
    assert result.returncode == 0, result.stderr
    objects = [d for d in yaml.safe_load_all(result.stdout) if d]
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)

    deployment = by_kind["Deployment"][0]
    pod = deployment["spec"]["template"]["spec"]
    job_pod = by_kind["Job"][0]["spec"]["template"]["spec"]
    assert deployment["metadata"]["name"] == "f #2"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/name"] == "n #1"
    assert pod["serviceAccountName"] == "sa #3"
    assert by_kind["PersistentVolumeClaim"][0]["spec"]["storageClassName"] == "sc #4"
    assert by_kind["Ingress"][0]["spec"]["ingressClassName"] == "ic #5"
    assert pod["priorityClassName"] == "pc #6"
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "tk #7"
    assert pod["imagePullSecrets"] == [{"name": "ps #8"}]
    assert job_pod["imagePullSecrets"] == [{"name": "ps #8"}]
    data = next(v for v in job_pod["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == "claim: 9"
    names = {o["kind"]: o["metadata"]["name"] for o in objects}
    assert names.pop("ServiceAccount") == "sa #3"
    assert all(name.startswith("f #2") for name in names.values()), names
