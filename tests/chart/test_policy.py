"""Policy and rule checks with the real tools: checkov and promtool.

checkov scans what the chart renders for every values set. It must report
no failure; a policy that does not fit is skipped on the object itself with a
checkov.io/skipN annotation that says why, and only the reasons listed here
are accepted, so a new skip needs a reviewed reason.
"""

import json
import re
import subprocess

import pytest
import yaml

from chartlib import CHART, REPO, ci_render, need_tool, values_sets, write_manifests

pytestmark = pytest.mark.chart

CHECKOV = REPO / ".cache" / "checkov-venv" / "bin"

# Policy id -> the words its skip annotation must contain. The full reasons
# live in templates/_helpers.tpl and templates/tests/test-forecast.yaml.
JUSTIFIED_SKIPS = {
    "CKV_K8S_43": "set image.digest",
    "CKV_K8S_15": "IfNotPresent is required for images loaded into kind",
    "CKV2_K8S_6": "networkPolicy.enabled",
    "CKV_K8S_8": "one-shot test pod",
    "CKV_K8S_9": "it is the client",
}


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory):
    checkov = need_tool("checkov", where=CHECKOV)
    manifests = tmp_path_factory.mktemp("checkov")
    for name in values_sets():
        write_manifests(ci_render(name), manifests / name.replace("-values", ""))

    result = subprocess.run(
        [
            checkov,
            "-d",
            str(manifests),
            "--framework",
            "kubernetes",
            "--compact",
            "--output",
            "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode in (0, 1), f"checkov crashed:\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_finds_no_failed_policy(checkov_report):
    failed = [
        f"{f['check_id']} {f['check_name']}: {f['resource']} ({f['file_path']})"
        for f in checkov_report["results"]["failed_checks"]
    ]

    assert checkov_report["summary"]["parsing_errors"] == 0
    assert checkov_report["summary"]["passed"] > 0
    assert not failed, "checkov failures:\n" + "\n".join(failed)


def test_checkov_skips_are_only_the_justified_ones(checkov_report):
    skipped = checkov_report["results"].get("skipped_checks", [])

    def reason(skip):
        return skip["check_result"].get("suppress_comment") or ""

    unexplained = [
        f"{s['check_id']} on {s['resource']}: {reason(s)!r}"
        for s in skipped
        if JUSTIFIED_SKIPS.get(s["check_id"], "\0") not in reason(s)
    ]

    assert not unexplained, "skips without a reviewed reason:\n" + "\n".join(
        unexplained
    )


def test_promtool_accepts_the_rules_file(tmp_path):
    promtool = need_tool("promtool")
    rules = CHART / "files" / "prometheus-rules.yaml"
    assert rules.is_file(), f"{rules} is missing; the PrometheusRule is built from it"

    result = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"SUCCESS: \d+ rules found", result.stdout + result.stderr)


def test_promtool_accepts_the_rendered_prometheusrule(tmp_path):
    promtool = need_tool("promtool")
    rule = ci_render("prometheusrule-values.yaml").one("PrometheusRule")
    rules_file = tmp_path / "rendered-rules.yaml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))

    result = subprocess.run(
        [promtool, "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_rule(tmp_path):
    promtool = need_tool("promtool")
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m]\n"
    )

    result = subprocess.run(
        [promtool, "check", "rules", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
