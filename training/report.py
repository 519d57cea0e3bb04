"""The training report: one self-contained HTML file and one PNG per model version.

The HTML holds a table of every series (the served model's backtest scores beside
seasonal naive and the plain regression) and, for at most `MAX_PLOTS` series (the
first ones by name; the table says which), a plot of the history, the backtest
forecasts from every cut-off and the final forecast with its 80% and 95% intervals.
Plots are PNG images embedded as base64 `data:` URLs, so the file needs nothing
from anywhere else. `report.png` is an overview of up to `OVERVIEW_PANELS` series.

The service re-renders one series on request (`GET /report?series=...`) from what a
version stores (metadata, history.json and the served forecasts), through
`series_page`.
"""

import base64
import html
import io
import warnings
from dataclasses import dataclass, field

import numpy as np

from training import intervals
from training.selection import BACKTEST_MONTHS

HTML_FILE = "report.html"
PNG_FILE = "report.png"
MAX_PLOTS = 12
OVERVIEW_PANELS = 6
# Months of history drawn before the forecast: older years add ink, not insight.
HISTORY_SHOWN = 96
REPORT_HORIZON = 24


@dataclass
class SeriesView:
    """What one series' plot shows, in month indices (months since year 0)."""

    name: str
    label: str
    reason: str
    history_months: np.ndarray
    history: np.ndarray
    forecast_months: np.ndarray
    forecast: np.ndarray
    bands: dict = field(default_factory=dict)  # level -> (lower, upper)
    backtests: list = field(default_factory=list)  # (origin, months, values)


def _dates(months: np.ndarray) -> np.ndarray:
    months = np.asarray(months, dtype=np.int64)
    return (months - 1970 * 12).astype("datetime64[M]")


# Characters of a series name drawn as a panel title. A name may be as long as a CSV
# line (100,000 characters), and the tight bounding box of the saved figure widens
# the PNG to hold all of it: 260,000 pixels and 0.8 GB to render for 20,000. The HTML
# around the image carries the whole name.
TITLE_CHARS = 80


def _title(name: str) -> str:
    return name if len(name) <= TITLE_CHARS else name[:TITLE_CHARS - 1] + "\u2026"


def _draw(ax, view: SeriesView) -> None:
    shown = view.history_months >= view.history_months.max() - HISTORY_SHOWN
    ax.plot(_dates(view.history_months[shown]), view.history[shown], color="#222222",
            linewidth=1.2, label="history")
    for i, (_, months, values) in enumerate(view.backtests):
        ax.plot(_dates(months), values, color="#d9822b", linewidth=0.9, alpha=0.7,
                label="backtest forecasts" if i == 0 else None)
    for level, alpha in (("95", 0.18), ("80", 0.32)):
        if level in view.bands:
            lower, upper = view.bands[level]
            ax.fill_between(_dates(view.forecast_months), lower, upper, alpha=alpha,
                            color="#2b6cd9", linewidth=0, label=f"{level}% interval")
    ax.plot(_dates(view.forecast_months), view.forecast, color="#2b6cd9",
            linewidth=1.6, label=f"forecast ({view.label})")
    # A name is text, never a formula: with math parsing on, "$...$" in it is drawn
    # as mathematics, and one that does not parse fails the whole report.
    ax.set_title(_title(view.name), fontsize=10, parse_math=False)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)


# The bundled font has no CJK or emoji glyphs: such series names show as boxes in the
# PNG titles (the HTML around them has the names as text), and matplotlib would warn
# once per missing character on stderr. Set once here, not per figure: the filter
# list is global, and reports render on several threads.
warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font",
                        category=UserWarning)


def _figure(**options):
    # matplotlib's object API, not pyplot: no global figure registry, so the
    # service's threads can render at the same time, and no GUI backend is involved.
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **options)


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def series_png(view: SeriesView) -> bytes:
    figure = _figure(figsize=(9, 3.4))
    ax = figure.subplots()
    _draw(ax, view)
    ax.legend(fontsize=8, loc="upper left")
    return _png(figure)


