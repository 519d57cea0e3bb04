"""Look after the versions in a model store: list them, serve an earlier or unpublished
one, remove old ones.

    python -m training.versions list --model-dir models
    python -m training.versions publish --model-dir models 20261204T214201Z-30089c90
    python -m training.versions prune --model-dir models --keep 10

`publish` is how a version is rolled back to, or how one that training kept
unpublished (it scored worse than the served one, or lacked a series that one
answers) is served after all: the version is checked the way a service worker checks
it (its model file against the SHA-256 in its metadata, loaded through the allow-list
unpickler, then asked about every month it will ever answer) before CURRENT names it,
and a running service switches to it within its reload interval. `prune` runs only
while CURRENT names a version that passes the same check, and never removes that
version or the one a worker would go back to if CURRENT's version were damaged
later: the one published before it, or after a rollback the one published before the
version rolled back to, never one rolled back from (`artifact.publication_chain`).
Nor does it remove a version CURRENT named in the last ten minutes
(`artifact.recently_left`): workers notice a new CURRENT only at their next reload,
so they may still be serving it. Both hold the store's publish lock, so they cannot
interleave with a training run finishing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import unicodedata
from pathlib import Path
from typing import NamedTuple

from training import artifact

EXIT_OK, EXIT_REFUSED = 0, 2
# What a shell reports for a command killed by SIGPIPE.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


class VersionRefused(Exception):
    """The asked-for change to the store cannot be made; the message says why."""


def describe(model_dir: Path, version: str) -> dict:
    """What `list` shows of one version; a version whose metadata cannot be read is
    listed with the reason, so a damaged store can still be looked at."""
    try:
        metadata = artifact.read_metadata(model_dir, version)
    except artifact.ArtifactError as error:
        return {"version": version, "problem": str(error)}
    metrics = metadata.get("metrics") or {}
    served = metrics.get("served") or {}
    naive = metrics.get("seasonal-naive") or {}
    return {
        "version": version,
        "created_at": metadata.get("created_at"),
        "data": (metadata.get("data") or {}).get("source"),
        "series": len(metadata.get("series") or []),
        "mase": served.get("mase"),
        "seasonal_naive_mase": naive.get("mase"),
        "promoted": (metadata.get("promotion") or {}).get("promoted"),
    }


def versions_in(model_dir: Path) -> list[str]:
    """Complete versions, oldest first (see artifact.new_version_id)."""
    folder = Path(model_dir) / artifact.VERSIONS
    if not folder.is_dir():
        return []
    return sorted(path.name for path in folder.iterdir()
                  if artifact.VERSION_PATTERN.match(path.name) and path.is_dir()
                  and not path.is_symlink())


def current_or_none(model_dir: Path) -> str | None:
    try:
        return artifact.read_current(model_dir)
    except artifact.ArtifactError:
        return None


def list_versions(model_dir: Path) -> list[dict]:
    current = current_or_none(model_dir)
    return [{**describe(model_dir, version), "current": version == current}
            for version in versions_in(model_dir)]


def pointer_problem(model_dir: Path) -> str | None:
    """What is wrong with CURRENT, said the way `list` prints it, or None: workers
    started now would not serve the version it names."""
    try:
        current = artifact.read_current(model_dir)
    except artifact.ArtifactError as error:
        return (f"{error} Service workers serve the version published last that "
                "loads.")
    if current is None:
        return None
    problem = servable_problem(model_dir, current)
    if problem:
        return (f"{artifact.CURRENT} names {current}, which a service refuses: "
                f"{problem} Its workers serve the version published before it "
                "(never one rolled back from); publish one that loads.")
    return None


def series_of(model_dir: Path, version: str) -> set[str]:
    try:
        metadata = artifact.read_metadata(model_dir, version)
    except artifact.ArtifactError:
        return set()
    return {s.get("name") for s in metadata.get("series") or [] if isinstance(s, dict)}


def publish_version(model_dir: Path, version: str) -> tuple[str | None, list[str]]:
    """Make CURRENT name `version` after checking it loads; returns the version it
    named before (None if nothing was published) and the series that version
    answers and `version` does not (clients asking for them get 404 from now on)."""
    if not artifact.VERSION_PATTERN.match(version):
        raise VersionRefused(
            f"{version[:80]!r} is not a version id (they look like "
            "20261204T214201Z-30089c90); `list` shows the versions in the store.")
    with artifact.publish_lock(model_dir):
        if version not in versions_in(model_dir):
            raise VersionRefused(f"There is no version {version} in {model_dir}; "
                                 "`list` shows the versions in the store.")
        problem = servable_problem(model_dir, version)
        if problem:
            raise VersionRefused(f"Version {version} cannot be served: {problem}")
        previous = current_or_none(model_dir)
        if previous == version:
            return previous, []  # already served: no new entry in the record
        before = series_of(model_dir, previous) if previous else set()
        dropped = sorted(before - series_of(model_dir, version))
        artifact.set_current(model_dir, version)
    return previous, dropped


class Pruned(NamedTuple):
    removed: list[str]  # oldest first
    served: str  # what CURRENT names
    fallback: str | None  # where workers go back to if the served one is damaged
    passed: list[str]  # damaged ones on the way there, kept so the way holds
    left: list[str]  # named by CURRENT moments ago, spared for now (oldest first)


def prune_versions(model_dir: Path, keep: int, spared: str | None = None) -> Pruned:
    """Remove all but the `keep` newest versions, never the one CURRENT names nor the
    one that loads which workers go back to from it (`artifact.publication_chain`;
    also any damaged one on the way there), nor one CURRENT named moments ago
    (`artifact.recently_left`), nor `spared` (the version a training run just wrote:
    another run may have written a newer one meanwhile)."""
    if keep < 1:
        raise VersionRefused(f"--keep must be at least 1, got {keep}.")
    with artifact.publish_lock(model_dir):
        current = artifact.read_current(model_dir)
        if current is None:
            raise VersionRefused(
                f"Nothing is published in {model_dir} (no {artifact.CURRENT}), so "
                "nothing says which versions a service needs; publish one first.")
        problem = servable_problem(model_dir, current)
        if problem:
            raise VersionRefused(
                f"{artifact.CURRENT} names {current}, which a service refuses "
                f"({problem}); its workers serve an earlier version meanwhile, so "
                "nothing was removed. Publish a version that loads first (`list` "
                "shows them).")
        # Only complete versions take a place: a folder with a version's name and
        # no metadata (a copy still arriving, put there by hand) is left alone.
        names = [v for v in versions_in(model_dir)
                 if (Path(model_dir) / artifact.VERSIONS / v
                     / artifact.METADATA_FILE).is_file()]
        published = artifact.read_published(model_dir)
        earlier = [v for v in artifact.publication_chain(published, current)
                   if v != current and v in names]
        # Workers go back along that way to the first version that loads: a damaged
        # one on it (a CURRENT replaced because it was damaged) does not end it.
        fallback = []
        for version in earlier:
            fallback.append(version)
            if servable_problem(model_dir, version) is None:
                break
        newest = names[max(len(names) - keep, 0):]
        left = artifact.recently_left(model_dir, current)
        kept = {current, *fallback, *newest, spared, *left}
        doomed = [v for v in names if v not in kept]
        for version in doomed:
            artifact.remove_version(model_dir, version)
        # What a killed publisher left half-written takes room too, possibly the
        # room whose lack made someone prune.
        artifact.remove_stale_staging(model_dir)
    otherwise = {*fallback, *newest, spared}
    return Pruned(doomed, current, fallback[-1] if fallback else None,
                  fallback[:-1], [v for v in names if v in left and v not in otherwise])


def servable_problem(model_dir: Path, version: str) -> str | None:
    """Why a service worker would refuse `version`, or None: the worker's own checks
    (service.predictor builds every answer the version will ever give)."""
    # Imported here: the rest of this module, like the training job, needs no web
    # framework.
    from service.predictor import Predictor
    try:
        model, metadata = artifact.load_version(model_dir, version)
        Predictor(model, metadata)
    except Exception as error:  # anything a worker would refuse it for
        return str(error).rstrip(".") + "."
    return None


def _number(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_listing(rows: list[dict]) -> str:
    if not rows:
        return "no versions yet"
    lines = [f"  {'version':<27} {'created (UTC)':<20} {'series':>6} {'MASE':>6} "
             f"{'naive':>6}  data"]
    for row in rows:
        mark = "*" if row["current"] else " "
        if "problem" in row:
            lines.append(f"{mark} {row['version']:<27} unreadable: {row['problem']}")
            continue
        created = (row["created_at"] or "")[:19].replace("T", " ")
        status = "" if row["promoted"] is not False else "  (not promoted by training)"
        mase, naive = _number(row["mase"]), _number(row["seasonal_naive_mase"])
        lines.append(f"{mark} {row['version']:<27} {created:<20} {row['series']:>6} "
                     f"{mase:>6} {naive:>6}  {row['data']}{status}")
    lines.append("* the version CURRENT names (served); MASE over the version's own "
                 "backtest, next to seasonal naive's")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.versions",
        description="List, publish (roll back to) or prune the versions of a model "
                    "store.")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="every version, newest last")
    listing.add_argument("--json", action="store_true", help="print JSON")
    publish = commands.add_parser(
        "publish", help="serve VERSION: roll back, or publish a version that "
                        "training kept unpublished")
    publish.add_argument("version")
    prune = commands.add_parser(
        "prune", help="remove all but the newest versions (never the served one or "
                      "the one workers go back to from it)")
    prune.add_argument("--keep", type=int, required=True,
                       help="how many of the newest versions to keep")
    for command in (listing, publish, prune):
        command.add_argument("--model-dir", type=Path, required=True,
                             help="the model store")
    return parser.parse_args(argv)


def keep_output_printable() -> None:
    """Print what the terminal's encoding lacks as escapes, for both commands of the
    package: a series or file named in another script, under a Latin-1 or ASCII
    locale, must not turn a published model or a listing into a traceback and a
    failed run (stderr already does this by default)."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")


