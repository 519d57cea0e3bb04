"""Checks schemathesis runs on every response, beside its own (loaded through the
SCHEMATHESIS_HOOKS variable by `tests/test_fuzz.py`).

Its built-in checks compare responses with the OpenAPI document; these add what the
document cannot say: an error is always exactly `{"error", "code"}`, and no answer
ever carries a Python stack trace.
"""

import json

import schemathesis

TRACE_MARKERS = ("Traceback (most recent call last)", 'File "/')


@schemathesis.check
def one_error_shape(ctx, response, case):
    if response.status_code < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{response.status_code} answer is not JSON: "
                             f"{response.content[:200]!r}") from None
    if not isinstance(body, dict) or set(body) != {"error", "code"}:
        raise AssertionError(f"{response.status_code} answer is not exactly "
                             f'{{"error", "code"}}: {body!r:.200}')
    if not (isinstance(body["error"], str) and body["error"]
            and isinstance(body["code"], str) and body["code"]):
        raise AssertionError(f"error and code must be non-empty strings: {body!r:.200}")
    return None


@schemathesis.check
def no_stack_trace(ctx, response, case):
    text = response.content.decode("utf-8", errors="replace")
    for marker in TRACE_MARKERS:
        if marker in text:
            raise AssertionError(f"the answer contains a stack trace ({marker!r})")
    return None
