"""The metrics, dashboard and alerts against a real Prometheus (marker `prometheus`).

One scenario serves every test in this file: Debian's `prometheus` binary on
127.0.0.1 with a private port and data directory scrapes a real gunicorn (two
workers) every second and evaluates the alert rules; a warm-up request of every
kind creates each series, then a load of known size and mix runs on four
connections. The tests compare what Prometheus then answers with what was sent,
what the client measured and what the server logged.

Without `prometheus`/`promtool` the tests are skipped, unless CI=true, where they
fail: hack/install-prometheus.sh installs both.
"""

import json
import math
import os
import random
import shutil
import subprocess
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict

from service.metrics import REQUEST_BUCKETS
from tests.conftest import ROOT, LiveServer, free_port

pytestmark = pytest.mark.prometheus

CHART_FILES = ROOT / "charts" / "sales-forecast" / "files"
DASHBOARD = CHART_FILES / "dashboard.json"
RULES = CHART_FILES / "prometheus-rules.yaml"
RULE_TESTS = sorted((ROOT / "tests" / "prometheus").glob("*-test.yaml"))
JOB, NAMESPACE = "sales-forecast", "sf-test"
INFER = "/v2/models/sales-forecast/infer"
V2_BODY = {"inputs": [{"name": "date", "datatype": "BYTES", "shape": [2],
                       "data": ["1995-01", "1995-02"]}]}

