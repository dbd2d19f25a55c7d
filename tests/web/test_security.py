"""Security of the web: headers on every route, the secret key, patient identifiers in uploaded files,
hostile input (NUL and undecodable names, absurd pages, too many parts, over-long URLs and headers),
quotas, and a property-based fuzz of the upload endpoint. Real Postgres and Redis."""
import io
import json
import socket
import stat
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from shared.ops.config import ConfigError
from tests.helpers import (REPO, TEST_SECRET_KEY, TokenClient, api_token, free_port, multipart, real_xray_bytes,
                           service_env, wait_until)
from tests.shared.test_privacy import NAME, jpeg_with_identifiers, png_with_identifiers


def _app(pg_stack, **overrides):
    from web import create_app

    return create_app({**pg_stack, "RATELIMIT_KEY_PREFIX": f"t-{uuid.uuid4().hex}", **overrides})


@pytest.fixture()
def app(pg_stack):
    return _app(pg_stack)


@pytest.fixture()
def client(app, alice_token):
    return TokenClient(app.test_client(), alice_token)


def _stored_keys(pg_stack) -> set[str]:
    root = pg_stack["storage_dir"] / "uploads"
    return {f"uploads/{p.name}" for p in root.iterdir()} if root.is_dir() else set()


def _keys_in_database(pg_url) -> set[str]:
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        keys = set(conn.execute(sa.text("SELECT image_key FROM jobs WHERE image_key IS NOT NULL")).scalars())
    engine.dispose()
    return keys


def test_every_route_answers_with_the_security_headers(app, client):
    created = client.post("/api/v1/batches", data=multipart(real_xray_bytes(1)), content_type="multipart/form-data")
    batch = created.get_json()
    ids = {"batch_id": batch["id"], "job_id": batch["jobs"][0]["id"], "label": "Atelectasis", "secret": "x",
           "token_id": str(uuid.uuid4()), "filename": "style.css", "kind": "csv",
           "version": created.get_json()["served_model"]["version"], "username": "nobody", "name": "candidate"}
    image = client.get(f"/api/v1/jobs/{ids['job_id']}/image")
    assert image.status_code == 200 and image.headers["Cache-Control"] == "private, no-store"
    checked = 0
    for rule in app.url_map.iter_rules():
        url = rule.build(ids)[1] if rule.arguments else rule.rule
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            answer = client.open(url, method=method)
            headers = answer.headers
            csp = headers.get("Content-Security-Policy", "")
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp, url
            assert headers.get("X-Content-Type-Options") == "nosniff", url
            assert headers.get("Referrer-Policy") == "no-referrer", url
            assert headers.get("X-Frame-Options") == "DENY", url
            assert "Server" not in headers, url
            checked += 1
    assert checked > 20


def test_cookies_are_samesite_httponly_and_secure_with_hsts_over_tls(pg_stack):
    plain = _app(pg_stack).test_client().get("/signin")
    cookie = plain.headers["Set-Cookie"]
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie and "Secure" not in cookie
    assert "Strict-Transport-Security" not in plain.headers
    tls = _app(pg_stack, tls=True).test_client().get("/signin", base_url="https://localhost")
    assert "Secure" in tls.headers["Set-Cookie"] and "max-age" in tls.headers["Strict-Transport-Security"]


def test_the_web_refuses_to_start_without_a_strong_secret_outside_the_embedded_run(pg_stack, tmp_path):
    from web import create_app

    with pytest.raises(ConfigError, match="XRAY_SECRET_KEY is not set"):
        create_app({**pg_stack, "secret_key": ""})  # Postgres: not the embedded run
    for weak in ("dev-only-change-me", "short"):
        with pytest.raises(ConfigError, match="too weak"):
            create_app({**pg_stack, "secret_key": weak})
    sqlite = {"database_url": f"sqlite:///{tmp_path / 'x.db'}", "var_dir": tmp_path, "secret_key": ""}
    with pytest.raises(ConfigError, match="bind 0.0.0.0:8000"):
        create_app({**sqlite, "bind": "0.0.0.0:8000"})
    first = create_app(sqlite).config["SECRET_KEY"]  # embedded on loopback: generated once, kept private
    assert len(first) >= 32 and create_app(sqlite).config["SECRET_KEY"] == first
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600


def test_identifiers_in_png_text_and_jpeg_comments_never_reach_storage_or_a_response(client, pg_stack):
    before = _stored_keys(pg_stack)
    files = [("DOE_JANE_chest.png", png_with_identifiers()), ("scan.jpg", jpeg_with_identifiers())]
    created = client.post("/api/v1/batches", data=multipart(files), content_type="multipart/form-data")
    assert created.status_code == 202
    from tests.web.test_api import wait_for_batch

    batch = wait_for_batch(client, created.headers["Location"])
    assert batch["counts"]["succeeded"] == 2
    new = _stored_keys(pg_stack) - before
    assert len(new) == 2
    for path in pg_stack["storage_dir"].rglob("*"):
        if path.is_file():
            assert NAME not in path.read_bytes(), path
    answers = [client.get(batch["url"]).data]
    for job in batch["jobs"]:
        detail = client.get(job["url"])
        answers += [detail.data, client.get(job["image_url"]).data]
        answers += [client.get(f["overlay_url"]).data for f in detail.get_json()["findings"] if f["overlay_url"]]
    assert not any(NAME in answer for answer in answers)


