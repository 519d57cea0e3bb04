"""Model swaps under load: how long until every worker serves a new version, and
whether any request fails while versions come and go.

    .venv/bin/python -m bench.lifecycle                 # 10 cycles
    .venv/bin/python -m bench.lifecycle --cycles 30 --rate 100 --interval 5

Each cycle publishes a good version (the way training does: staging directory,
rename, CURRENT), waits until every answer names it, then publishes a broken one
(truncated model, changed byte, CURRENT holding a path, in turn) that must change
nothing. The switch time is from the moment CURRENT moved to the last answer from
the old version; with a reload interval of I seconds it is at most about I plus the
time to load and self-check the model. The run fails (exit 1) on any failed request
or any answer from a version that should not be served.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.soak import WINEIND, percentile, start_server
from bench.traffic import Traffic, summarize
from training import artifact


def version_id(n: int) -> str:
    """A valid version id that sorts after anything trained today."""
    return f"20300101T{n // 3600 % 24:02d}{n // 60 % 60:02d}{n % 60:02d}Z-{n:08x}"


def publish_copy(store: Path, source: Path, n: int, current: bool = True) -> str:
    """Write the current model of `source` (an untouched store) into `store` as a new
    version `n`, the way training publishes (staging directory, rename, then CURRENT
    unless `current` is false), and return its id."""
    version = version_id(n)
    source_version = artifact.read_current(source)
    model, metadata = artifact.load_version(source, source_version)
    extra = {}
    history = source / artifact.VERSIONS / source_version / artifact.HISTORY_FILE
    if history.exists():
        extra[artifact.HISTORY_FILE] = history.read_bytes()
    metadata = {k: v for k, v in metadata.items() if k not in ("version", "sha256")}
    with artifact.publish_lock(store):
        artifact.write_version(store, version, model, metadata, extra)
        if current:
            artifact.set_current(store, version)
    return version


def model_path(store: Path, version: str) -> Path:
    return store / artifact.VERSIONS / version / artifact.MODEL_FILE


def truncate_with_matching_hash(store: Path, version: str) -> None:
    """Cut the model file in half and record the cut file's hash, so the hash check
    passes and the load itself must fail."""
    path = model_path(store, version)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    meta = store / artifact.VERSIONS / version / artifact.METADATA_FILE
    document = json.loads(meta.read_text())
    document["sha256"] = artifact.sha256_of(path)
    meta.write_text(json.dumps(document))


def flip_one_byte(store: Path, version: str) -> None:
    path = model_path(store, version)
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))


def point_current_at(store: Path, text: str) -> None:
    """Replace CURRENT with arbitrary text, atomically, as a careless operator might."""
    tmp = store / ".CURRENT-by-hand"
    tmp.write_text(text)
    os.replace(tmp, store / artifact.CURRENT)


def publish_broken(store: Path, source: Path, n: int, damage) -> str:
    version = publish_copy(store, source, n, current=False)
    damage(store, version)
    artifact.set_current(store, version)
    return version


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.lifecycle", description=(
        __doc__.split("\n\n")[0]))
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--rate", type=float, default=80.0,
                        help="requests per second, all clients together (default 80)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="SALES_FORECAST_RELOAD_INTERVAL of the server (default 1; "
                             "the service's own default is 5)")
    parser.add_argument("--workers", type=int, default=2)
    return parser.parse_args(argv)


def wait_for(results_of, version: str, since: float, limit: float) -> float | None:
    """Seconds from `since` until answers name `version` and no later answer names
    another one, or None if that did not happen within `limit` seconds."""
    deadline = since + limit
    while time.monotonic() < deadline:
        recent = [r for r in results_of() if r.started > since]
        if recent and recent[-1].version == version and len(recent) >= 20:
            last_old = max((r.finished for r in recent if r.version != version),
                           default=since)
            if time.monotonic() - last_old > 1.0:
                return last_old - since
        time.sleep(0.1)
    return None


def run(args) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="sales-forecast-lifecycle-"))
    source, store = workdir / "source", workdir / "models"
    subprocess.run([sys.executable, "-m", "training", "--data", str(WINEIND),
                    "--model-dir", str(source)], check=True, stdout=subprocess.DEVNULL)
    shutil.copytree(source, store)
    os.environ["SALES_FORECAST_RELOAD_INTERVAL"] = str(args.interval)
    process, url = start_server(store, workdir, args.workers)
    clients = 4
    traffic = Traffic(url, clients=clients, rate=args.rate / clients, timeout=30,
                      max_seconds=args.cycles * (4 * args.interval + 20) + 60).start()
    damages = [("truncated", lambda n: publish_broken(
                    store, source, n, truncate_with_matching_hash)),
               ("changed byte",
                lambda n: publish_broken(store, source, n, flip_one_byte)),
               ("path in CURRENT", lambda n: point_current_at(store, "../x\n"))]
    switches, problems = [], []
    print(f"lifecycle: {args.cycles} cycles at {args.rate:g} requests/s, reload "
          f"interval {args.interval:g} s, {args.workers} workers")
    try:
        time.sleep(2)
        for cycle in range(args.cycles):
            at = time.monotonic()
            good = publish_copy(store, source, 2 * cycle + 1)
            switched = wait_for(traffic.snapshot, good, at, 4 * args.interval + 15)
            if switched is None:
                problems.append(f"cycle {cycle}: {good} not served everywhere in time")
                break
            switches.append(switched)

            name, damage = damages[cycle % len(damages)]
            at = time.monotonic()
            damage(2 * cycle + 2)
            time.sleep(2 * args.interval + 1)
            wrong = {r.version for r in traffic.snapshot() if r.started > at} - {good}
            if wrong:
                problems.append(f"cycle {cycle}: {name} candidate changed the answers "
                                f"to {wrong}")
            print(f"  cycle {cycle + 1:>3}: {good} everywhere after {switched:.2f} s; "
                  f"{name} candidate refused: {'no' if wrong else 'yes'}")
    finally:
        results = traffic.stop()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)

    summary = summarize(results)
    print(f"\nrequests: {summary['sent']} sent, {summary['failed']} failed "
          f"{summary['by_kind'] or ''}")
    if switches:
        print(f"switch time: median {percentile(switches, 0.5):.2f} s, max "
              f"{max(switches):.2f} s over {len(switches)} swaps")
    if summary["failed"]:
        problems.append(f"{summary['failed']} requests failed")
    if problems:
        print("LIFECYCLE FAILED: " + "; ".join(problems) + f" (logs in {workdir})")
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def main(argv=None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
