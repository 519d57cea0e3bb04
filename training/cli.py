"""`python -m training`: load a sales history, fit, evaluate and publish a model."""

import argparse
import hashlib
import json
import sys
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from training import artifact
from training.data import Columns, DataError, LoadedSales, load_sales
from training.evaluate import DEFAULT_HOLDOUT, holdout_scores
from training.models import DEFAULT_MODEL, MODEL_KINDS, SalesForecaster

EXIT_OK, EXIT_BAD_INPUT = 0, 2
# A sales history is kilobytes to a few megabytes; anything far larger is a wrong URL.
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024
DOWNLOAD_TIMEOUT_SECONDS = 60


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train a monthly sales model and publish it into a model directory.",
    )
    parser.add_argument("--data", required=True,
                        help="CSV file, or an http(s) URL to download it from")
    parser.add_argument("--model-dir", required=True, type=Path,
                        help="model store to publish the new version into")
    parser.add_argument("--date-col", default="date", help="date column (default: date)")
    parser.add_argument("--sales-col", default="sales",
                        help="sales column (default: sales)")
    parser.add_argument("--series-col", default="series",
                        help="series column, optional in the file (default: series)")
    parser.add_argument("--series-name", default=None,
                        help="name of the series when the file has no series column "
                             "(default: the file name without extension)")
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(MODEL_KINDS),
                        help=f"model kind (default: {DEFAULT_MODEL})")
    parser.add_argument("--holdout", type=int, default=DEFAULT_HOLDOUT,
                        help="months held out at the end for scoring (default: 12)")
    parser.add_argument("--fill-gaps", choices=["interpolate"], default=None,
                        help="fill missing months instead of refusing the file")
    parser.add_argument("--encoding", default="utf-8", help="file encoding (utf-8)")
    parser.add_argument("--strict", action="store_true",
                        help="refuse the whole file when any series is bad")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as JSON on stdout")
    args = parser.parse_args(argv)
    if not 1 <= args.holdout <= 60:
        parser.error(f"--holdout must be between 1 and 60 months, got {args.holdout}")
    return args


def read_source(source: str) -> tuple[bytes, str]:
    """The raw bytes of a local file or URL, and the name to use for it in messages."""
    if source.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(source, timeout=DOWNLOAD_TIMEOUT_SECONDS) as r:
                content = r.read(MAX_DOWNLOAD_BYTES + 1)
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise DataError(f"Cannot download {source}: {e}. Check the URL and that "
                            "this machine can reach it.") from None
        if len(content) > MAX_DOWNLOAD_BYTES:
            raise DataError(f"{source} is larger than {MAX_DOWNLOAD_BYTES} bytes; "
                            "that is not a monthly sales history.")
        return content, source.rstrip("/").rsplit("/", 1)[-1] or source

    path = Path(source)
    try:
        return path.read_bytes(), path.name
    except FileNotFoundError:
        raise DataError(f"{source}: no such file. Pass the CSV's path to --data.") from None
    except IsADirectoryError:
        raise DataError(f"{source} is a directory; pass a CSV file to --data.") from None
    except OSError as e:
        raise DataError(f"Cannot read {source}: {e.strerror}.") from None


def fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of the parsed rows, so the same history gives the same fingerprint
    however the file was formatted."""
    canonical = frame.to_csv(index=False, date_format="%Y-%m", float_format="%.10g")
    return hashlib.sha256(canonical.encode()).hexdigest()


def library_versions() -> dict:
    import joblib
    import numpy
    import sklearn

    return {"python": sys.version.split()[0], "scikit-learn": sklearn.__version__,
            "pandas": pd.__version__, "numpy": numpy.__version__,
            "joblib": joblib.__version__}


def load(content: bytes, name: str, args) -> LoadedSales:
    """Parse a history exactly as training does, with the options in `args`; the
    upload page calls this alone to show what training would see."""
    columns = Columns(date=args.date_col, sales=args.sales_col, series=args.series_col)
    return load_sales(content, columns=columns, strict=args.strict,
                      fill_gaps=args.fill_gaps, encoding=args.encoding,
                      series_name=args.series_name or Path(name).stem,
                      source_name=name, min_months=args.holdout + 24)


def history_file(frame: pd.DataFrame) -> bytes:
    """The training months as JSON, stored beside the model so the browser page can
    draw what the model learned from. Months are contiguous within a series, so the
    first month and the list of values say everything."""
    history = {
        str(series): {"first": rows["date"].iloc[0].strftime("%Y-%m"),
                      "sales": rows["sales"].tolist()}
        for series, rows in frame.groupby("series", sort=True)
    }
    return json.dumps({"series": history}, separators=(",", ":")).encode()


def train(args, loaded: LoadedSales | None = None) -> dict:
    """Everything but publishing: returns the fitted model and its metadata.
    `loaded` is a history already parsed with `load` (an upload); without it the
    file or URL in `args.data` is read."""
    if loaded is None:
        content, name = read_source(args.data)
        loaded = load(content, name, args)
    name, frame = loaded.source, loaded.frame

    evaluation = {}
    for series, rows in frame.groupby("series", sort=True):
        evaluation[series] = holdout_scores(rows, args.model, holdout=args.holdout)

    model = SalesForecaster(default=args.model).fit(frame[["date", "series"]],
                                                   frame["sales"].to_numpy())
    digest = fingerprint(frame)
    now = datetime.now(timezone.utc)
    series_info = [
        {"name": s, "first": r["date"].iloc[0].strftime("%Y-%m"),
         "last": r["date"].iloc[-1].strftime("%Y-%m"), "months": len(r),
         "model": args.model}
        for s, r in frame.groupby("series", sort=True)
    ]
    metadata = {
        "created_at": now.isoformat(timespec="seconds"),
        "model_kind": args.model,
        "data": {"source": name, "fingerprint": digest, "rows": len(frame),
                 "series_count": len(series_info),
                 "first": frame["date"].min().strftime("%Y-%m"),
                 "last": frame["date"].max().strftime("%Y-%m"),
                 "notes": loaded.notes, "rejected": loaded.rejected},
        "series": series_info,
        "feature_contract": {
            "inputs": {"date": "month, as YYYY-MM or YYYY-MM-DD",
                       "series": "one of the trained series names"},
            "output": "sales, in the unit of the training data",
            "frequency": "monthly",
        },
        "evaluation": evaluation,
        "libraries": library_versions(),
    }
    version = f"{now:%Y%m%dT%H%M%SZ}-{digest[:8]}"
    return {"version": version, "model": model, "metadata": metadata,
            "files": {artifact.HISTORY_FILE: history_file(frame)}}


def publish(model_dir: Path, trained: dict) -> Path:
    with artifact.publish_lock(model_dir):
        # A run killed while writing left a hidden staging directory; under the lock
        # nobody else is writing, so whatever staging is there now is dead.
        artifact.remove_stale_staging(model_dir)
        path = artifact.write_version(model_dir, trained["version"], trained["model"],
                                      trained["metadata"], trained.get("files"))
        artifact.set_current(model_dir, trained["version"])
    return path


def format_summary(version: str, metadata: dict) -> str:
    data = metadata["data"]
    lines = [
        f"Published model {version}",
        f"  data: {data['source']}, {data['rows']} months in {data['series_count']} "
        f"series, {data['first']} to {data['last']}",
    ]
    lines += [f"  note: {n}" for n in data["notes"]]
    lines += [f"  rejected series {s!r}: {why}" for s, why in data["rejected"].items()]
    lines.append(f"  holdout: last {next(iter(metadata['evaluation'].values()))['holdout_months']}"
                 " months of each series, model refit on all months afterwards")
    header = f"  {'series':<24} {'model':<15} {'RMSE':>10} {'MAE':>10} {'MAPE%':>7} {'MASE':>6}"
    lines.append(header)
    for series, result in metadata["evaluation"].items():
        for kind, m in result["scores"].items():
            mape = "undef" if m["mape"] is None else f"{m['mape']:.1f}"
            mase = "undef" if m["mase"] is None else f"{m['mase']:.2f}"
            lines.append(f"  {series[:24]:<24} {kind:<15} {m['rmse']:>10.1f} "
                         f"{m['mae']:>10.1f} {mape:>7} {mase:>6}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        trained = train(args)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT

    path = publish(args.model_dir, trained)
    if args.json:
        print(json.dumps({"version": trained["version"], "path": str(path),
                          **trained["metadata"]}, indent=2))
    else:
        print(format_summary(trained["version"], trained["metadata"]))
    return EXIT_OK
