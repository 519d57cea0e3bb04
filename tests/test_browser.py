"""The forecast page in a real headless Chromium against a real gunicorn process.

Debian's chromium is driven through Playwright's Python package, pointed at the
system browser (Playwright never downloads one here), with every background
connection switched off and a fresh profile per module. Screenshots are written to
test-artifacts/ for a person to look at.

Without chromium or Playwright these tests skip with the reason, except under
CI=true, where a missing browser is a broken CI setup and fails.
"""

import csv
import io
import os
import shutil
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, TESTDATA, WINEIND, LiveServer, train
from training import artifact

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Without these chromium phones home (updates, sync, safe browsing, QUIC probes).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic", "--disable-default-apps", "--disable-extensions"]
ARTIFACTS = ROOT / "test-artifacts"
TXHOUSING = TESTDATA / "txhousing_sales.csv"
WAIT_MS = 15_000
TRAIN_WAIT_MS = 180_000


def browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    if not Path(CHROMIUM).is_file():
        return f"no chromium at {CHROMIUM}"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A Playwright browser context on the system chromium, fresh profile."""
    problem = browser_missing()
    if problem:
        message = f"{problem}; run hack/install-browser.sh (as root) to install it."
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {message}")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path_factory.mktemp("chromium-profile"), executable_path=CHROMIUM,
            headless=True, args=CHROMIUM_ARGS, accept_downloads=True,
            viewport={"width": 1200, "height": 900}, locale="en-US")
        context.set_default_timeout(WAIT_MS)
        yield context
        context.close()


@pytest.fixture(scope="module")
def txhousing_server(tmp_path_factory):
    """One server for the module, serving the 26 Texas housing areas, uploads on."""
    tmp = tmp_path_factory.mktemp("txhousing")
    model_dir = tmp / "models"
    assert train(TXHOUSING, model_dir) == 0
    server = LiveServer(model_dir, tmp, SALES_FORECAST_UPLOADS="true").start()
    server.model_dir = model_dir
    yield server
    server.stop()


class Page:
    """One browser tab, recording every console error and uncaught exception."""

    def __init__(self, context, url: str):
        self.tab = context.new_page()
        self.errors = []
        self.tab.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.tab.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.tab.goto(url)

    def wait_for_points(self, count: int) -> None:
        self.tab.wait_for_function(
            "n => document.querySelectorAll('.forecast circle.point').length === n",
            arg=count)

    def wait_for_caption(self, text: str) -> None:
        self.tab.wait_for_function(
            "t => document.getElementById('table-caption').textContent.includes(t)",
            arg=text)

    def layer_points(self, layer: str) -> int:
        return int(self.tab.get_attribute(f".layer.{layer}", "data-points"))

    def polyline_vertices(self, layer: str) -> int:
        return len(self.tab.get_attribute(f".layer.{layer} polyline", "points").split())

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.tab.screenshot(path=path, full_page=True)
        return path

    def close(self) -> None:
        self.tab.close()


@pytest.fixture
def open_page(browser):
    pages = []

    def open_(url: str) -> Page:
        page = Page(browser, url)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        page.close()


def forecast(server, series: str, horizon: int) -> dict:
    response = requests.post(server.url + "/forecast",
                             json={"series": series, "horizon": horizon}, timeout=5)
    response.raise_for_status()
    return response.json()


def store_state(model_dir: Path):
    versions = sorted(p.name for p in (model_dir / artifact.VERSIONS).iterdir())
    return artifact.read_current(model_dir), versions


def test_the_page_draws_history_and_forecast_without_console_errors(txhousing_server,
                                                                     open_page):
    meta = requests.get(txhousing_server.url + "/model", timeout=5).json()

    page = open_page(txhousing_server.url + "/")
    page.wait_for_points(12)

    first = meta["series"][0]
    assert page.tab.input_value("#series") == first["name"]
    assert page.layer_points("history") == page.polyline_vertices("history") \
        == first["months"] == 187
    assert page.polyline_vertices("forecast") == 12
    assert page.tab.locator("#forecast-table tbody tr").count() == 12
    rows = forecast(txhousing_server, first["name"], 12)["forecast"]
    headers = page.tab.eval_on_selector_all("#forecast-table thead th",
                                            "hs => hs.map(h => h.textContent)")
    if "lower_80" in rows[0]:
        assert page.layer_points("band-80") == page.layer_points("band-95") == 12
        assert headers == ["Month", "Forecast", "80% lower", "80% upper", "95% lower",
                           "95% upper"]
    else:  # a model without intervals: no bands, no empty columns
        assert page.tab.locator(".band").count() == 0
        assert headers == ["Month", "Forecast"]
    facts = page.tab.inner_text("#model-facts")
    assert meta["version"] in facts and "txhousing_sales.csv" in facts
    assert page.tab.locator(".glance-card").count() >= 3
    assert "seasonal naive" in page.tab.inner_text("#backtest")
    path = page.screenshot("forecast-page.png")
    assert path.stat().st_size > 10_000
    assert page.errors == []


def test_the_page_reads_the_metadata_of_the_shown_series_only(txhousing_server,
                                                             browser, open_page):
    # Per-series metadata is nearly all of a model of thousands of series (32 MB
    # for 3,000): the page asks for the list, then for each series it shows.
    asked = []

    def record(request):
        if "/model" in request.url:
            asked.append(request.url.removeprefix(txhousing_server.url))

    browser.on("request", record)
    try:
        page = open_page(txhousing_server.url + "/")
        page.wait_for_points(12)
        first = page.tab.input_value("#series")
        page.tab.select_option("#series", "Austin")
        page.wait_for_caption("Austin")
    finally:
        browser.remove_listener("request", record)

    assert asked == ["/model?series=", f"/model?series={first}",
                     "/model?series=Austin"]
    assert page.tab.locator(".glance-card").count() >= 3
    assert "seasonal naive" in page.tab.inner_text("#backtest")
    assert page.layer_points("backtest-naive") > 0
    assert page.errors == []


def test_changing_series_and_horizon_redraws_chart_and_table(txhousing_server,
                                                              open_page):
    page = open_page(txhousing_server.url + "/")
    page.wait_for_points(12)

    page.tab.select_option("#series", "Austin")
    page.wait_for_caption("Austin")
    page.tab.fill("#horizon", "24")
    page.wait_for_points(24)

    expected = forecast(txhousing_server, "Austin", 24)["forecast"]
    assert page.tab.inner_text("#forecast-table tbody tr:first-child th") \
        == expected[0]["date"][:7]
    assert page.tab.inner_text("#forecast-table tbody tr:last-child th") \
        == expected[-1]["date"][:7]
    assert page.tab.locator("#forecast-table tbody tr").count() == 24
    page.tab.select_option("#window", "24")
    page.tab.wait_for_function(
        "() => document.querySelector('.layer.history').dataset.points === '24'")
    assert page.errors == []


def test_the_series_search_filters_the_list_and_works_by_keyboard(txhousing_server,
                                                                   open_page):
    names = [s["name"] for s in
             requests.get(txhousing_server.url + "/model", timeout=5).json()["series"]]
    page = open_page(txhousing_server.url + "/")
    page.wait_for_points(12)

    page.tab.focus("#series-filter")
    page.tab.keyboard.type("san")
    matching = [n for n in names if "san" in n.lower()]
    page.tab.wait_for_function(
        "n => document.querySelectorAll('#series option').length === n",
        arg=len(matching))
    assert page.tab.eval_on_selector_all("#series option", "os => os.map(o => o.value)") \
        == matching
    page.wait_for_caption(matching[0])
    page.tab.keyboard.press("Enter")
    page.tab.keyboard.press("ArrowDown")
    page.wait_for_caption(matching[1])
    assert page.errors == []


def test_the_downloaded_csv_holds_exactly_what_forecast_returns(txhousing_server,
                                                                 open_page):
    page = open_page(txhousing_server.url + "/#series=Dallas&horizon=18")
    page.wait_for_points(18)
    page.wait_for_caption("Dallas")

    with page.tab.expect_download() as download:
        page.tab.click("#download-csv")
    text = Path(download.value.path()).read_text()

    rows = forecast(txhousing_server, "Dallas", 18)["forecast"]
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert download.value.suggested_filename == "forecast-Dallas-18m.csv"
    assert list(parsed[0]) == list(rows[0])
    assert [{k: (v if k == "date" else float(v) if v else None) for k, v in r.items()}
            for r in parsed] == rows
    assert page.errors == []


def test_a_broken_upload_shows_the_problem_and_trains_nothing(txhousing_server,
                                                              open_page, tmp_path):
    lines = WINEIND.read_text().splitlines()
    broken = tmp_path / "broken.csv"
    month = lines[50].split(",")[0]
    broken.write_text("\n".join(lines[:50] + [f"{month},12x5"] + lines[51:]) + "\n")
    before = store_state(txhousing_server.model_dir)
    page = open_page(txhousing_server.url + "/")
    page.wait_for_points(12)

    page.tab.set_input_files("#upload-file", str(broken))
    page.tab.click("#upload-check")
    page.tab.wait_for_selector(".upload-error")

    message = page.tab.inner_text(".upload-error")
    assert message.startswith("broken.csv: line 51: ")
    assert "sales value '12x5' is not a number" in message
    assert page.tab.is_disabled("#upload-train")
    page.screenshot("upload-refused.png")
    time.sleep(0.5)  # longer than the server's reload interval: nothing may appear
    assert store_state(txhousing_server.model_dir) == before
    # The browser logs the 422 answer as a failed resource load; nothing else.
    assert [e for e in page.errors if "422" not in e] == []


def open_with_an_upload_chosen(live_server, trained_store, open_page, tmp_path):
    """(page, model store): a page on a copy of the wineind store, uploads on, with
    the wineind file chosen for upload under another name, cellar.csv."""
    model_dir = Path(shutil.copytree(trained_store, tmp_path / "models"))
    server = live_server(model_dir, SALES_FORECAST_UPLOADS="true")
    upload = tmp_path / "cellar.csv"
    upload.write_bytes(WINEIND.read_bytes())
    page = open_page(server.url + "/")
    page.wait_for_points(12)
    page.tab.set_input_files("#upload-file", str(upload))
    return page, model_dir


def test_an_upload_is_checked_trained_and_then_shown(live_server, trained_store,
                                                     open_page, tmp_path):
    page, model_dir = open_with_an_upload_chosen(live_server, trained_store, open_page,
                                                 tmp_path)
    before, _ = store_state(model_dir)

    page.tab.click("#upload-check")
    page.tab.wait_for_selector("#upload-result table")
    assert "cellar.csv: 176 rows usable, 1 series" in page.tab.inner_text("#upload-result")
    page.tab.click("#upload-train")
    # Training runs the whole backtest and report: seconds, more on a busy machine.
    page.tab.wait_for_function(
        "() => document.getElementById('upload-result').textContent"
        ".includes('Now serving model version')", timeout=TRAIN_WAIT_MS)
    page.wait_for_caption("cellar")
    # The upload replaced the served wineind series, and the page says so.
    assert ("does not have 1 series the previous version answered (wineind); "
            "requests for them are now refused") in page.tab.inner_text("#upload-result")

    version, _ = store_state(model_dir)
    assert version != before
    assert version in page.tab.inner_text("#model-facts")
    assert page.tab.eval_on_selector_all("#series option", "os => os.map(o => o.value)") \
        == ["cellar"]
    page.screenshot("upload-trained.png")
    assert page.errors == []


def test_sales_in_a_large_unit_are_shown_to_their_digits(live_server, open_page,
                                                        tmp_path):
    # Wine sales counted in billions of bottles: 0.000014 to 0.000040 a month.
    lines = WINEIND.read_text().splitlines()
    tiny = tmp_path / "wine-tiny.csv"
    tiny.write_text("\n".join([lines[0]] + [
        f"{month},{int(sales) / 1e9!r}"
        for month, sales in (line.split(",") for line in lines[1:])]) + "\n")
    assert train(tiny, tmp_path / "models") == 0
    server = live_server(tmp_path / "models")

    page = open_page(server.url + "/")
    page.wait_for_points(12)

    rows = forecast(server, "wine-tiny", 12)["forecast"]
    cells = page.tab.eval_on_selector_all(
        "#forecast-table tbody tr td:first-of-type", "cs => cs.map(c => c.textContent)")
    # Four significant digits, where one decimal showed 0.0 in every cell.
    assert [float(c) for c in cells] == pytest.approx([r["sales"] for r in rows],
                                                      rel=1e-3)
    ticks = page.tab.eval_on_selector_all("text.y-tick",
                                          "ts => ts.map(t => t.textContent)")
    # The value axis too: its ticks read 0, 0, 0 before.
    assert len(ticks) >= 2 and len(set(ticks)) == len(ticks)
    assert all(float(t) > 0 for t in ticks)
    assert page.errors == []


def test_the_page_fits_a_narrow_phone_screen(txhousing_server, browser):
    tab = browser.new_page()
    try:
        tab.set_viewport_size({"width": 360, "height": 740})
        tab.goto(txhousing_server.url + "/")
        tab.wait_for_selector(".forecast circle.point")

        overflow = tab.evaluate(
            "() => document.documentElement.scrollWidth - window.innerWidth")
        chart_width = tab.evaluate(
            "() => document.querySelector('.chart-svg').getBoundingClientRect().right")
        ARTIFACTS.mkdir(exist_ok=True)
        tab.screenshot(path=ARTIFACTS / "forecast-page-narrow.png", full_page=True)
    finally:
        tab.close()

    assert overflow <= 0
    assert chart_width <= 360


def test_the_api_reference_renders_every_operation(txhousing_server, open_page):
    spec = requests.get(txhousing_server.url + "/openapi.json", timeout=5).json()
    operations = [(m.upper(), p) for p, item in spec["paths"].items() for m in item
                  if m in ("get", "post", "put", "patch", "delete")]

    page = open_page(txhousing_server.url + "/docs")
    page.tab.wait_for_selector(".docs-op h3")

    headings = page.tab.eval_on_selector_all(
        "#operations .docs-op h3",
        "hs => hs.map(h => [h.querySelector('.method').textContent,"
        " h.querySelector('code').textContent])")
    assert sorted(map(tuple, headings)) == sorted(operations)
    page.screenshot("api-reference.png")
    assert page.errors == []


# Keyboard and screen reader use ---------------------------------------------------


# The text a screen reader takes from an element: what aria-hidden does not hide.
SPOKEN_TEXT = """e => {
  const walk = (n) => n.nodeType === 3 ? n.textContent
    : n.nodeType === 1 && n.getAttribute("aria-hidden") === "true" ? ""
      : [...n.childNodes].map(walk).join("");
  return walk(e);
}"""


def start_training_by_keyboard(live_server, trained_store, open_page, tmp_path,
                               fake_clock=False):
    """A page with a checked upload whose Train button was pressed with Enter; with
    `fake_clock`, the page's timers run on a clock the test can move forward."""
    page, _ = open_with_an_upload_chosen(live_server, trained_store, open_page,
                                         tmp_path)
    if fake_clock:
        page.tab.clock.install()
    page.tab.focus("#upload-check")
    page.tab.keyboard.press("Enter")
    page.tab.wait_for_selector("#upload-result table")
    page.tab.keyboard.press("Tab")
    assert page.tab.evaluate("() => document.activeElement.id") == "upload-train"
    page.tab.keyboard.press("Enter")
    return page


