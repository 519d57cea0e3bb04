"""Fixtures for the Helm chart checks (helpers live in chartlib.py).

The chart tests import helm-python-sdk, kubernetes-validate and PyYAML at
module level. When one is missing, only test_packages.py is collected: it
names what is missing, skipping on a workstation and failing under CI=true.
"""

from pathlib import Path

import pytest

from chartdeps import MISSING

if MISSING:
    collect_ignore = [
        p.name
        for p in Path(__file__).parent.glob("test_*.py")
        if p.name != "test_packages.py"
    ]
else:
    from chartlib import Rendered, ci_render, values_sets

    @pytest.fixture(params=values_sets())
    def values_set(request) -> str:
        """'default' and the name of every ci/*-values.yaml file, one test each."""
        return request.param

    @pytest.fixture
    def rendered(values_set) -> Rendered:
        return ci_render(values_set)

    @pytest.fixture(scope="session")
    def default_render() -> Rendered:
        return ci_render("default")
