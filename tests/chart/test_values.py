"""values.yaml is documented key by key, and values.schema.json guards it.

Schema violations and impossible combinations must stop `helm install` with a
message that names the value, before anything reaches a cluster.
"""

import json
import re

import pytest

from chartlib import CHART, helm, load_values_file, render, values_of

pytestmark = pytest.mark.chart

VALUES_FILE = CHART / "values.yaml"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w.-]*):(\s|$)")


def walk_values(values: dict, path=()):
    """Every key path of a values tree, lists of plain items left as leaves."""
    for key, value in values.items():
        yield path + (key,)
        if isinstance(value, dict):
            yield from walk_values(value, path + (key,))


def schema_at(path: tuple[str, ...]) -> dict | None:
    node = SCHEMA
    for key in path:
        props = node.get("properties", {})
        if key in props:
            node = props[key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        elif node.get("type") == "object" and "properties" not in node:
            # A Kubernetes object passed through whole (affinity, behavior…):
            # the rendered result is validated against Kubernetes' schemas.
            return node
        else:
            return None
    return node


def test_every_key_in_values_yaml_has_a_comment_right_above():
    lines = VALUES_FILE.read_text().splitlines()
    missing = []

    for number, line in enumerate(lines):
        if not KEY_LINE.match(line):
            continue
        above = lines[number - 1].strip() if number else ""
        if not above.startswith("# "):
            missing.append(f"line {number + 1}: {line.strip()}")

    assert not missing, "keys without a '# ' comment right above:\n" + "\n".join(
        missing
    )


def test_values_yaml_uses_one_comment_style():
    odd = [
        f"line {n + 1}: {line.strip()}"
        for n, line in enumerate(VALUES_FILE.read_text().splitlines())
        if line.strip().startswith("#")
        and not (line.strip() == "#" or line.strip().startswith("# "))
    ]

    assert not odd, (
        "comments must start with '# ' (no '## ', '#--', '# --'):\n" + "\n".join(odd)
    )
    assert "# --" not in VALUES_FILE.read_text()


def test_schema_describes_every_key_of_values_yaml():
    values = load_values_file(VALUES_FILE)

    undescribed = [".".join(p) for p in walk_values(values) if schema_at(p) is None]

    assert not undescribed, f"keys missing from values.schema.json: {undescribed}"


def test_schema_has_no_keys_values_yaml_lacks():
    values = load_values_file(VALUES_FILE)
    present = {".".join(p) for p in walk_values(values)}

    def declared(node, path=()):
        for key, sub in node.get("properties", {}).items():
            yield ".".join(path + (key,))
            yield from declared(sub, path + (key,))

    # "global" is Helm's own key, shared with a parent chart's subcharts.
    assert sorted(set(declared(SCHEMA)) - present - {"global"}) == []


@pytest.mark.parametrize(
    "repository",
    [
        "sales-forecast",
        "registry.example:5000/team/sales-forecast",
        "ghcr.io/acme/sales_forecast",
        "localhost/a__b/c.d",
    ],
)
def test_image_repositories_with_a_registry_and_a_path_are_accepted(repository):
    rendered = render({"image": {"repository": repository, "tag": "1.2"}})

    container = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert container[0]["image"] == f"{repository}:1.2"


def test_global_values_from_a_parent_chart_or_set_are_accepted():
    rendered = render({"global": {"imageRegistry": "registry.example", "x": 1}})

    assert rendered.one("Deployment")


def schema_patterns(node=SCHEMA, path="") -> list[tuple[str, str]]:
    """(where, pattern) of every "pattern" in the schema."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            found.append((path or "/", node["pattern"]))
        for key, sub in node.items():
            found += schema_patterns(sub, f"{path}/{key}")
    elif isinstance(node, list):
        for index, sub in enumerate(node):
            found += schema_patterns(sub, f"{path}/{index}")
    return found


def top_level_alternatives(pattern: str) -> list[str]:
    """The pattern split at each '|' outside groups and classes."""
    parts, depth, in_class, escaped, start = [], 0, False, False, 0
    for index, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(pattern[start:index])
            start = index + 1
    return parts + [pattern[start:]]


def test_every_schema_pattern_is_anchored_at_both_ends():
    # JSON Schema patterns search anywhere in the string: "^$|[a-z]+$" lets
    # "My_App x" through, because only its first alternative is anchored.
    loose = [
        f"{where}: {pattern}"
        for where, pattern in schema_patterns()
        for part in top_level_alternatives(pattern)
        if not (part.startswith("^") and part.endswith("$")
                and not part.endswith("\\$"))
    ]

    assert len(schema_patterns()) > 20
    assert not loose, "patterns not anchored at both ends:\n" + "\n".join(loose)


def test_default_values_pass_the_schema():
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(chart.values)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"replicaCount": "two"}, "/replicaCount"),
        ({"extra": True}, "additional properties 'extra'"),
        ({"config": {"workers": 0}}, "/config/workers"),
        ({"config": {"logLevel": "verbose"}}, "/config/logLevel"),
        ({"service": {"port": 70000}}, "/service/port"),
        ({"service": {"type": "ExternalName"}}, "/service/type"),
        ({"modelStore": {"accessMode": "ReadWriteOncePod"}}, "/modelStore/accessMode"),
        ({"modelStore": {"size": "lots"}}, "/modelStore/size"),
        ({"training": {"data": {"source": "s3"}}}, "/training/data/source"),
        (
            {"training": {"data": {"url": "http://insecure.test/a.csv"}}},
            "/training/data/url",
        ),
        (
            {"training": {"data": {"pvc": {"path": "/abs.csv"}}}},
            "/training/data/pvc/path",
        ),
        (
            {"autoscaling": {"targetCPUUtilizationPercentage": 150}},
            "targetCPUUtilization",
        ),
        (
            {"podDisruptionBudget": {"maxUnavailable": "150%"}},
            "/podDisruptionBudget/maxUnavailable",
        ),
        (
            {"metrics": {"serviceMonitor": {"interval": "often"}}},
            "/metrics/serviceMonitor/interval",
        ),
        ({"retraining": {"schedule": "weekly"}}, "/retraining/schedule"),
        ({"training": {"seriesName": " wineind"}}, "/training/seriesName"),
        ({"config": {"threads": 65}}, "/config/threads"),
        ({"config": {"uploadHosts": ["http://x.example"]}}, "/config/uploadHosts/0"),
        ({"image": {"digest": "sha256:short"}}, "/image/digest"),
        ({"ingress": {"hosts": []}}, "/ingress/hosts"),
        ({"image": {"repository": "foo:1.0"}}, "/image/repository"),
        ({"image": {"repository": "Team/Forecast"}}, "/image/repository"),
        ({"image": {"repository": "forecast@sha256:abc"}}, "/image/repository"),
        ({"image": {"repository": "registry.example/"}}, "/image/repository"),
        ({"resources": {"requests": {"cpu": -1}}}, "/resources/requests/cpu"),
        ({"resources": {"limits": {"cpu": "-1"}}}, "/resources/limits/cpu"),
        ({"resources": {"limits": {"memory": "768"}}}, "/resources/limits/memory"),
        ({"resources": {"requests": {"memory": 512}}}, "/resources/requests/memory"),
        (
            {"training": {"resources": {"requests": {"cpu": -0.5}}}},
            "/training/resources/requests/cpu",
        ),
        (
            {"training": {"resources": {"limits": {"memory": "1"}}}},
            "/training/resources/limits/memory",
        ),
        ({"resources": None}, "missing property 'resources'"),
        ({"resources": {"limits": None}}, "missing property 'limits'"),
        (
            {"training": {"resources": {"limits": {"memory": None}}}},
            "missing property 'memory'",
        ),
        ({"fullnameOverride": "My_App"}, "/fullnameOverride"),
        *[
            (
                {"training": {"data": {"configMap": {"key": key}}}},
                "/training/data/configMap/key",
            )
            for key in ("..sales.csv", "..", ".", "-sales.csv", "a b.csv", "a/b")
        ],
        ({"fullnameOverride": "prod #a"}, "/fullnameOverride"),
        ({"nameOverride": "Forecast x"}, "/nameOverride"),
        ({"serviceAccount": {"name": "runner #b"}}, "/serviceAccount/name"),
        (
            {"modelStore": {"existingClaim": "other-team-models #a"}},
            "/modelStore/existingClaim",
        ),
        ({"modelStore": {"storageClass": "Fast_ssd"}}, "/modelStore/storageClass"),
        ({"ingress": {"className": "nginx #internal"}}, "/ingress/className"),
        (
            {"training": {"data": {"configMap": {"name": "Sales data"}}}},
            "/training/data/configMap/name",
        ),
        (
            {"training": {"data": {"pvc": {"claimName": "history #x"}}}},
            "/training/data/pvc/claimName",
        ),
        ({"priorityClassName": "High priority"}, "/priorityClassName"),
        (
            {"topologySpread": {"topologyKey": "zone #a"}},
            "/topologySpread/topologyKey",
        ),
        (
            {"metrics": {"serviceMonitor": {"scrapeTimeout": ""}}},
            "/metrics/serviceMonitor/scrapeTimeout",
        ),
        ({"modelStore": {"size": "0Gi"}}, "/modelStore/size"),
        ({"modelStore": {"size": "0.0Mi"}}, "/modelStore/size"),
        ({"extraEnv": [{"name": "WORKERS", "value": 5}]}, "/extraEnv/0/value"),
        ({"extraEnv": [{"name": "DEBUG", "value": True}]}, "/extraEnv/0/value"),
        ({"extraEnv": [{"name": "TZ", "valu": "UTC"}]}, "additional properties 'valu'"),
        ({"ingress": {"tls": [{"hosts": "a.example"}]}}, "/ingress/tls/0/hosts"),
        ({"ingress": {"tls": [{"secret": "cert"}]}}, "additional properties 'secret'"),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else None,
)
def test_schema_rejects_bad_values(values, message):
    with pytest.raises(helm.HelmValuesError, match=re.escape(message)):
        render(values)


@pytest.mark.parametrize(
    "values, message",
    [
        (
            {"modelStore": {"accessMode": "ReadOnlyMany"}},
            "ReadOnlyMany, but the chart would create an empty claim",
        ),
        (
            {"modelStore": {"accessMode": "ReadOnlyMany", "existingClaim": "m"}},
            "training Job must write the model store. Set training.enabled=false",
        ),
        (
            {
                "modelStore": {"accessMode": "ReadOnlyMany", "existingClaim": "m"},
                "training": {"enabled": False},
                "config": {"uploads": True},
            },
            "uploads write the model store",
        ),
        (
            {"retraining": {"enabled": True}, "training": {"enabled": False}},
            "retraining.enabled is true but training.enabled is false",
        ),
        (
            {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
            "autoscaling.minReplicas (5) is above autoscaling.maxReplicas (2)",
        ),
        (
            {"training": {"data": {"source": "configMap"}}},
            "neither training.data.configMap.name",
        ),
        (
            {"training": {"data": {"source": "pvc", "pvc": {"claimName": "h"}}}},
            'got claimName="h" path=""',
        ),
        (
            {"training": {"data": {"source": "url"}}},
            "training.data.url is empty",
        ),
        (
            {"training": {"data": {"caBundle": {"configMapName": "our-ca"}}}},
            'caBundle.configMapName is "our-ca", but training.data.source is '
            "bundled",
        ),
        (
            {"resources": {"requests": {"cpu": None}}},
            "autoscaling.enabled is true but resources.requests.cpu is not set",
        ),
        (
            {"resources": {"requests": {"cpu": "0m"}}},
            "autoscaling.enabled is true but resources.requests.cpu is 0m",
        ),
        (
            {"resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "1G"}}},
            "resources.requests.memory (1Gi) is above resources.limits.memory (1G)",
        ),
        (
            {"resources": {"requests": {"cpu": 2}, "limits": {"cpu": "1500m"}}},
            "resources.requests.cpu (2) is above resources.limits.cpu (1500m)",
        ),
        (
            {"training": {"resources": {"requests": {"memory": "2.5Gi"}}}},
            "training.resources.requests.memory (2.5Gi) is above "
            "training.resources.limits.memory (2Gi)",
        ),
        (
            {"metrics": {"serviceMonitor": {"enabled": True, "interval": "30s",
                                            "scrapeTimeout": "1m"}}},
            "metrics.serviceMonitor.scrapeTimeout (1m) is longer than "
            "metrics.serviceMonitor.interval (30s)",
        ),
        (
            {"metrics": {"serviceMonitor": {"enabled": True, "interval": "1h30m",
                                            "scrapeTimeout": "1h30m1s"}}},
            "scrapeTimeout (1h30m1s) is longer",
        ),
    ],
    ids=[
        "rox-new-claim",
        "rox-training",
        "rox-uploads",
        "retrain-without-training",
        "hpa-min-above-max",
        "configmap-without-data",
        "pvc-without-path",
        "url-empty",
        "ca-bundle-without-url",
        "hpa-without-cpu-request",
        "hpa-with-zero-cpu-request",
        "memory-request-above-limit",
        "cpu-request-above-limit",
        "training-request-above-limit",
        "scrape-timeout-above-interval",
        "scrape-timeout-above-interval-hours",
    ],
)
def test_impossible_combinations_fail_with_the_fix(values, message):
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        render(values)


def test_without_autoscaling_the_cpu_request_may_be_left_out():
    rendered = render(
        {"autoscaling": {"enabled": False}, "resources": {"requests": {"cpu": None}}}
    )

    container = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert "cpu" not in container[0]["resources"]["requests"]


@pytest.mark.parametrize(
    "requests, limits",
    [
        ({"cpu": "250m", "memory": "768Mi"}, {"cpu": 0.25, "memory": "0.75Gi"}),
        ({"cpu": 1, "memory": "1G"}, {"cpu": "1000m", "memory": "1Gi"}),
        ({"cpu": None, "memory": "512Mi"}, {"cpu": None, "memory": "768Mi"}),
    ],
    ids=["equal-in-other-units", "decimal-below-binary", "no-cpu"],
)
def test_requests_up_to_their_limits_render(requests, limits):
    rendered = render({"autoscaling": {"enabled": bool(requests["cpu"])},
                       "resources": {"requests": requests, "limits": limits},
                       "training": {"resources": {"requests": requests,
                                                  "limits": limits}}})

    container = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert container[0]["resources"]["requests"]["memory"] == requests["memory"]


@pytest.mark.parametrize(
    "schedule, field, value",
    [
        ("60 3 * * 1", "minute", "60"),
        ("0 24 * * 1", "hour", "24"),
        ("0 3 0 * *", "day of month", "0"),
        ("0 3 * 13 *", "month", "13"),
        ("0 3 * * 7", "day of week", "7"),
        ("*/0 3 * * 1", "minute", "*/0"),
        ("0 3 * * Monday", "day of week", "Monday"),
    ],
)
def test_a_schedule_field_kubernetes_would_refuse_is_named(schedule, field, value):
    message = f'retraining.schedule "{schedule}": its {field} field "{value}"'

    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        render({"retraining": {"enabled": True, "schedule": schedule}})


@pytest.mark.parametrize("schedule, field, part", [
    ("30-10 3 * * 1", "minute", "30-10"),
    ("0 3 * * FRI-MON", "day of week", "FRI-MON"),
    ("0 3 10-9/2 * *", "day of month", "10-9/2"),
])
def test_a_schedule_range_that_runs_backwards_is_named(schedule, field, part):
    message = (f'retraining.schedule "{schedule}": its {field} field has the range '
               f'"{part}", which ends before it starts')

    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        render({"retraining": {"enabled": True, "schedule": schedule}})


@pytest.mark.parametrize(
    "schedule",
    ["0 3 * * 1", "*/15 0-23/2 1,15 JAN-jun ?", "5/10 3 * * MON-FRI", "@weekly",
     "0\t3 * *  sun", "08-09 3 * * 5-5"],
)
def test_schedules_kubernetes_accepts_render(schedule):
    rendered = render({"retraining": {"enabled": True, "schedule": schedule}})

    assert rendered.one("CronJob")["spec"]["schedule"] == schedule


@pytest.mark.parametrize(
    "interval, timeout",
    [("1m", "60s"), ("1h30m", "90m"), ("2m", "1m59s"), ("0", "10s"), ("30s", "0")],
)
def test_scrape_timeout_up_to_the_interval_renders(interval, timeout):
    monitor = {"enabled": True, "interval": interval, "scrapeTimeout": timeout}

    rendered = render({"metrics": {"serviceMonitor": monitor}})

    (endpoint,) = rendered.one("ServiceMonitor")["spec"]["endpoints"]
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == (interval, timeout)


def chart_settings() -> list[str]:
    """The environment variables the chart's settings ConfigMap sets."""
    rendered = render({})
    return sorted(
        next(
            c for c in rendered.of_kind("ConfigMap")
            if c["metadata"]["name"].endswith("-config")
        )["data"]
    )


@pytest.mark.parametrize("name", chart_settings())
def test_extra_env_cannot_override_a_chart_setting(name):
    with pytest.raises(helm.HelmRenderError, match=f"extraEnv sets {name}, "):
        render({"extraEnv": [{"name": "TZ", "value": "UTC"},
                             {"name": name, "value": "1"}]})


@pytest.mark.parametrize(
    "name, instead",
    [
        ("SALES_FORECAST_WORKERS", "set config.workers instead"),
        ("SALES_FORECAST_UPLOAD_HOSTS", "set config.uploadHosts instead"),
        ("SALES_FORECAST_PORT", "remove it from extraEnv"),
        ("PROMETHEUS_MULTIPROC_DIR", "remove it from extraEnv"),
    ],
)
def test_extra_env_refusal_names_the_value_to_use(name, instead):
    with pytest.raises(helm.HelmRenderError, match=re.escape(instead)):
        render({"extraEnv": [{"name": name, "value": "4"}]})


@pytest.mark.parametrize("size", ["0.5Gi", "10Mi", "1Ti"])
def test_model_store_sizes_above_zero_render(size):
    rendered = render({"modelStore": {"size": size}})

    claim = rendered.one("PersistentVolumeClaim")
    assert claim["spec"]["resources"]["requests"]["storage"] == size


def test_ingress_tls_renders_and_its_hosts_are_served_over_https():
    tls = [{"hosts": ["forecast.example"], "secretName": "forecast-tls"}]

    rendered = render({"ingress": {"enabled": True, "hosts": ["forecast.example"],
                                   "tls": tls}})

    assert rendered.one("Ingress")["spec"]["tls"] == tls
    assert "https://forecast.example/" in rendered.notes


def test_other_extra_env_reaches_the_server_container():
    extra = [{"name": "TZ", "value": "Europe/Paris"},
             {"name": "SALES_FORECAST_SOMETHING_NEW", "value": "1"},
             {"name": "POD_NAME",
              "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]

    rendered = render({"extraEnv": extra})

    container = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert container[0]["env"] == extra


@pytest.mark.parametrize(
    "values, where, key",
    [
        ({"podLabels": {"app.kubernetes.io/component": "api"}}, "podLabels",
         "app.kubernetes.io/component"),
        ({"podLabels": {"app.kubernetes.io/instance": "other"}}, "podLabels",
         "app.kubernetes.io/instance"),
        ({"podAnnotations": {"checksum/config": "x"}}, "podAnnotations",
         "checksum/config"),
        (
            {"metrics": {"serviceMonitor": {"enabled": True,
                                            "labels": {"helm.sh/chart": "x"}}}},
            "metrics.serviceMonitor.labels", "helm.sh/chart",
        ),
        (
            {"metrics": {"prometheusRule": {
                "enabled": True, "labels": {"app.kubernetes.io/name": "x"}}}},
            "metrics.prometheusRule.labels", "app.kubernetes.io/name",
        ),
        (
            {"metrics": {"dashboard": {"enabled": True,
                                       "labels": {"grafana_dashboard": "0"}}}},
            "metrics.dashboard.labels", "grafana_dashboard",
        ),
        (
            {"modelStore": {"annotations": {"helm.sh/resource-policy": "delete"}}},
            "modelStore.annotations", "helm.sh/resource-policy",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and "/" not in v else None,
)
def test_extra_labels_and_annotations_cannot_repeat_a_chart_key(values, where, key):
    message = f"{where} sets {key}, which the chart sets itself"

    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        render(values)


def test_extra_labels_and_annotations_sit_beside_the_chart_keys():
    rendered = render({"podLabels": {"team": "planning"},
                       "podAnnotations": {"owner": "forecasting"}})

    pod = rendered.one("Deployment")["spec"]["template"]["metadata"]
    assert pod["labels"]["team"] == "planning"
    assert pod["labels"]["app.kubernetes.io/component"] == "server"
    assert pod["annotations"]["owner"] == "forecasting"
    assert "checksum/config" in pod["annotations"]


def test_read_only_store_with_outside_models_renders():
    rendered = render(
        {
            "modelStore": {"accessMode": "ReadOnlyMany", "existingClaim": "published"},
            "training": {"enabled": False},
        }
    )

    assert rendered.of_kind("Job") == []
    assert "holds /models/CURRENT" in rendered.notes


def test_lint_strict_with_helms_engine_is_clean(values_set):
    report = helm.lint(CHART, values_of(values_set), strict=True)

    # Severity 1 is information ("icon is recommended"); 2 and 3 are
    # warnings and errors, which --strict turns into failures.
    serious = [m for m in report["messages"] if m["severity"] > 1]
    assert report["errors"] == [] and serious == []


def test_lint_strict_with_helms_engine_reports_a_bad_value():
    report = helm.lint(CHART, {"service": {"port": 0}}, strict=True)

    assert any("/service/port" in m["error"] for m in report["messages"])


def test_pull_secrets_given_as_names_or_as_objects_render_alike():
    # Many charts take {name: ...} entries, others plain names; both are accepted.
    secrets = ["regcred", {"name": "mirror-cred"}]

    rendered = render({"imagePullSecrets": secrets,
                       "retraining": {"enabled": True}})

    expected = [{"name": "regcred"}, {"name": "mirror-cred"}]
    specs = [o["spec"]["template"]["spec"] for o in rendered.of_kind("Deployment")]
    specs += [o["spec"]["template"]["spec"] for o in rendered.of_kind("Job")]
    specs += [o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
              for o in rendered.of_kind("CronJob")]
    specs += [o["spec"] for o in rendered.of_kind("Pod")]
    assert len(specs) == 4
    assert all(spec["imagePullSecrets"] == expected for spec in specs)


@pytest.mark.parametrize("entry", [{"nam": "regcred"}, {"name": "Reg_Cred"}, 5])
def test_a_pull_secret_entry_of_another_shape_names_the_value(entry):
    with pytest.raises(helm.HelmValuesError, match=r"at '/imagePullSecrets/0'"):
        render({"imagePullSecrets": [entry]})


def test_no_pull_secrets_leaves_the_pod_specs_without_the_field():
    rendered = render({})

    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    assert "imagePullSecrets" not in pod
    assert "imagePullSecrets:" not in "".join(rendered.files.values())