# The load: (route template, method, path, JSON body or raw bytes, status, count).
MIX = [
    ("/forecast", "POST", "/forecast", {"horizon": 12}, 200, 150),
    ("/forecast", "POST", "/forecast", {"horizon": 0}, 400, 40),
    ("/forecast", "POST", "/forecast", {"series": "atlantis"}, 404, 30),
    ("/predict", "POST", "/predict", {"instances": [{"date": "1995-01"}] * 5}, 200, 100),
    ("/predict", "POST", "/predict", b"{not json", 400, 30),
    (INFER.replace("sales-forecast", "<name>"), "POST", INFER, V2_BODY, 200, 100),
    ("/model", "GET", "/model", None, 200, 50),
    ("/v2/models/<name>", "GET", "/v2/models/sales-forecast", None, 200, 40),
    ("/v2/models/<name>", "GET", "/v2/models/no-such-model", None, 404, 30),
    ("unmatched", "GET", "/no/such/page", None, 404, 30),
]
# Probes and scrapes sent along with the load; none of them may be counted.
PROBES = ["/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"]
# Dashboard panels built on kube-state-metrics or cAdvisor series, which no local
# Prometheus has: their queries must parse and run, and come back empty.
CLUSTER_PANELS = {"Replicas (HPA)", "Container restarts", "CPU per pod",
                  "Memory per pod"}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    message = (f"{name} is not installed: run hack/install-prometheus.sh (Debian's "
               "prometheus package) to run the Prometheus checks")
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class Prometheus:
    """A private Prometheus server: own port, own data directory, 1 s scrapes."""

    def __init__(self, binary: str, tmp: Path, target: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp
        config = tmp / "prometheus.yml"
        # JSON is YAML; Prometheus reads it as its configuration.
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [
                {"targets": [target], "labels": {"namespace": NAMESPACE}}]}],
        }))
        self.args = [binary, f"--config.file={config}",
                     f"--storage.tsdb.path={tmp / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}",
                     "--storage.tsdb.retention.time=1h", "--log.level=warn"]
        self.process = None

    def start(self, timeout: float = 30) -> "Prometheus":
        self._log = open(self.tmp / "prometheus.log", "wb")
        self.process = subprocess.Popen(self.args, stdout=self._log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "prometheus exited:\n" + self.log()
            try:
                if requests.get(self.url + "/-/ready", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"prometheus not ready after {timeout}s:\n" + self.log())

    def log(self) -> str:
        return (self.tmp / "prometheus.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def api(self, path: str, **params) -> dict:
        response = requests.get(self.url + "/api/v1/" + path, params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list:
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        return self.api("query", **params)["result"]

    def totals_by_scrape(self) -> dict[float, float]:
        """Per scrape of the last 30 s: the request counters summed over series."""
        totals = defaultdict(float)
        for series in self.query(f'sales_forecast_http_requests_total{{job="{JOB}"}}[30s]'):
            for at, value in series["values"]:
                totals[float(at)] += float(value)
        return totals

    def wait_for_total(self, total: int, timeout: float = 20) -> float:
        """The time of the first scrape whose request counters add up to `total`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [at for at, value in self.totals_by_scrape().items() if value == total]
            if hits:
                return min(hits)
            time.sleep(0.25)
        raise AssertionError(f"no scrape counted {total} requests within {timeout}s; "
                             f"last scrapes: {sorted(self.totals_by_scrape().items())}")


def send(session: requests.Session, url: str, method: str, path: str, body,
         request_id: str) -> tuple[int, float]:
    headers = {"X-Request-ID": request_id}
    if isinstance(body, bytes):
        payload = {"data": body}
        headers["Content-Type"] = "application/json"
    else:
        payload = {"json": body}

    started = time.perf_counter()
    response = session.request(method, url + path, headers=headers, timeout=10,
                               **payload)
    return response.status_code, time.perf_counter() - started


class Load:
    """What was sent: counts per (endpoint, method, status), and per request id the
    endpoint and the latency the client measured."""

    def __init__(self):
        self.counts = Counter()
        self.requests = {}

    def run(self, url: str, mix: list, prefix: str, threads: int) -> None:
        plan = [(f"{prefix}-{i}", entry) for i, entry in
                enumerate(e for e in mix for _ in range(e[5]))]
        # A fixed shuffle mixes the kinds; each thread opens a new connection every
        # 20 requests, so gunicorn hands connections to both workers.
        random.Random(7).shuffle(plan)
        shares = [plan[i::threads] for i in range(threads)]

        def worker(share):
            results = []
            for start in range(0, len(share), 20):
                with requests.Session() as session:
                    for n, (request_id, entry) in enumerate(share[start:start + 20]):
                        endpoint, method, path, body, status, _ = entry
                        got, seconds = send(session, url, method, path, body,
                                            request_id)
                        assert got == status, \
                            f"{method} {path}: {got}, expected {status}"
                        results.append((request_id, endpoint, method, status,
                                        seconds))
                        if n % 10 == 0:  # probes ride along; none may be counted
                            probe = PROBES[(start + n) // 10 % len(PROBES)]
                            assert session.get(url + probe, timeout=10).ok
            return results

        with ThreadPoolExecutor(threads) as pool:
            for results in pool.map(worker, shares):
                for request_id, endpoint, method, status, seconds in results:
                    self.counts[(endpoint, method, str(status))] += 1
                    self.requests[request_id] = (endpoint, seconds)


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    return tool("prometheus")


@pytest.fixture(scope="module")
def scenario(prometheus_binary, trained_store, tmp_path_factory):
    # prometheus_binary comes first: without it, skip before training a model.
    tmp = tmp_path_factory.mktemp("prometheus")
    server = LiveServer(trained_store, tmp, SALES_FORECAST_WORKERS=2)
    prometheus = None
    try:
        server.start()
        prometheus = Prometheus(prometheus_binary, tmp,
                                f"127.0.0.1:{server.port}").start()
        started = time.monotonic()

        warm_up = Load()
        warm_up.run(server.url, [entry[:5] + (1,) for entry in MIX], "warm", 1)
        before = prometheus.wait_for_total(sum(warm_up.counts.values()))
        load = Load()
        load_started = time.monotonic()
        load.run(server.url, MIX, "load", 4)
        load_seconds = time.monotonic() - load_started
        total = sum(warm_up.counts.values()) + sum(load.counts.values())
        after = prometheus.wait_for_total(total)

        yield {"server": server, "prometheus": prometheus, "warm_up": warm_up,
               "load": load, "before": before, "after": after,
               "timings": {"load_s": load_seconds,
                           "scenario_s": time.monotonic() - started}}
    finally:
        if prometheus:
            prometheus.stop()
        server.stop()


def dashboard_targets() -> list[tuple[str, str]]:
    """(panel title, expression) of every query in the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"]
            for target in panel.get("targets", [])]


def substitute(expr: str, window_ms: int) -> str:
    """The expression as Grafana sends it with one namespace and job selected and
    $__rate_interval set to exactly the scenario's load window."""
    for name, text in [("$__rate_interval", f"{window_ms}ms"),
                       ("$namespace", NAMESPACE), ("$job", JOB)]:
        expr = expr.replace(name, text)
    assert "$" not in expr, f"unknown dashboard variable left in {expr}"
    return expr


def window(scenario) -> tuple[float, int]:
    """Evaluation time and range covering the load exactly: from the last scrape
    before it to the first after it, both sample times, so no extrapolation."""
    return scenario["after"], round((scenario["after"] - scenario["before"]) * 1000)


# Counting ------------------------------------------------------------------------

def test_request_counters_summed_over_workers_equal_the_requests_sent(scenario):
    prometheus, after = scenario["prometheus"], scenario["after"]
    sent = scenario["warm_up"].counts + scenario["load"].counts

    result = prometheus.query(
        f'sum by (endpoint, method, status) (sales_forecast_http_requests_total'
        f'{{job="{JOB}"}})', at=after)
    counted = {(r["metric"]["endpoint"], r["metric"]["method"], r["metric"]["status"]):
               float(r["value"][1]) for r in result}

    assert counted == {key: float(n) for key, n in sent.items()}
    print(f"\n{sum(sent.values())} requests over {len(sent)} (endpoint, method, "
          f"status) series; load took {scenario['timings']['load_s']:.2f}s, warm-up, "
          f"load and scrapes {scenario['timings']['scenario_s']:.1f}s")


def test_both_workers_served_part_of_the_load(scenario):
    metrics_dir = Path(scenario["server"].env["PROMETHEUS_MULTIPROC_DIR"])
    per_worker = {}
    for path in metrics_dir.glob("counter_*.db"):
        per_worker[path.name] = sum(
            value for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))
            if key.startswith('["sales_forecast_http_requests"'))

    assert len([n for n in per_worker.values() if n > 0]) >= 2, per_worker
    assert sum(per_worker.values()) == sum(scenario["warm_up"].counts.values()) + \
        sum(scenario["load"].counts.values())


