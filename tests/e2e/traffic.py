"""Traffic from inside the cluster, for the end-to-end suite (runs in a pod).

    python traffic.py URL SECONDS THREADS PAUSE

THREADS threads each send POST URL/forecast in a loop, waiting PAUSE seconds between
requests, and stop after SECONDS. Once a second, a JSON line with the running totals
goes to stdout ({"elapsed", "ok", "failed"}), and every failure is printed as it
happens, so the suite can read progress from the pod's log while it runs. Standard
library only: the app image is the one image every cluster under test has.
"""

import json
import sys
import threading
import time
import urllib.error
import urllib.request

BODY = json.dumps({"horizon": 12}).encode()


def main() -> None:
    url, seconds, threads, pause = (sys.argv[1], float(sys.argv[2]), int(sys.argv[3]),
                                    float(sys.argv[4]))
    deadline = time.monotonic() + seconds
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def count(outcome: str, detail: str = "") -> None:
        with lock:
            counts[outcome] += 1
        if detail:
            print(f"FAILED {detail}", flush=True)

    def worker() -> None:
        while time.monotonic() < deadline:
            request = urllib.request.Request(
                url + "/forecast", data=BODY,
                headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as reply:
                    reply.read()
                count("ok")
            except urllib.error.HTTPError as error:
                count("failed", f"HTTP {error.code}: {error.read()[:200]!r}")
            except (urllib.error.URLError, OSError) as error:
                count("failed", f"{type(error).__name__}: {error}")
            if pause:
                time.sleep(pause)

    start = time.monotonic()
    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    while any(thread.is_alive() for thread in pool):
        time.sleep(1)
        with lock:
            totals = dict(counts)
        print(json.dumps({"elapsed": round(time.monotonic() - start, 1), **totals}),
              flush=True)


if __name__ == "__main__":
    main()
