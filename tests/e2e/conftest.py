"""Fixtures of the end-to-end suite (helpers live in e2elib.py).

The suite installs the chart on a real cluster and takes minutes, so it runs only
when asked for by marker (`pytest -m e2e`, as `make e2e` does); any other run
deselects it rather than skipping it, so it never shows up as a pass it wasn't.
"""

import pytest
from e2elib import ROOT, Cluster, CommandFailed, Settings, Steps

SUITE_DIR = ROOT / "tests" / "e2e"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "e2e: installs the chart on a real cluster (KUBECONFIG); slow")


def _asked_for(config) -> bool:
    return "e2e" in (config.option.markexpr or "")


def pytest_collection_modifyitems(config, items):
    if _asked_for(config):
        return
    chosen, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker("e2e") else chosen).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = chosen


@pytest.fixture(scope="session")
def steps(pytestconfig) -> Steps:
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        # Past pytest's output capture, so progress shows while a step runs.
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(line)

    made = Steps(write)
    pytestconfig.stash["e2e_steps"] = made
    return made


@pytest.fixture(scope="session")
def cluster(pytestconfig, steps) -> Cluster:
    """The cluster under test with a namespace of the suite's own, removed after."""
    try:
        settings = Settings.from_env()
    except CommandFailed as error:
        pytest.fail(str(error), pytrace=False)
    made = Cluster(settings)
    pytestconfig.stash["e2e_cluster"] = made

    with steps.step(f"cluster answers, namespace {settings.namespace}"):
        version = made.kubectl("version", "-o", "json", namespaced=False)
        made.kubectl("create", "namespace", settings.namespace, namespaced=False)
        # The traffic script reaches the in-cluster client pods through a ConfigMap.
        made.kubectl("create", "configmap", "sf-e2e-traffic",
                     f"--from-file=traffic.py={SUITE_DIR / 'traffic.py'}")
    steps.write(f"[e2e] server: {_server_version(version)}")

    yield made

    if settings.keep:
        steps.write(f"[e2e] E2E_KEEP=1: namespace {settings.namespace} is kept")
        return
    with steps.step(f"delete namespace {settings.namespace}"):
        made.kubectl("delete", "namespace", settings.namespace, "--wait=true",
                     "--timeout=180s", namespaced=False, timeout=200)


def _server_version(text: str) -> str:
    import json

    server = json.loads(text).get("serverVersion", {})
    return f"Kubernetes {server.get('gitVersion', '?')} ({server.get('platform', '?')})"


@pytest.fixture(scope="session")
def state() -> dict:
    """What one step leaves for the next (the tests run in file order)."""
    return {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed or not item.get_closest_marker("e2e"):
        return
    made = item.config.stash.get("e2e_cluster", None)
    if made is not None:
        report.sections.append(("kubernetes state at the failure", made.dump()))


def pytest_terminal_summary(terminalreporter, config):
    made = config.stash.get("e2e_steps", None)
    if made is None or not made.rows:
        return
    terminalreporter.section("end-to-end steps")
    for line in made.table():
        terminalreporter.write_line(line)
