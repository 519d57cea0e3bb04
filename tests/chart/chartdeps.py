"""What the chart checks need from Python, found without importing it.

Kept free of third-party imports so conftest.py can use it on a machine
where the packages are missing.
"""

import importlib.util
import os

REQUIRED = {
    "helm_python": "helm-python-sdk",
    "kubernetes_validate": "kubernetes-validate",
    "yaml": "PyYAML",
}
MISSING = sorted(
    package
    for module, package in REQUIRED.items()
    if importlib.util.find_spec(module) is None
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}
