"""SIGTERM as Kubernetes and 'docker stop' send it: requests already in flight are
answered, readiness can turn off first, and the container exits 0 by itself."""

import time

import pytest
import requests

from containerlib import HeldRequest, docker, run_detached

pytestmark = pytest.mark.container

# One request per worker thread (2 workers x 4 threads), so every request of the
# burst is held by a thread, none waits in the listen queue when SIGTERM arrives.
WORKERS, THREADS = 2, 4
BATCH = 3000
GRACE = 20


def serve(image, names, trained_volume, role: str, **env):
    settings = {"SALES_FORECAST_WORKERS": WORKERS, "SALES_FORECAST_THREADS": THREADS,
                "SALES_FORECAST_GRACEFUL_TIMEOUT": GRACE, **env}
    container = run_detached(image, names.container(role), trained_volume.volume,
                             "--read-only", "--tmpfs", "/tmp", env=settings)
    container.wait_ready()
    return container


def large_batch(url: str) -> dict:
    """A /predict body of BATCH rows over the months the model forecasts."""
    forecast = requests.post(url + "/forecast", json={"horizon": 12}, timeout=10)
    months = [month["date"][:7] for month in forecast.json()["forecast"]]
    return {"instances": [{"date": months[i % len(months)]} for i in range(BATCH)]}


def wait_for_log(container, text: str, timeout: float = 10) -> float:
    """Poll the container's log (not the server: every thread is busy) until `text`
    shows; returns when it was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in container.logs():
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the log {timeout}s later:\n"
                         + container.logs())


def test_sigterm_answers_every_request_in_flight_and_exits_zero(image, names,
                                                                trained_volume):
    container = serve(image, names, trained_volume, "sigterm")
    payload = large_batch(container.url)
    expected = requests.post(container.url + "/predict", json=payload, timeout=30)
    assert expected.status_code == 200, expected.text

    # Each request is held about a second, well inside the few seconds the service
    # gives a client to deliver its body before it drops a slow one. The answers
    # must all come after the stop began: they were in flight through it.
    held = [HeldRequest(container.url, "/predict", payload)
            for _ in range(WORKERS * THREADS)]
    time.sleep(0.5)  # let the workers take the connections and start reading
    docker("kill", "--signal", "TERM", container.name)
    # gunicorn logs this, then closes its listener and signals the workers.
    stopping = wait_for_log(container, "Handling signal: term")
    for request in held:
        request.send_rest()
    answers = [request.read() for request in held]
    exit_code = container.wait_exit(timeout=GRACE + 15)

    assert [status for status, _, _ in answers] == [200] * len(held)
    assert all(body == expected.json() for _, body, _ in answers)
    assert all(arrived > stopping for _, _, arrived in answers)
    assert exit_code == 0, container.logs()
    assert not container.state()["OOMKilled"]


def test_readiness_turns_off_before_the_server_stops(image, names, trained_volume):
    delay = 4
    container = serve(image, names, trained_volume, "drain",
                      SALES_FORECAST_SHUTDOWN_DELAY=delay)

    docker("kill", "--signal", "TERM", container.name)
    deadline = time.monotonic() + delay
    readiness = None
    while time.monotonic() < deadline:
        readiness = requests.get(container.url + "/readyz", timeout=2).status_code
        if readiness == 503:
            break
        time.sleep(0.1)
    # Still draining: traffic that a load balancer has not yet withdrawn is served.
    still_served = requests.post(container.url + "/forecast", json={"horizon": 12},
                                 timeout=5).status_code
    exit_code = container.wait_exit(timeout=delay + GRACE + 15)

    assert readiness == 503
    assert still_served == 200
    assert exit_code == 0, container.logs()