def wait_until_served(page: Page) -> None:
    page.tab.wait_for_function(
        "() => document.getElementById('upload-result').textContent"
        ".includes('Now serving model version')", timeout=TRAIN_WAIT_MS)


def test_pressing_train_keeps_the_keyboard_focus_in_the_upload(
        live_server, trained_store, open_page, tmp_path):
    page = start_training_by_keyboard(live_server, trained_store, open_page, tmp_path)

    # The pressed button is disabled at once; focus must not fall back to the page
    # top, where the next Tab would start over at the skip link.
    focused = page.tab.evaluate("() => document.activeElement.closest('#upload')?.id")
    wait_until_served(page)
    assert focused == "upload"
    assert page.tab.evaluate("() => document.activeElement.closest('#upload')?.id") \
        == "upload"
    assert page.errors == []


def test_after_training_the_keyboard_goes_on_to_the_forecast_or_the_report(
        live_server, trained_store, open_page, tmp_path):
    page = start_training_by_keyboard(live_server, trained_store, open_page, tmp_path)
    wait_until_served(page)

    # Focus sits on the result box; the next Tab must stay on the page.
    page.tab.keyboard.press("Tab")
    first = page.tab.evaluate("() => document.activeElement.getAttribute('href')")
    page.tab.keyboard.press("Tab")
    second = page.tab.evaluate("() => document.activeElement.getAttribute('href')")
    assert (first, second) == ("#chart-heading", "/report")
    page.tab.wait_for_function("() => location.hash.startsWith('#series=')")
    shown = page.tab.evaluate("() => location.hash")
    page.tab.keyboard.press("Shift+Tab")
    page.tab.keyboard.press("Enter")
    page.tab.wait_for_function(
        "() => document.activeElement.id === 'chart-heading'")
    assert page.tab.evaluate("() => location.hash") == shown  # series and horizon
    assert page.errors == []


