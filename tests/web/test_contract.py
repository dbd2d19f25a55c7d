"""The API contract: OpenAPI 3.1 generated from the code, a docs page of this site, and schemathesis
fuzzing the live service (real Postgres, Redis and a worker): zero 5xx, every answer as documented."""
import json
import os
import re
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ElementTree

import pytest

from tests.conftest import serve
from tests.helpers import REPO, api_token


def _spec(client) -> dict:
    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    return answer.get_json()


def test_every_api_route_method_error_shape_and_auth_scheme_is_in_the_contract(pg_app):
    spec = _spec(pg_app.test_client())
    assert spec["openapi"] == "3.1.0"
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    for rule in pg_app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.endpoint.startswith("api."):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (path, method) in documented, f"{method} {path} is not in the contract"
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "description": schemes["bearer"]["description"]}
    assert schemes["session"]["in"] == "cookie"
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            errors = {code: answer for code, answer in op["responses"].items() if code.startswith(("4", "5")) and code != "503"}
            assert all(a["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
                       for a in errors.values()), (method, path)
    assert spec["paths"]["/api/v1/healthz"]["get"]["security"] == []  # the only open route
    upload = spec["paths"]["/api/v1/batches"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert [p["name"] for p in upload["parameters"]] == ["Idempotency-Key"]
    # OpenAPI 3.1 is JSON Schema 2020-12: a field that may be null says so as a type, not "nullable".
    assert "nullable" not in json.dumps(spec)


def test_the_docs_page_lists_every_route_without_any_script(pg_app):
    client = pg_app.test_client()
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "<script" not in page.split("<main", 1)[1].split("</main>", 1)[0]
    for path in _spec(client)["paths"]:
        assert path in page


@pytest.fixture()
def open_server(pg_stack):
    """The app with limits raised far above what the fuzzing sends (it tests answers, not limits)."""
    from web import create_app

    app = create_app({**pg_stack, "RATELIMIT_KEY_PREFIX": f"t-{uuid.uuid4().hex}", "api_rate_limit": "100000 per minute",
                      "upload_rate_limit": "100000 per minute", "quota_queued_jobs": 10**6})
    yield from serve(app)


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_contract(open_server, pg_url, tmp_path):
    token = api_token(pg_url, "fuzzer")
    junit = tmp_path / "schemathesis.xml"
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(REPO / "tests" / "schemathesis.toml"), "run",
         f"{open_server}/api/v1/openapi.json", "--url", open_server,
         "-H", f"Authorization: Bearer {token}", "--max-examples", "8", "--max-time", "150", "--workers", "1",
         "--seed", os.environ.get("XRAY_TEST_SCHEMATHESIS_SEED", "7"), "--report", "junit", "--report-junit-path", str(junit), "--no-color", "--warnings", "off"],
        cwd=REPO, capture_output=True, text=True, timeout=420)
    tail = (result.stdout + result.stderr)[-12000:]
    assert result.returncode == 0, tail
    cases = ElementTree.parse(junit).getroot().iter("testcase")
    names = [case.get("name") for case in cases]
    assert len(names) >= 15, names  # every operation was exercised
    summary = [line for line in tail.splitlines() if "passed" in line or "test cases" in line.lower()]
    print("\n".join(summary[-6:]))