# The dashboard ---------------------------------------------------------------------

def test_every_dashboard_query_of_service_metrics_returns_data(scenario):
    at, window_ms = window(scenario)
    service_queries = [(t, e) for t, e in dashboard_targets() if "sales_forecast_" in e]

    empty = [title for title, expr in service_queries
             if not scenario["prometheus"].query(substitute(expr, window_ms), at=at)]

    assert len(service_queries) >= 20
    assert empty == []


def test_cluster_queries_parse_and_are_the_listed_panels(scenario):
    at, window_ms = window(scenario)
    cluster = [(t, e) for t, e in dashboard_targets() if "sales_forecast_" not in e]

    assert {title for title, _ in cluster} == CLUSTER_PANELS
    for title, expr in cluster:
        # api() asserts status "success": Prometheus parsed and ran the query.
        assert scenario["prometheus"].query(substitute(expr, window_ms), at=at) == [], \
            title


def test_template_variables_find_the_scraped_namespace_and_job(scenario):
    prometheus = scenario["prometheus"]
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}

    assert variables["datasource"]["query"] == "prometheus"
    assert "sales_forecast_model_loaded" in variables["namespace"]["definition"]
    assert prometheus.api("label/namespace/values",
                          **{"match[]": "sales_forecast_model_loaded"}) == [NAMESPACE]
    assert prometheus.api("label/job/values",
                          **{"match[]": "sales_forecast_model_loaded"}) == [JOB]


def bucket_of(seconds: float) -> tuple[float, float]:
    lower = 0.0
    for upper in REQUEST_BUCKETS + (math.inf,):
        if seconds <= upper:
            return lower, upper
        lower = upper
    raise AssertionError("unreachable")


