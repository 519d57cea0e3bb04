"""One series of the report drawn at a time per worker (service/report.py): a request
for the series being drawn shares that drawing, one for another series is told to
come back, and a failed drawing is neither cached nor kept as the answer."""

import threading

import pandas as pd
import pytest

from service.report import BUSY_RETRY_AFTER, ReportBusy, ReportPages
from tests.conftest import WINEIND, train


class HeldDrawing:
    """A render function that blocks until released, counting its calls."""

    def __init__(self, page="page", error=None):
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls = 0
        self.page, self.error = page, error

    def __call__(self):
        self.calls += 1
        self.started.set()
        assert self.release.wait(10)
        if self.error is not None:
            raise self.error
        return self.page


def in_thread(function) -> tuple[threading.Thread, dict]:
    outcome = {}

    def run():
        try:
            outcome["value"] = function()
        except Exception as e:  # handed to the test to assert on
            outcome["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def two_requests_while_drawing(pages: ReportPages, drawing: HeldDrawing) -> list:
    """Two requests for series "a", the second made while the first draws it."""
    first, first_outcome = in_thread(lambda: pages.get("a", drawing))
    assert drawing.started.wait(10)
    second, second_outcome = in_thread(lambda: pages.get("a", drawing))
    drawing.release.set()
    first.join(10)
    second.join(10)
    return [first_outcome, second_outcome]


def test_a_request_for_the_series_being_drawn_shares_that_drawing():
    pages, drawing = ReportPages(), HeldDrawing()

    outcomes = two_requests_while_drawing(pages, drawing)

    assert outcomes == [{"value": "page"}] * 2
    assert drawing.calls == 1
    assert pages.get("a", HeldDrawing(page="never drawn")) == "page"  # cached


def test_another_series_is_refused_while_one_is_drawn_and_drawn_after():
    pages, drawing = ReportPages(), HeldDrawing()
    first, _ = in_thread(lambda: pages.get("a", drawing))
    assert drawing.started.wait(10)

    with pytest.raises(ReportBusy, match=f"ask again in {BUSY_RETRY_AFTER} s"):
        pages.get("b", HeldDrawing())
    drawing.release.set()
    first.join(10)

    later = HeldDrawing(page="b page")
    later.release.set()
    assert pages.get("b", later) == "b page"


def test_a_failed_drawing_reaches_every_waiter_and_is_not_cached():
    pages, drawing = ReportPages(), HeldDrawing(error=ValueError("no history"))

    first, second = two_requests_while_drawing(pages, drawing)

    assert str(first["error"]) == str(second["error"]) == "no history"
    assert drawing.calls == 1
    retry = HeldDrawing(page="drawn again")
    retry.release.set()
    assert pages.get("a", retry) == "drawn again"


@pytest.mark.integration
def test_the_busy_answer_is_a_429_with_retry_after(tmp_path, monkeypatch):
    from service.app import create_app
    from service.config import Settings
    from training import report

    sales = pd.read_csv(WINEIND)
    two = pd.concat([sales.assign(series=name) for name in ("north", "south")])
    data = tmp_path / "two.csv"
    two.to_csv(data, index=False)
    assert train(data, tmp_path / "models") == 0
    client = create_app(Settings(model_dir=tmp_path / "models"),
                        watch=False).test_client()

    drawn = report.series_page
    held = HeldDrawing()
    monkeypatch.setattr(report, "series_page",
                        lambda *args: (held(), drawn(*args))[1])
    first, first_outcome = in_thread(
        lambda: client.get("/report.png?series=north"))
    assert held.started.wait(30)

    busy = client.get("/report?series=south")
    held.release.set()
    first.join(30)

    assert busy.status_code == 429
    assert busy.headers["Retry-After"] == str(BUSY_RETRY_AFTER)
    assert busy.get_json()["code"] == "report_busy"
    assert first_outcome["value"].status_code == 200
    assert client.get("/report?series=south").status_code == 200