def test_training_progress_is_announced_once_not_every_second(
        live_server, trained_store, open_page, tmp_path):
    page = start_training_by_keyboard(live_server, trained_store, open_page, tmp_path,
                                      fake_clock=True)
    page.tab.evaluate("""() => {
      const box = document.getElementById("upload-result");
      const say = %s;
      window.announced = [say(box)];
      new MutationObserver(() => {
        const text = say(box);
        if (announced[announced.length - 1] !== text) announced.push(text);
      }).observe(box, { subtree: true, childList: true, characterData: true });
    }""" % SPOKEN_TEXT)

    # The seconds counter ticks in sight while training runs, but the live region
    # must not read the whole line out again at every tick. Three seconds pass at
    # once on the page's clock: a fast training would otherwise see no tick at all.
    page.tab.clock.run_for(3000)
    wait_until_served(page)
    first, *later = page.tab.evaluate("window.announced")
    assert first.endswith("Training…")
    assert [t for t in later if "Published" not in t and "Now serving" not in t] == []
    assert page.errors == []


LIVE_REGION = ("e => e.closest('[aria-live=polite], [aria-live=assertive],"
               " [role=status], [role=alert]') !== null")


def test_the_series_search_count_is_announced(txhousing_server, open_page):
    page = open_page(txhousing_server.url + "/")
    page.wait_for_points(12)

    page.tab.focus("#series-filter")
    page.tab.keyboard.type("zzz")
    page.tab.wait_for_function(
        "() => document.getElementById('filter-count').textContent !== ''")
    # A screen reader stays in the search box: the count, or that nothing matches,
    # reaches it only from a live region.
    assert page.tab.inner_text("#filter-count") == "No series matches “zzz”."
    assert page.tab.eval_on_selector("#filter-count", LIVE_REGION)
    assert page.errors == []