def overview_png(views: list[SeriesView]) -> bytes:
    shown = views[:OVERVIEW_PANELS]
    rows = max(1, (len(shown) + 1) // 2)
    columns = 1 if len(shown) <= 1 else 2
    figure = _figure(figsize=(6 * columns, 3 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax, view in zip(axes.flat, shown):
        _draw(ax, view)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    if shown:
        axes.flat[0].legend(fontsize=7, loc="upper left")
    figure.suptitle(f"Forecasts with 80% and 95% intervals ({len(shown)} of "
                    f"{len(views)} series)", fontsize=11)
    return _png(figure)


def _number(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "undefined"
    return f"{value:,.{digits}f}"


def _score(scores: dict, kind: str, key: str):
    entry = scores.get(kind) or {}
    return entry.get(key)


def metrics_table(metadata: dict, names: list[str]) -> str:
    head = ("<tr><th>series</th><th>served model</th><th>MASE</th>"
            "<th>MASE seasonal naive</th><th>MASE linear</th><th>MASE ratio</th>"
            "<th>RMSE / seasonal naive</th><th>sMAPE %</th><th>MAPE %</th>"
            "<th>backtest months</th></tr>")
    body = []
    for info in metadata["series"]:
        if info["name"] not in names:
            continue
        evaluation = metadata["evaluation"][info["name"]]
        scores, served = evaluation["scores"], info["model"]
        mase, naive = _score(scores, served, "mase"), _score(scores, "seasonal-naive",
                                                             "mase")
        rmse, naive_rmse = _score(scores, served, "rmse"), _score(
            scores, "seasonal-naive", "rmse")
        ratio = mase / naive if mase is not None and naive else None
        rmse_ratio = rmse / naive_rmse if rmse is not None and naive_rmse else None
        verdict = "" if ratio is None else (' class="good"' if ratio < 1
                                            else ' class="bad"')
        body.append(
            f"<tr><td>{html.escape(info['name'])}</td>"
            f"<td title=\"{html.escape(info['reason'])}\">{html.escape(served)}</td>"
            f"<td>{_number(mase)}</td><td>{_number(naive)}</td>"
            f"<td>{_number(_score(scores, 'linear', 'mase'))}</td>"
            f"<td{verdict}>{_number(ratio)}</td><td>{_number(rmse_ratio)}</td>"
            f"<td>{_number(_score(scores, served, 'smape'), 1)}</td>"
            f"<td>{_number(_score(scores, served, 'mape'), 1)}</td>"
            f"<td>{evaluation['backtest']['months_scored']}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,td:nth-child(2),th{text-align:left}
.good{background:#e3f4e1}.bad{background:#fbe3e1}
img{max-width:100%}.note{color:#555;font-size:13px}
"""


def backtest_sentence(protocol: dict) -> str:
    """What the backtest did, as the training summary and the report both say it:
    the cut-offs, how many of them left a history long enough to test, and none at
    all when every cut-off lies too early or before the data (listing them would
    claim a backtest that never ran)."""
    origins, scored = protocol["origins"], protocol.get("scored_origins")
    if scored == []:
        return (f"none; a series needs {BACKTEST_MONTHS} months of history for its "
                "cut-offs to leave months to test")
    tested = ""
    if scored is not None and len(scored) < len(origins):
        tested = (f", {len(scored)} of which left enough history to test"
                  f" ({', '.join(scored)})")
    return (f"refit at {len(origins)} cut-offs ({', '.join(origins)}){tested}, 1 to "
            f"{protocol['horizon']} months ahead")


def mase_leaves_out(metrics: dict, names) -> str:
    """What the overall MASE of `metrics` leaves out, as words to follow it, with
    the series listed by `names`; "" when it leaves nothing out."""
    left = metrics.get("mase_leaves_out") or []
    if not left:
        return ""
    return (f" (MASE without {len(left)} series with no MASE scale, each month the "
            f"one a year before: {names(left)})")


def page(metadata: dict, views: list[SeriesView], images: dict[str, bytes],
         names: list[str]) -> str:
    protocol = metadata["backtest"]
    coverage = metadata["intervals"]["coverage"]
    metrics = metadata.get("metrics", {})
    title = f"Training report: model version {metadata['version']}"
    parts = [f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p>Data: {html.escape(metadata['data']['source'])}, "
             f"{metadata['data']['rows']} months in {metadata['data']['series_count']} "
             f"series ({metadata['data']['first']} to {metadata['data']['last']}). "
             f"Requested model: {html.escape(metadata['model_kind'])}; quality gate "
             f"scope: {html.escape(metadata['gate']['scope'])}.</p>",
             f"<p>Backtest: {html.escape(backtest_sentence(protocol))}"
             + ("" if protocol.get("scored_origins") == [] else
                "; MASE divides each error by the seasonal-naive in-sample error of "
                "the history at that cut-off")
             + ".</p>"]
    if metrics.get("served"):
        left_out = mase_leaves_out(
            metrics, lambda names: ", ".join(names[:10])
            + (", ..." if len(names) > 10 else ""))
        parts.append(
            f"<p>Over all series: MASE {_number(metrics['served']['mase'])} against "
            f"{_number(metrics['seasonal-naive']['mase'])} for seasonal naive"
            f"{html.escape(left_out)}; RMSE "
            f"{_number(metrics['relative_rmse'], 2)} times seasonal naive's.</p>")
    if coverage.get("measured"):
        parts.append(
            f"<p>Intervals: calibrated on the earlier cut-offs, the 80% interval held "
            f"{coverage['80']:.0%} and the 95% interval {coverage['95']:.0%} of the "
            f"{coverage['months']} months forecast from the later ones. Method: "
            f"{html.escape(metadata['intervals']['method'])}."
            + (" Lower bounds are clipped at zero." if
               metadata["intervals"]["clipped_at_zero"] else "")
            + "".join(f" Note: {html.escape(s)}."
                      for s in intervals.thin_levels(metadata["intervals"]))
            + "</p>")
    else:
        parts.append(f"<p>Interval coverage not measured: "
                     f"{html.escape(coverage.get('reason', ''))}.</p>")
    equal = intervals.equal_bands(metadata["intervals"])
    if equal:
        shown = ", ".join(equal[:10]) + (", ..." if len(equal) > 10 else "")
        sentence = intervals.equal_bands_sentence(equal, shown)
        parts.append(f"<p>Note: {html.escape(sentence)}.</p>")
    parts.append("<h2>Backtest scores</h2>" + metrics_table(metadata, names))
    special = [s for s in metadata["series"]
               if s["name"] in names and s["tier"] != "regular"]
    if metadata["gate"]["replaced"] or special:
        parts.append("<h2>Choices</h2><ul>")
        replaced = [s for s in metadata["series"] if s["name"] in names
                    and s["name"] in metadata["gate"]["replaced"]]
        for info in replaced[:1] + special:
            parts.append(f"<li>{html.escape(info['name'])}: "
                         f"{html.escape(info['reason'])}</li>")
        parts.append("</ul>")
    plotted = [v for v in views if v.name in images]
    parts.append(f"<h2>Forecasts</h2><p class=\"note\">Plots for {len(plotted)} of "
                 f"{len(names)} series" + (f" (at most {MAX_PLOTS}, the first by name; "
                                           "the table covers all)" if
                                           len(plotted) < len(names) else "") + ".</p>")
    for view in plotted:
        encoded = base64.b64encode(images[view.name]).decode("ascii")
        parts.append(f"<h3>{html.escape(view.name)}</h3>"
                     f"<p class=\"note\">{html.escape(view.reason)}</p>"
                     f"<img alt=\"{html.escape(view.name)}: history, backtest and "
                     f"forecast\" src=\"data:image/png;base64,{encoded}\">")
    parts.append("</body></html>")
    return "\n".join(parts)


def _views_from_training(frame, outcome) -> list[SeriesView]:
    from training.features import month_index

    views = []
    served = outcome.table
    # Each series' backtest rows found by one grouping, not by a scan of the whole
    # table per series, which made a report of thousands of series quadratic.
    served_rows = served.groupby("series", sort=False).indices
    for name, rows in frame.groupby("series", sort=True):
        months = month_index(rows["date"])
        ahead = np.arange(months.max() + 1, months.max() + 1 + REPORT_HORIZON)
        query = _query(name, ahead)
        point = outcome.model.predict(query)
        widths = outcome.intervals["series"][name]
        bands = {}
        for level in ("80", "95"):
            half = np.asarray(widths[level][:REPORT_HORIZON])
            lower = point - half
            if outcome.model.floor_ is not None:
                lower = np.maximum(lower, outcome.model.floor_)
            bands[level] = (lower, point + half)
        series_rows = served.iloc[served_rows.get(name, [])]
        backtests = [(int(o), r["month"].to_numpy(), r["served"].to_numpy())
                     for o, r in series_rows.groupby("origin")]
        choice = outcome.choices[name]
        views.append(SeriesView(name, choice.label, choice.reason, months,
                                rows["sales"].to_numpy(), ahead, point, bands,
                                backtests))
    return views


def _query(name: str, months: np.ndarray):
    import pandas as pd

    return pd.DataFrame({"date": _dates(months).astype("datetime64[ns]"),
                         "series": name})


def build(frame, outcome, metadata: dict) -> tuple[bytes, bytes]:
    """report.html and report.png for a freshly trained version."""
    views = _views_from_training(frame, outcome)
    names = [v.name for v in views]
    images = {v.name: series_png(v) for v in views[:MAX_PLOTS]}
    return page(metadata, views, images, names).encode("utf-8"), overview_png(views)


def served_view(metadata: dict, first: str, sales: list[float], table,
                name: str) -> SeriesView:
    """One series' view from a served version: its stored history (first month as
    YYYY-MM, then the sales: `artifact.read_history`), the backtest rows of its
    metadata (newest cut-off) and the predictor's table with intervals."""
    info = next(s for s in metadata["series"] if s["name"] == name)
    year, month = (int(p) for p in first.split("-"))
    values = np.asarray(sales, dtype=np.float64)
    months = np.arange(year * 12 + month - 1, year * 12 + month - 1 + len(values))
    rows = table.forecast_rows[:REPORT_HORIZON]
    forecast_months = months.max() + 1 + np.arange(len(rows))
    point = np.array([r["sales"] for r in rows])
    bands = {level: (np.array([r[f"lower_{level}"] for r in rows]),
                     np.array([r[f"upper_{level}"] for r in rows]))
             for level in ("80", "95")
             if rows and rows[0].get(f"lower_{level}") is not None}
    backtests = []
    entry = metadata.get("backtest", {}).get("series", {}).get(name)
    if entry:
        points = [(r["date"], r.get(info.get("model"))) for r in entry["rows"]]
        points = [(d, v) for d, v in points if v is not None]
        if points:
            stamps = np.array([int(d[:4]) * 12 + int(d[5:7]) - 1 for d, _ in points])
            backtests.append((int(stamps.min()) - 1, stamps,
                              np.array([v for _, v in points])))
    return SeriesView(name, info.get("model", "?"), info.get("reason", ""), months,
                      values, forecast_months, point, bands, backtests)


def series_page(metadata: dict, view: SeriesView) -> tuple[str, bytes]:
    """The HTML page and the PNG of one served series."""
    image = series_png(view)
    return page(metadata, [view], {view.name: image}, [view.name]), image