def test_a_nul_in_a_file_name_keeps_the_good_files_and_names_are_cleaned(client, pg_stack, pg_url):
    good = real_xray_bytes(2)
    files = [("evil\x00name.png", good[0][1]), ("ok\x1b[31m.png", good[1][1]), ("notes.png", b"not an image")]
    created = client.post("/api/v1/batches", data=multipart(files), content_type="multipart/form-data")
    assert created.status_code == 202
    names = [job["filename"] for job in created.get_json()["jobs"]]
    assert names == ["evilname.png", "ok[31m.png", "notes.png"]
    assert _stored_keys(pg_stack) <= _keys_in_database(pg_url)


def test_when_recording_a_batch_fails_its_stored_bytes_are_removed(app, client, pg_stack, pg_url, monkeypatch):
    from shared.jobs import lifecycle

    before = _stored_keys(pg_stack)

    def broken(*args, **kwargs):
        raise sa.exc.OperationalError("INSERT", {}, Exception("the database went away"))

    monkeypatch.setattr(lifecycle, "create_batch", broken)
    answer = client.post("/api/v1/batches", data=multipart(real_xray_bytes(2)), content_type="multipart/form-data")
    assert answer.status_code == 500 and answer.is_json
    assert _stored_keys(pg_stack) == before


def test_absurd_pages_and_too_many_form_parts_get_clear_answers(app, client):
    huge = "4611686018427387904"
    listing = client.get(f"/api/v1/batches?page={huge}&per_page=-5")
    assert listing.status_code == 200
    body = listing.get_json()
    assert body["batches"] == [] and body["per_page"] == 1 and "past the last page" in body["warnings"][0]
    for query, name in (("per_page=AAA", "'per_page'"), ("page=1.5", "'page'")):
        answer = client.get(f"/api/v1/batches?{query}")
        assert answer.status_code == 400 and name in answer.get_json()["error"]["message"]
    batch = client.post("/api/v1/batches", data=multipart(real_xray_bytes(1)), content_type="multipart/form-data")
    assert client.get(f"{batch.headers['Location']}?since=").status_code == 400  # an empty cursor is not one
    from tests.web.test_accounts import sign_in

    history = sign_in(app, "kim").get(f"/history?page={huge}")
    assert history.status_code == 200 and "past the last page" in history.get_data(as_text=True)
    fields = {f"f{i}": "x" for i in range(2101)}
    answer = client.post("/api/v1/batches", data=fields, content_type="multipart/form-data")
    assert answer.status_code == 413 and "too many form fields or files" in answer.get_json()["error"]["message"]


def test_a_file_name_that_is_not_utf8_loses_only_its_own_bad_bytes(client):
    boundary = "b0undary"
    parts = []
    for name, data in ((b"caf\xe9.png", real_xray_bytes(1)[0][1]), (b"good.png", real_xray_bytes(2)[1][1])):
        parts.append(b"--" + boundary.encode() + b'\r\nContent-Disposition: form-data; name="files"; filename="'
                     + name + b'"\r\nContent-Type: image/png\r\n\r\n' + data + b"\r\n")
    body = b"".join(parts) + b"--" + boundary.encode() + b"--\r\n"
    answer = client.post("/api/v1/batches", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert answer.status_code == 202
    assert [job["filename"] for job in answer.get_json()["jobs"]] == ["caf\ufffd.png", "good.png"]


def test_quotas_on_waiting_jobs_and_stored_bytes(pg_stack, pg_url):
    token = api_token(pg_url, f"quota-{uuid.uuid4().hex[:6]}")
    few = TokenClient(_app(pg_stack, quota_queued_jobs=2).test_client(), token)
    answer = few.post("/api/v1/batches", data=multipart(real_xray_bytes(3)), content_type="multipart/form-data")
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "60"
    assert "at most 2 may wait at once" in answer.get_json()["error"]["message"]
    small = TokenClient(_app(pg_stack, quota_stored_bytes=20_000).test_client(), token)
    assert small.post("/api/v1/batches", data=multipart(real_xray_bytes(1)), content_type="multipart/form-data").status_code == 202
    over = small.post("/api/v1/batches", data=multipart(real_xray_bytes(4)), content_type="multipart/form-data")
    assert over.status_code == 413 and "your quota is" in over.get_json()["error"]["message"]


def test_upload_rate_limit_answers_429_with_retry_after(pg_stack, pg_url):
    client = TokenClient(_app(pg_stack, upload_rate_limit="2 per minute").test_client(), api_token(pg_url, "ratey"))
    statuses = [client.post("/api/v1/batches", data=multipart(real_xray_bytes(1)), content_type="multipart/form-data")
                for _ in range(3)]
    assert [s.status_code for s in statuses] == [202, 202, 429]
    assert int(statuses[2].headers["Retry-After"]) > 0 and statuses[2].is_json


def test_requests_with_a_borrowed_token_prefix_never_spend_the_tokens_own_budget(pg_stack, pg_url):
    app = _app(pg_stack, api_rate_limit="5 per minute")
    owner = api_token(pg_url, f"owner-{uuid.uuid4().hex[:6]}")
    borrowed = {"Authorization": f"Bearer xrt_{owner.split('_')[1]}_x"}  # the public prefix, a made-up secret
    attacker = app.test_client()
    statuses = [attacker.get("/api/v1/batches", headers=borrowed).status_code for _ in range(7)]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]  # counted against the address they came from
    real = TokenClient(app.test_client(), owner)
    assert [real.get("/api/v1/batches").status_code for _ in range(5)] == [200] * 5
    assert real.get("/api/v1/batches").status_code == 429  # the owner's own five, and only those