def server_durations(server: LiveServer) -> dict[str, float]:
    """request id -> duration in seconds, from the server's JSON request log."""
    durations = {}
    for line in server.log().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("message") == "request":
                durations[entry["request_id"]] = entry["duration_ms"] / 1000
    return durations


def test_the_p99_panel_agrees_with_server_and_client_latencies(scenario):
    """histogram_quantile(0.99) interpolates inside the bucket that holds the
    k-th smallest observation, k = ceil(0.99 n). So per endpoint the panel's value
    must lie between the bounds of that bucket for the durations the server
    logged (the same clock reading the histogram observed, rounded to 1 us; one
    rank of slack on either side absorbs float rounding of the rates), and can
    be no higher than the upper bound of the bucket holding the client's k-th
    latency, since each server duration is contained in its client round trip."""
    at, window_ms = window(scenario)
    expr = next(e for t, e in dashboard_targets() if t == "Latency p99 by endpoint")
    panel = {r["metric"]["endpoint"]: float(r["value"][1]) for r in
             scenario["prometheus"].query(substitute(expr, window_ms), at=at)}
    logged = server_durations(scenario["server"])
    client, server = defaultdict(list), defaultdict(list)
    for request_id, (endpoint, seconds) in scenario["load"].requests.items():
        client[endpoint].append(seconds)
        server[endpoint].append(logged[request_id])

    assert set(panel) == set(client)
    report = []
    for endpoint, value in sorted(panel.items()):
        durations, latencies = sorted(server[endpoint]), sorted(client[endpoint])
        n = len(durations)
        k = math.ceil(0.99 * n)
        lowest = bucket_of(max(durations[max(k - 2, 0)] - 5e-7, 0))[0]
        highest = bucket_of(durations[min(k, n - 1)] + 5e-7)[1]
        client_bound = bucket_of(latencies[min(k, n - 1)])[1]
        report.append(f"{endpoint:32s} n={n:3d} panel {value * 1000:8.3f} ms  server "
                      f"p99 {durations[k - 1] * 1000:8.3f} ms  client p99 "
                      f"{latencies[k - 1] * 1000:8.3f} ms")
        assert lowest <= value <= highest, report[-1]
        assert value <= client_bound, report[-1]
    print("\n" + "\n".join(report))


# Alerts and exposition ---------------------------------------------------------

def test_prometheus_loads_the_alert_rules_and_evaluates_them_cleanly(scenario):
    prometheus = scenario["prometheus"]
    deadline = time.monotonic() + 10
    while True:
        rules = [rule for group in prometheus.api("rules")["groups"]
                 for rule in group["rules"]]
        if all(rule.get("lastEvaluation", "").startswith("20") for rule in rules) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.25)

    assert {rule["name"] for rule in rules} == {
        "SalesForecastHighErrorRatio", "SalesForecastHighLatencyP99",
        "SalesForecastNoModelLoaded", "SalesForecastModelRefused",
        "SalesForecastModelStale"}
    assert [(r["name"], r["health"], r.get("lastError")) for r in rules
            if r["health"] != "ok"] == []
    # A healthy service with a fresh model: nothing may fire.
    assert [r["name"] for r in rules if r["state"] == "firing"] == []


def test_promtool_checks_the_rules_and_passes_their_unit_tests():
    promtool = tool("promtool")

    checked = subprocess.run([promtool, "check", "rules", str(RULES)],
                             capture_output=True, text=True, timeout=60)
    tested = subprocess.run([promtool, "test", "rules", *map(str, RULE_TESTS)],
                            capture_output=True, text=True, timeout=120,
                            cwd=ROOT / "tests" / "prometheus")

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout
    assert len(RULE_TESTS) == 2
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_promtool_accepts_a_real_scrape(scenario):
    promtool = tool("promtool")
    scrape = requests.get(scenario["server"].url + "/metrics", timeout=10).text

    checked = subprocess.run([promtool, "check", "metrics"], input=scrape,
                             capture_output=True, text=True, timeout=60)

    assert "sales_forecast_http_request_duration_seconds_bucket" in scrape
    assert checked.returncode == 0 and checked.stdout + checked.stderr == "", \
        checked.stdout + checked.stderr