def test_a_wrong_number_of_months_is_announced(txhousing_server, open_page):
    page = open_page(txhousing_server.url + "/")
    page.wait_for_points(12)

    page.tab.focus("#horizon")
    page.tab.keyboard.press("Control+a")
    page.tab.keyboard.type("0")
    assert page.tab.get_attribute("#horizon", "aria-invalid") == "true"
    assert page.tab.inner_text("#horizon-hint") \
        == "Enter a whole number of months from 1 to 60."
    assert page.tab.eval_on_selector("#horizon-hint", LIVE_REGION)
    assert page.errors == []


def test_the_chart_figure_and_the_quality_cards_have_their_own_names(
        txhousing_server, open_page):
    page = open_page(txhousing_server.url + "/")
    page.wait_for_points(12)

    # The figure took its name from its caption, which holds only the legend; the
    # cards' label sat on a plain div, where screen readers ignore it.
    assert page.tab.get_by_role("figure", name="History and forecast").count() == 1
    assert page.tab.get_by_role("group", name="Quality at a glance").count() == 1
    assert page.tab.get_by_role("img", name="Abilene: monthly sales").count() == 1
    assert page.errors == []


# The colour a chart mark shows on the chart's white, alpha blended, and its WCAG
# contrast ratio against that white.
MARK_CONTRAST = """marks => marks.map(mark => {
  const layer = mark.closest("g.layer").classList[1];
  const channels = getComputedStyle(mark).stroke.match(/[\\d.]+/g);
  if (!channels) return [layer, 1];  // no stroke: nothing to tell it from the chart
  const [r, g, b, a = 1] = channels.map(Number);
  const shown = [r, g, b].map(c => (a * c + (1 - a) * 255) / 255)
    .map(c => c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  const light = 0.2126 * shown[0] + 0.7152 * shown[1] + 0.0722 * shown[2];
  return [layer, 1.05 / (light + 0.05)];
})"""