def in_column(text: str, width: int) -> str:
    """`text` cut and padded to `width` terminal cells: a character of a wide script
    (Chinese, Japanese, Korean) takes two cells and a mark drawn on the letter before
    it (an accent, a Thai or Indic vowel sign) or a joiner none, so that padding by
    characters would push the following columns out of line. A text too long keeps
    its start and its end around '...' (ASCII: three cells in every locale), as the
    names of one file often differ only at the end (a store's number). Known
    shortcoming: an emoji sequence drawn as one picture (a family, a flag, a symbol
    made an emoji by a variation selector) is counted as its parts, not as most
    terminals draw it; that needs the terminal's own grapheme rules."""
    used = _cells(text)
    if used <= width:
        return text + " " * (width - used)
    if width < 3:
        head = _fitting(text, width)
        return head + " " * (width - _cells(head))
    room = width - 3
    head = _fitting(text, room - room // 2)
    # From the end, in what the start left: a mark drawn on a letter left out goes
    # with it.
    tail = _fitting(text[::-1], room - _cells(head))[::-1]
    while tail and _cell_width(tail[0]) == 0:
        tail = tail[1:]
    cut = head + "..." + tail
    return cut + " " * (width - _cells(cut))


def _cell_width(char: str) -> int:
    if char != "\u00ad" and unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0  # (a soft hyphen is drawn)
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


def _cells(text: str) -> int:
    return sum(_cell_width(char) for char in text)


def _fitting(text: str, width: int) -> str:
    """The longest start of `text` that fits in `width` cells."""
    used = 0
    for index, char in enumerate(text):
        used += _cell_width(char)
        if used > width:
            return text[:index]
    return text


def main(argv=None) -> int:
    args = parse_args(argv)
    keep_output_printable()
    model_dir = args.model_dir
    if not model_dir.is_dir():
        print(f"error: {model_dir} is not a model store folder.", file=sys.stderr)
        return EXIT_REFUSED
    try:
        if args.command == "list":
            rows = list_versions(model_dir)
            print(json.dumps(rows, indent=2) if args.json else format_listing(rows))
            problem = pointer_problem(model_dir)
            if problem:
                print(f"warning: {problem}", file=sys.stderr)
        elif args.command == "publish":
            previous, dropped = publish_version(model_dir, args.version)
            if previous == args.version:
                print(f"{artifact.CURRENT} already names {args.version}; nothing "
                      "changed.")
                return EXIT_OK
            print(f"{artifact.CURRENT} names {args.version} (before: {previous}); a "
                  "running service switches to it within its reload interval.")
            if dropped:
                print(f"warning: {args.version} does not have {len(dropped)} series "
                      f"that {previous} answered; requests for them now get 404: "
                      f"{', '.join(repr(n) for n in dropped[:10])}"
                      + (" ..." if len(dropped) > 10 else ""), file=sys.stderr)
        else:
            pruned = prune_versions(model_dir, args.keep)
            removed = pruned.removed
            print(f"removed {len(removed)} version(s)"
                  + (f": {', '.join(removed)}" if removed else "")
                  + f"; kept {pruned.served} (served)"
                  + (f", {pruned.fallback} (published before it, where workers go "
                     "back to if the served one is damaged)" if pruned.fallback
                     else "")
                  + (f", {', '.join(pruned.passed)} (damaged, on the way back)"
                     if pruned.passed else "")
                  + (f", {', '.join(pruned.left)} (served until moments ago; "
                     "workers may not have switched yet)" if pruned.left else "")
                  + f" and the {args.keep} newest")
        sys.stdout.flush()  # a reader gone shows here, not at exit
    except (VersionRefused, artifact.ArtifactError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except BrokenPipeError:
        # The reader stopped reading (`| head`): not the store's doing. End as a
        # command killed by SIGPIPE does, with nothing left to flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as error:
        # A store mounted read-only (the chart's server pods) can be listed only.
        where = f" ({error.filename})" if error.filename else ""
        print(f"error: cannot change the model store {model_dir}: "
              f"{error.strerror or error}{where}.", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
