"""Checks of our own for schemathesis (loaded through SCHEMATHESIS_HOOKS).

docs/api.md 1.1: every /api answer, success or error (401, 404, 413, 500 too),
is a JSON object that starts with Status, Key and Value. The OpenAPI
document itself (GET /api/openapi.json) is the one /api answer that is not.
"""

import json
from urllib.parse import urlparse

import schemathesis


@schemathesis.check
def envelope(ctx, response, case):
    # The path as sent (the document may put /api in its servers entry).
    path = urlparse(response.request.url).path
    if case.method.upper() == "HEAD" or not path.lower().startswith("/api"):
        return None
    if path.lower() == "/api/openapi.json":
        return None
    # The export's 200 is an NDJSON dump (documented as such); its errors
    # before the first line are envelopes like any other.
    content_type = next(
        (v[0] if isinstance(v, list) and v else str(v) for k, v in response.headers.items() if k.lower() == "content-type"),
        "",
    )
    if response.status_code == 200 and content_type.startswith("application/x-ndjson"):
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"not JSON: {response.content[:200]!r}")
    if not isinstance(body, dict):
        raise AssertionError("the envelope must be a JSON object")
    keys = list(body)[:3]
    if keys != ["Status", "Key", "Value"]:
        raise AssertionError(f"the envelope must start with Status, Key, Value; starts with {keys}")
    if not isinstance(body["Status"], bool) or not isinstance(body["Key"], str) or not isinstance(body["Value"], str):
        raise AssertionError("Status is a boolean, Key and Value are strings")
    if body["Status"] != (body["Key"] == "OK"):
        raise AssertionError(f"Status {body['Status']} does not match Key {body['Key']!r}")
    return None


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    """NDJSON request bodies (bulk loads, import): a generated list is one
    JSON value per line; anything else is one line."""
    if isinstance(value, bytes):
        return value
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item) + "\n" for item in items).encode()
