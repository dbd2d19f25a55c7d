"""Pages under hostile parameters (the attacker's five 500s, then a property-based walk of every page
route), and which routes answer without signing in. Real Postgres, Redis and a worker behind the app."""
import html
import re
import urllib.parse
import uuid

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from tests.web.test_accounts import csrf_of, sign_in

# Routes anyone may call: the health checks, the API's contract (it describes routes, holds no data),
# signing in and out, static files. Every other route needs a session or a token (SECURITY.md).
PUBLIC = {"healthz", "api.healthz", "contract.openapi", "contract.docs", "docs_redirect", "auth.signin", "auth.signin_link",
          "auth.signout", "static"}


@pytest.fixture()
def app(pg_stack):
    from web import create_app

    return create_app({**pg_stack, "RATELIMIT_KEY_PREFIX": f"t-{uuid.uuid4().hex}", "signin_rate_limit": "1000 per minute"})


@pytest.fixture()
def open_forms_app(pg_stack):
    """CSRF off, so that hostile form values reach the views instead of stopping at the CSRF check."""
    from web import create_app

    return create_app({**pg_stack, "RATELIMIT_KEY_PREFIX": f"t-{uuid.uuid4().hex}", "WTF_CSRF_ENABLED": False,
                       "upload_rate_limit": "100000 per minute"})


def _text(answer) -> str:
    return html.unescape(answer.get_data(as_text=True))


def test_the_five_urls_that_answered_500_now_say_what_is_wrong(app):
    admin = sign_in(app, "hostile-admin", role="admin")
    for url, status, words in (("/history?to=9999-12-31", 400, "'to'"), ("/history?q=%00", 400, "control characters"),
                               ("/models/%00", 404, "no such model"), ("/admin/audit?actor=%00", 400, "'actor'")):
        answer = admin.get(url)
        assert answer.status_code == status and words in _text(answer), (url, answer.status_code, _text(answer)[-400:])
    page = admin.get("/account").get_data(as_text=True)
    answer = admin.post("/account/tokens", data={"csrf_token": csrf_of(page), "name": "n", "days": "nan"})
    assert answer.status_code == 400 and "'days'" in _text(answer)
    assert admin.get("/history?from=2026-01-01&to=2026-12-31&q=smith&finding=Mass").status_code == 200
    assert admin.get("/history?from=&to=&q=&finding=&page=").status_code == 200  # an empty form is no filter


HOSTILE = st.sampled_from(["\x00", "%00", "9999-12-31", "0001-01-01", "2026-02-30", "nan", "inf", "-1", "1e400",
                           "99999999999999999999999", "' OR 1=1 --", "<script>alert(1)</script>", "../../etc/passwd",
                           "\u202e\ufeff", "é" * 300, "x" * 5000, "", " ", "Mass", "csv", "1", "page"]) \
    | st.text(max_size=40)
NAMES = st.sampled_from(["page", "per_page", "q", "finding", "from", "to", "since", "action", "actor", "format", "next",
                         "days", "name", "url", "current", "new", "repeat", "rotate"]) | st.text(min_size=1, max_size=8)


def _page_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in ("pages", "admin", "auth") and rule.endpoint not in ("auth.signout", "auth.signin"):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield method, rule


@pytest.fixture()
def admin_pages(open_forms_app):
    return sign_in(open_forms_app, "fuzzy-admin", role="admin")


@hypothesis_settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_page_route_answers_hostile_parameters_without_a_server_error(open_forms_app, admin_pages, data):
    method, rule = data.draw(st.sampled_from(list(_page_rules(open_forms_app))))
    path = rule.rule
    for argument in rule.arguments:
        value = data.draw(HOSTILE | st.just(str(uuid.uuid4())))
        path = re.sub(rf"<(?:\w+:)?{argument}>", urllib.parse.quote(value, safe="") or "x", path)
    params = data.draw(st.dictionaries(NAMES, HOSTILE, max_size=4))
    if method == "GET":
        answer = admin_pages.get(path, query_string=params)
    else:
        answer = admin_pages.open(path, method=method, data=params)
    assert answer.status_code < 500, (method, path, params, answer.get_data(as_text=True)[-600:])


def _fill(rule) -> str:
    values = {"batch_id": str(uuid.uuid4()), "job_id": str(uuid.uuid4()), "token_id": str(uuid.uuid4()), "kind": "csv",
              "label": "Mass", "version": "v1", "secret": "not-a-link", "filename": "style.css",
              "username": "someone", "name": "candidate"}
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], rule.rule)


def test_only_the_documented_routes_answer_without_signing_in(app):
    anonymous = app.test_client()
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            answer = anonymous.open(_fill(rule), method=method)
            if rule.endpoint in PUBLIC:
                continue
            signin_redirect = answer.status_code == 302 and answer.headers["Location"].startswith("/signin")
            csrf_refused = answer.status_code == 400 and method != "GET" and "form expired" in _text(answer)
            assert answer.status_code == 401 or signin_redirect or csrf_refused, (method, rule.rule, answer.status_code)
    assert anonymous.get("/api/v1/openapi.json").status_code == 200 and anonymous.get("/api/v1/docs").status_code == 200
    moved = anonymous.get("/docs")
    assert moved.status_code == 301 and moved.headers["Location"].endswith("/api/v1/docs")
