"""Throughput, latency, cold start and memory of the service against reference servers.

Run it with `make bench` or `.venv/bin/python -m bench.perf`; `--help` lists the
options. The package's modules: `reference_model` (the pipeline the comparison
servers serve), `baseline_app` and `hello_app` (the comparison Flask apps),
`servers` (starting each server and measuring it), `wrk` (driving the load
generator), `hotpath` (a micro-benchmark of one request inside a worker).
"""