def _raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_gunicorn_answers_over_long_urls_and_headers_in_json_with_security_headers_and_names_no_server(pg_stack, tmp_path):
    port = free_port()
    env = service_env(DATABASE_URL=pg_stack["database_url"], CELERY_BROKER_URL=pg_stack["broker_url"],
                      XRAY_SECRET_KEY=TEST_SECRET_KEY, XRAY_VAR_DIR=str(tmp_path))
    log = open(tmp_path / "web.log", "wb")
    web = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
                            "--workers", "1", "--access-logfile", "-", "web:create_app()"], cwd=REPO, env=env,
                           stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: b"200 OK" in _try_http(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                   60, interval=0.3, message="gunicorn")
        ok = _raw_http(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"\r\nserver:" not in ok.lower()
        long_url = _raw_http(port, b"GET /api/v1/batches?" + b"a" * 6000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        long_header = _raw_http(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n")
        for answer, status, words in ((long_url, 414, "URL is too long"), (long_header, 431, "headers are too large")):
            head, body = answer.split(b"\r\n\r\n", 1)
            assert head.startswith(f"HTTP/1.1 {status}".encode()) and b"application/json" in head
            assert words in json.loads(body)["error"]["message"] and b"server:" not in head.lower()
            lines = head.decode().lower().splitlines()
            for header in ("content-security-policy: default-src 'none'", "x-frame-options: deny",
                           "referrer-policy: no-referrer", "x-content-type-options: nosniff"):
                assert any(line.startswith(header) for line in lines), (header, head)
        # Free text in a page's query string, a referrer repeating it, a sign-in link's secret: none is logged.
        for path in (b"/history?q=Smith%5EJohn", b"/signin?next=/history%3Fq%3DSmith", b"/signin/link/LinkSecret123"):
            _raw_http(port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nReferer: http://x/history?q=Smith\r\n"
                      b"Connection: close\r\n\r\n")
        wait_until(lambda: "/signin/link/" in (tmp_path / "web.log").read_text(), 10, message="the access log lines")
    finally:
        web.terminate()
        web.wait(30)
        log.close()
    logged = (tmp_path / "web.log").read_text()
    assert '"GET /history HTTP/1.1" 302' in logged and "/signin/link/[secret]" in logged
    assert "Smith" not in logged and "LinkSecret123" not in logged


def _try_http(port: int, request: bytes) -> bytes:
    try:
        return _raw_http(port, request)
    except OSError:
        return b""


NAMES = st.text(st.characters(codec="utf-8"), max_size=60) | st.sampled_from(["a.png", "", "\x00", "../x.png", "é.jpg"])
CONTENTS = st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"not an image"]) | st.binary(max_size=300) \
    | st.sampled_from([data for _, data in real_xray_bytes(2)]) | st.sampled_from([png_with_identifiers()[:200]])


@pytest.mark.slow
@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.tuples(st.sampled_from(["files", "file", "other"]), NAMES, CONTENTS), max_size=6))
def test_fuzzed_uploads_never_answer_5xx_and_never_leave_orphaned_files(client, pg_stack, pg_url, parts):
    data = {}
    for field, name, content in parts:
        data.setdefault(field, []).append((io.BytesIO(content), name))
    answer = client.post("/api/v1/batches", data=data, content_type="multipart/form-data")
    assert answer.status_code < 500, answer.get_data(as_text=True)
    assert answer.is_json
    assert _stored_keys(pg_stack) <= _keys_in_database(pg_url)
