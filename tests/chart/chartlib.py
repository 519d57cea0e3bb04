"""Shared helpers for the Helm chart checks.

Rendering goes through Helm's own engine (the helm-python-sdk wheel); the real
CLIs (helm, kubeconform, skaffold, checkov, promtool, node) come from
hack/install-chart-tools.sh. A missing CLI skips its check on a developer's
machine and fails it under CI=true, so CI never passes a check it did not run.
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import helm_python as helm
import pytest
import yaml

from chartdeps import in_ci

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "sales-forecast"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
CACHE_BIN = REPO / ".cache" / "bin"
RELEASE = "demo"
NAMESPACE = "sales-forecast"

# Oldest Kubernetes the chart's kubeVersion admits, and the newest release
# kubernetes-validate ships schemas for.
OLDEST_KUBE = "1.30.0"
NEWEST_KUBE = "1.37.0"


def need_tool(name: str, *, where: Path | None = None) -> str:
    """Path of a CLI, from .cache/bin (or `where`) first, then PATH.

    Skips the calling test when the tool is missing on a developer machine;
    fails it in CI, where hack/install-chart-tools.sh must have put it there.
    """
    for candidate in (where / name if where else None, CACHE_BIN / name):
        if candidate and candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found

    missing(
        f"{name} not found in {where or CACHE_BIN} or on PATH; "
        "run hack/install-chart-tools.sh to install it"
    )


def missing(message: str):
    """A check cannot run: skip on a workstation, fail under CI=true."""
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def load_values_file(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


@dataclass
class Rendered:
    """One render of the chart: every object (hooks included) and NOTES."""

    objects: list[dict]
    notes: str
    files: dict[str, str] = field(repr=False)

    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str) -> dict:
        found = self.of_kind(kind)
        assert len(found) == 1, (
            f"expected one {kind}, the chart rendered {len(found)}: "
            f"{[o['metadata']['name'] for o in found]}"
        )
        return found[0]

    def hooks(self) -> list[dict]:
        return [
            o
            for o in self.objects
            if "helm.sh/hook" in o["metadata"].get("annotations", {})
        ]


def render(
    values: dict | None = None,
    *,
    revision: int = 1,
    upgrade: bool = False,
    release: str = RELEASE,
) -> Rendered:
    """Render the chart with Helm's engine, hooks and NOTES.txt included."""
    with helm.Chart.load(CHART) as chart:
        files = chart.render(
            values or {},
            name=release,
            namespace=NAMESPACE,
            revision=revision,
            is_install=not upgrade,
            is_upgrade=upgrade,
        )

    objects = []
    notes = ""
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("metadata", {})
                objects.append(doc)
    return Rendered(objects=objects, notes=notes, files=files)


def values_sets() -> list[str]:
    """'default' plus the name of every ci/*-values.yaml file."""
    return ["default"] + [p.name for p in CI_VALUES]


def values_of(name: str) -> dict:
    """The values of a values set: {} for 'default', else the ci/ file's."""
    return {} if name == "default" else load_values_file(CHART / "ci" / name)


@functools.cache
def _cached_render(name: str) -> Rendered:
    return render(values_of(name))


def ci_render(name: str) -> Rendered:
    """Render of a values set. Rendered once, handed out as a deep copy so a
    test that edits objects cannot change what later tests see."""
    return copy.deepcopy(_cached_render(name))


def pod_specs(rendered: Rendered) -> list[tuple[str, dict]]:
    """(object name, pod spec) of every object that runs pods."""
    specs = []
    for obj in rendered.objects:
        kind = obj["kind"]
        spec = obj.get("spec", {})
        if kind in {"Deployment", "Job"}:
            specs.append((obj["metadata"]["name"], spec["template"]["spec"]))
        elif kind == "CronJob":
            specs.append(
                (
                    obj["metadata"]["name"],
                    spec["jobTemplate"]["spec"]["template"]["spec"],
                )
            )
        elif kind == "Pod":
            specs.append((obj["metadata"]["name"], spec))
    return specs


def write_manifests(rendered: Rendered, path: Path) -> Path:
    path.write_text(yaml.safe_dump_all(rendered.objects, sort_keys=False))
    return path
