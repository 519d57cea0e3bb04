"""The API against its own OpenAPI document, fuzzed by schemathesis.

schemathesis (pinned in requirements/dev.txt) reads `GET /openapi.json` from a real
gunicorn process and sends generated requests to every operation: the document's
examples, boundary values of every constraint, random valid bodies, bodies that break
the schema (which must get a 4xx), wrong methods (405) and request sequences. Every
response is checked: no 5xx, status, content type and body as documented, and, from
`tests/fuzz_checks.py`, every error exactly `{"error", "code"}` with no stack trace.

FUZZ_EXAMPLES (examples per operation, default 25) and FUZZ_SEED (default 1) make a
run longer or different; the same seed repeats the same requests.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service import openapi
from tests.conftest import ROOT

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance,"
          "negative_data_rejection,unsupported_method,one_error_shape,no_stack_trace")


def test_every_route_is_described_and_nothing_else(app):
    described = openapi.described_operations(app.test_client().get(
        "/openapi.json").get_json())

    assert openapi.routed_operations(app) == described


def test_the_document_is_openapi_3_1_and_its_references_resolve(client):
    import schemathesis

    document = client.get("/openapi.json").get_json()
    schema = schemathesis.openapi.from_dict(document)

    assert document["openapi"] == "3.1.0"
    operations = list(schema.get_all_operations())
    assert len(operations) == len(openapi.described_operations(document))
    for result in operations:
        # ok() raises when an operation's $refs or parameters cannot be resolved.
        result.ok()


def test_the_limits_in_the_document_are_the_ones_the_views_enforce(client):
    from service.http import MAX_ROWS
    from service.predictor import MAX_MONTHS_AHEAD

    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    horizon = schemas["ForecastRequest"]["properties"]["horizon"]

    too_far = client.post("/forecast", json={"horizon": horizon["maximum"] + 1})
    furthest = client.post("/forecast", json={"horizon": horizon["maximum"]})
    assert horizon["maximum"] == MAX_MONTHS_AHEAD
    assert (too_far.status_code, furthest.status_code) == (400, 200)
    assert schemas["PredictRequest"]["properties"]["instances"]["maxItems"] == MAX_ROWS


def test_the_upload_form_fields_in_the_document_are_the_ones_accepted(client):
    from service.page import UPLOAD_FIELDS

    upload = client.get("/openapi.json").get_json()["components"]["schemas"]["Upload"]

    # Any other form field is refused with a 400, so the document must not allow it.
    assert set(upload["properties"]) == UPLOAD_FIELDS
    assert upload.get("additionalProperties") is False


@pytest.mark.parametrize("accept", [
    # What Prometheus sends: OpenMetrics first, the text format as a fallback.
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,"
    "*/*;q=0.1",
    "text/plain",
], ids=["prometheus", "text"])
def test_every_content_type_the_metrics_endpoint_answers_is_described(client, accept):
    responses = client.get("/openapi.json").get_json()["paths"]["/metrics"]["get"][
        "responses"]

    answered = client.get("/metrics", headers={"Accept": accept})

    assert answered.status_code == 200
    assert answered.mimetype in responses["200"]["content"]


@pytest.mark.integration
def test_schemathesis_finds_no_failure_against_gunicorn(live_server, store_copy,
                                                        tmp_path):
    examples = int(os.environ.get("FUZZ_EXAMPLES", "25"))
    seed = int(os.environ.get("FUZZ_SEED", "1"))
    # Uploads on, so the upload endpoints' validation is fuzzed too (a random body
    # is never a trainable CSV; if one were, it would publish into this copy).
    server = live_server(store_copy, SALES_FORECAST_UPLOADS="1")
    reports = tmp_path / "schemathesis"

    run = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run",
         f"{server.url}/openapi.json", "--checks", CHECKS,
         "--max-examples", str(examples), "--seed", str(seed), "--workers", "1",
         "--request-timeout", "20", "--report", "json", "--report-dir", str(reports),
         "--no-color"],
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz_checks",
             "PYTHONPATH": str(ROOT)},
        cwd=tmp_path, capture_output=True, text=True, timeout=540)
    report = json.loads(next(reports.glob("*.json")).read_text())
    cases, operations = report["test_cases"], report["operations"]
    failures = sum(f["count"] for f in report["failures"])

    print(f"\nschemathesis: {operations['tested']}/{operations['total']} operations, "
          f"{cases['generated']} requests generated ({examples} examples per "
          f"operation and phase, seed {seed}), {failures} failures, "
          f"{len(report['errors'])} errors, {report['running_time']:.0f} s")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert operations["tested"] == operations["total"] > 0
    assert cases["generated"] >= examples * operations["total"]
    assert "Traceback" not in server.log(), server.log()[-4000:]
