"""k8s/ holds what a local cluster needs around the chart; its settings must
agree with what the chart renders (labels, annotations, flags)."""

import pytest
import yaml

from chartlib import REPO, ci_render

pytestmark = pytest.mark.chart

K8S = REPO / "k8s"


def load(name):
    return yaml.safe_load((K8S / name).read_text())


def test_kind_cluster_is_one_node_that_tolerates_cgroup_v1():
    cluster = load("kind-cluster.yaml")

    assert (cluster["kind"], cluster["apiVersion"]) == (
        "Cluster",
        "kind.x-k8s.io/v1alpha4",
    )
    (node,) = cluster["nodes"]
    patches = [yaml.safe_load(p) for p in node["kubeadmConfigPatches"]]
    assert {"kind": "KubeletConfiguration", "failCgroupV1": False} in patches


def test_metrics_server_skips_kubelet_tls_on_kind():
    assert "--kubelet-insecure-tls" in load("metrics-server-values.yaml")["args"]


def test_kube_prometheus_stack_selects_the_chart_objects():
    stack = load("monitoring/kube-prometheus-stack-values.yaml")
    spec = stack["prometheus"]["prometheusSpec"]

    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["ruleSelectorNilUsesHelmValues"] is False
    assert spec["serviceMonitorNamespaceSelector"] == {}
    assert spec["ruleNamespaceSelector"] == {}


def test_grafana_sidecar_looks_for_the_chart_dashboard_label_and_folder():
    sidecar = load("monitoring/kube-prometheus-stack-values.yaml")["grafana"]["sidecar"]
    dashboard = next(
        c
        for c in ci_render("dashboard-values.yaml").of_kind("ConfigMap")
        if c["metadata"]["name"].endswith("-dashboard")
    )

    wanted = sidecar["dashboards"]

    assert dashboard["metadata"]["labels"][wanted["label"]] == wanted["labelValue"]
    assert wanted["folderAnnotation"] in dashboard["metadata"]["annotations"]
    assert wanted["searchNamespace"] == "ALL"