def test_every_chart_mark_stands_out_from_the_chart_at_three_to_one(
        txhousing_server, open_page):
    page = open_page(txhousing_server.url + "/")
    page.wait_for_points(12)

    # The bands' pale fills alone measured 1.56:1 (80%) and 1.22:1 (95%) on white;
    # their edges now carry the interval's extent (WCAG 1.4.11, non-text contrast).
    marks = dict(page.tab.eval_on_selector_all(".chart-svg .band, .chart-svg .line",
                                               MARK_CONTRAST))
    assert {"band-80", "band-95", "history", "forecast"} <= set(marks)
    assert min(marks.values()) >= 3, marks
    assert page.errors == []


def test_a_link_to_a_series_the_model_lacks_says_so(txhousing_server, open_page):
    page = open_page(txhousing_server.url + "/#series=Atlantis&horizon=6")
    page.wait_for_points(6)

    # The page shows the first series instead; without a word, a user who followed
    # the link (or a screen reader user who cannot see the chart) takes it for
    # Atlantis.
    assert page.tab.inner_text("#status").startswith(
        "No series “Atlantis” in this model; showing Abilene. Abilene: 6-month")
    page.tab.select_option("#series", "Austin")
    page.wait_for_caption("Austin")
    assert page.tab.inner_text("#status").startswith("Austin: 6-month forecast")
    assert page.errors == []
