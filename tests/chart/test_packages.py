"""The Python packages the chart checks need are installed.

Collected even when they are missing (see conftest.py), so a machine without
them reports it instead of silently running no chart test.
"""

import pytest

from chartdeps import MISSING, in_ci

pytestmark = pytest.mark.chart


def test_chart_check_packages_are_installed():
    if not MISSING:
        return
    message = (
        f"missing Python packages for the chart checks: {', '.join(MISSING)}; "
        "run hack/install-chart-tools.sh python"
    )
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)
