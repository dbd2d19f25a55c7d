"""Accounts through the web, on real Postgres and Redis with a real worker: two users who never see each
other's X-rays, tokens that stop working, sign-in limits, admins whose looks are audited, deletion."""
import re
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa

from shared.db.models import ApiToken, AuditEvent, utcnow
from tests.helpers import (REPO, TEST_SECRET_KEY, TokenClient, api_token, ensure_user, multipart, real_xray_bytes,
                           service_env)
from tests.web.test_api import wait_for_batch

PASSWORD = "a long enough password"


@pytest.fixture()
def app(pg_stack):
    from web import create_app

    # CSRF on, as in production; rate limits of this test's own (they live in the shared Redis).
    return create_app({**pg_stack, "signin_rate_limit": "4 per minute", "RATELIMIT_KEY_PREFIX": f"t-{uuid.uuid4().hex}"})


@pytest.fixture()
def db(pg_url):
    engine = sa.create_engine(pg_url)
    yield engine
    engine.dispose()


def csrf_of(page_html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page_html).group(1)


def sign_in(app, username: str, password: str = PASSWORD, role: str = "member", create: bool = True):
    """A test client signed in through the sign-in form (the user made, or their password set, first)."""
    from shared.db.engine import Database

    if create:
        database = Database(app.extensions["xray"].settings.database_url)
        with database.session() as session:
            ensure_user(session, username, role, password=password)
        database.engine.dispose()
    client = app.test_client()
    token = csrf_of(client.get("/signin").get_data(as_text=True))
    response = client.post("/signin", data={"username": username, "password": password, "csrf_token": token, "next": "/history"})
    assert response.status_code == 303 and response.headers["Location"] == "/history", response.get_data(as_text=True)
    return client


def audit_actions(db, since) -> list[tuple]:
    with db.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(AuditEvent.actor, AuditEvent.action, AuditEvent.target_type)
                                                .where(AuditEvent.at >= since).order_by(AuditEvent.id))]


def test_two_users_never_see_each_others_batches_jobs_images_heatmaps_or_history(app, alice_token, bob_token):
    alice, bob = TokenClient(app.test_client(), alice_token), TokenClient(app.test_client(), bob_token)
    created = alice.post("/api/v1/batches", data=multipart(real_xray_bytes(1)), content_type="multipart/form-data")
    assert created.status_code == 202
    batch = wait_for_batch(alice, created.headers["Location"])
    job = alice.get(batch["jobs"][0]["url"]).get_json()
    overlay = next(f["overlay_url"] for f in job["findings"] if f["overlay_url"])
    urls = [batch["url"], job["url"], job["image_url"], overlay]
    assert [alice.get(u).status_code for u in urls] == [200] * 4
    missing = alice.get("/api/v1/batches/00000000-0000-0000-0000-000000000000").get_json()["error"]["message"]
    for url in urls:  # the same answer as for an id that does not exist
        answer = bob.get(url)
        assert answer.status_code == 404 and answer.get_json()["error"]["message"].split(" ")[:3] == missing.split(" ")[:3]
    assert batch["id"] not in [b["id"] for b in bob.get("/api/v1/batches").get_json()["batches"]]
    assert bob.delete(batch["url"]).status_code == 404 and bob.delete(job["url"]).status_code == 404
    assert alice.get(batch["url"]).status_code == 200  # untouched

    bob_pages = sign_in(app, "bob")
    for page in (f"/batches/{batch['id']}", f"/jobs/{job['id']}", f"/jobs/{job['id']}/delete"):
        assert bob_pages.get(page).status_code == 404
    assert batch["id"] not in bob_pages.get("/history").get_data(as_text=True)


def test_an_admin_sees_any_batch_and_each_look_is_audited(app, alice_token, db):
    alice = TokenClient(app.test_client(), alice_token)
    batch = alice.post("/api/v1/batches", data=multipart(real_xray_bytes(1)), content_type="multipart/form-data").get_json()
    since = utcnow()
    admin = sign_in(app, "root", role="admin")
    assert admin.get(f"/batches/{batch['id']}").status_code == 200
    assert admin.get(f"/api/v1/batches/{batch['id']}").status_code == 200
    assert batch["id"] not in admin.get("/history").get_data(as_text=True)  # history is one's own
    with db.connect() as conn:
        looks = conn.execute(sa.select(AuditEvent.detail).where(
            AuditEvent.actor == "root", AuditEvent.action == "admin_access", AuditEvent.target_id == batch["id"],
            AuditEvent.at >= since)).scalars().all()
    assert looks and looks[0]["action"] == "view"
    assert admin.get("/admin/audit").status_code == 200
    assert sign_in(app, "carol").get("/admin/audit").status_code == 404  # members: no such page


def test_without_a_valid_token_the_api_answers_401_with_how_to_authenticate(app, pg_url, db):
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic YWxpY2U6cGFzcw=="}):
        answer = client.get("/api/v1/batches", headers=headers)
        assert answer.status_code == 401 and answer.is_json
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    upload = client.post("/api/v1/batches", data=multipart(real_xray_bytes(1)), content_type="multipart/form-data")
    assert upload.status_code == 401
    assert client.get("/api/v1/healthz").status_code == 200  # load balancers need no token

    token = api_token(pg_url, "dave")
    assert TokenClient(client, token).get("/api/v1/batches").status_code == 200
    prefix = token.split("_")[1]
    with db.begin() as conn:
        conn.execute(sa.update(ApiToken).where(ApiToken.prefix == prefix).values(expires_at=sa.func.now()))
    assert TokenClient(client, token).get("/api/v1/batches").status_code == 401  # expired

    revoked = api_token(pg_url, "dave")
    dave = sign_in(app, "dave")
    token_id = next(t.id for t in _tokens(db) if t.prefix == revoked.split("_")[1])
    page = dave.get("/account").get_data(as_text=True)
    assert dave.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf_of(page)}).status_code == 303
    assert TokenClient(client, revoked).get("/api/v1/batches").status_code == 401
    assert "revoked" in dave.get("/account").get_data(as_text=True)


def _tokens(db):
    with db.connect() as conn:
        return conn.execute(sa.select(ApiToken.id, ApiToken.prefix)).all()


def test_a_token_made_on_the_account_page_is_shown_once_and_works(app):
    erin = sign_in(app, "erin")
    page = erin.get("/account").get_data(as_text=True)
    assert erin.post("/account/tokens", data={"csrf_token": csrf_of(page), "name": "laptop", "days": "7"}).status_code == 303
    shown = erin.get("/account").get_data(as_text=True)
    token = re.search(r'<code id="new-token">(xrt_[^<]+)</code>', shown).group(1)
    assert token not in erin.get("/account").get_data(as_text=True)  # once only
    assert TokenClient(app.test_client(), token).get("/api/v1/batches").status_code == 200


def test_pages_need_a_signed_in_user_and_sign_in_guesses_are_limited(app, db):
    since = utcnow()
    anonymous = app.test_client()
    for page in ("/", "/history", "/account", "/jobs/x", "/admin/audit"):
        answer = anonymous.get(page)
        assert answer.status_code == 302 and answer.headers["Location"].startswith("/signin")
    sign_in(app, "frank")  # 1 of the 4 attempts a minute this app allows per address
    client = app.test_client()
    token = csrf_of(client.get("/signin").get_data(as_text=True))
    statuses = [client.post("/signin", data={"username": "frank", "password": f"guess {i}", "csrf_token": token}).status_code
                for i in range(4)]
    assert statuses[:3] == [401, 401, 401] and statuses[3] == 429
    limited = client.post("/signin", data={"username": "frank", "password": PASSWORD, "csrf_token": token})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0  # even the right password waits
    assert audit_actions(db, since).count((None, "sign_in_failed", None)) == 3  # no actor: nobody signed in


def test_changing_the_password_signs_out_other_sessions(app):
    first, second = sign_in(app, "gina"), sign_in(app, "gina", create=False)
    page = first.get("/account").get_data(as_text=True)
    changed = first.post("/account/password", data={"csrf_token": csrf_of(page), "current": PASSWORD,
                                                     "new": "another long password", "repeat": "another long password"})
    assert changed.status_code == 303
    assert first.get("/history").status_code == 200
    assert second.get("/history").status_code == 302  # signed out
    sign_in(app, "gina", "another long password", create=False)  # the new one works


def test_a_browser_session_may_read_the_api_but_change_only_from_this_site_with_a_csrf_header(app):
    henry = sign_in(app, "henry")
    assert henry.get("/api/v1/batches").status_code == 200
    files = multipart(real_xray_bytes(1))
    assert henry.post("/api/v1/batches", data=files, content_type="multipart/form-data").status_code == 403
    evil = henry.post("/api/v1/batches", data=multipart(real_xray_bytes(1)), content_type="multipart/form-data",
                      headers={"Origin": "http://127.0.0.1:9999", "X-CSRFToken": "forged"})
    assert evil.status_code == 403
    token = csrf_of(henry.get("/").get_data(as_text=True))
    ok = henry.post("/api/v1/batches", data=multipart(real_xray_bytes(1)), content_type="multipart/form-data",
                    headers={"Origin": "http://localhost", "X-CSRFToken": token})
    assert ok.status_code == 202


def test_every_action_leaves_an_audit_row(app, db):
    since = utcnow()
    ivy = sign_in(app, "ivy")
    page = ivy.get("/account").get_data(as_text=True)
    ivy.post("/account/tokens", data={"csrf_token": csrf_of(page), "name": "script"})
    token = re.search(r'<code id="new-token">(xrt_[^<]+)</code>', ivy.get("/account").get_data(as_text=True)).group(1)
    api = TokenClient(app.test_client(), token)
    batch = api.post("/api/v1/batches", data=multipart(real_xray_bytes(1)), content_type="multipart/form-data").get_json()
    batch = wait_for_batch(api, f"/api/v1/batches/{batch['id']}")
    api.get(batch["jobs"][0]["image_url"])
    ivy.get(f"/jobs/{batch['jobs'][0]['id']}")
    assert api.delete(batch["url"]).status_code == 204
    ivy.post("/signout", data={"csrf_token": csrf_of(ivy.get("/account").get_data(as_text=True))})
    actions = {action for actor, action, _ in audit_actions(db, since) if actor == "ivy"}
    assert {"sign_in", "token_create", "token_use", "upload", "view", "download", "delete", "sign_out"} <= actions
    with db.connect() as conn:
        details = conn.execute(sa.select(AuditEvent.detail).where(AuditEvent.at >= since)).scalars().all()
    assert not any("png" in str(d) for d in details)  # ids only: file names never reach the log


def test_deleting_a_batch_removes_its_rows_and_every_file(app, alice_token, pg_stack, db):
    alice = TokenClient(app.test_client(), alice_token)
    created = alice.post("/api/v1/batches", data=multipart(real_xray_bytes(2)), content_type="multipart/form-data")
    batch = wait_for_batch(alice, created.headers["Location"])
    storage = pg_stack["storage_dir"]
    with db.connect() as conn:  # each job's upload, in the order of the batch's jobs
        keys = conn.execute(sa.text("SELECT image_key FROM jobs WHERE batch_id = :b ORDER BY position"),
                            {"b": batch["id"]}).scalars().all()
    job_ids = [j["id"] for j in sorted(batch["jobs"], key=lambda j: j["position"])]
    for job in batch["jobs"]:  # overlays are drawn on request and cached beside the job's other files
        assert alice.get(job["thumbnail"]["url"]).status_code == 200
    overlay_dirs = [storage / "overlays" / j.replace("-", "") for j in job_ids]
    assert all((storage / k).exists() for k in keys) and all(d.is_dir() for d in overlay_dirs)

    assert alice.delete(f"/api/v1/jobs/{job_ids[0]}").status_code == 204
    assert not (storage / keys[0]).exists() and not overlay_dirs[0].exists()
    assert alice.get(batch["url"]).get_json()["total"] == 1
    assert alice.delete(batch["url"]).status_code == 204
    assert alice.get(batch["url"]).status_code == 404
    assert not any((storage / k).exists() for k in keys) and not any(d.exists() for d in overlay_dirs)
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM jobs WHERE batch_id = :b"), {"b": batch["id"]}).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM findings WHERE job_id::text = ANY(:j)"), {"j": job_ids}).scalar() == 0


@pytest.mark.slow  # starts real processes
def test_the_admin_command_manages_users_tokens_and_exports_the_audit_log(pg_url, tmp_path):
    env = service_env(DATABASE_URL=pg_url, XRAY_SECRET_KEY=TEST_SECRET_KEY)

    def admin(*args, stdin=None):
        result = subprocess.run([sys.executable, "-m", "web.admin_cli", *args], cwd=REPO, env=env, input=stdin,
                                capture_output=True, text=True, timeout=60)
        return result.returncode, result.stdout + result.stderr

    assert admin("create-user", "Jack", "--password-stdin", stdin="a long enough password\n")[0] == 0
    code, out = admin("create-user", "jack", "--password-stdin", stdin="another long password\n")
    assert code != 0 and "already" in out
    code, out = admin("reset-password", "jack")  # no terminal: a generated password, shown once
    assert code == 0 and "new password (shown once):" in out
    code, out = admin("create-token", "jack", "--name", "nightly", "--days", "1")
    token = out.strip().splitlines()[-1]
    assert code == 0 and token.startswith("xrt_")
    assert "jack" in admin("list-tokens", "jack")[1] and "active" in admin("list-tokens", "jack")[1]
    assert admin("revoke-token", token.rsplit("_", 1)[0])[0] == 0
    assert "revoked" in admin("list-tokens", "jack")[1]
    assert "jack" in admin("list-users")[1]
    code, out = admin("audit", "--csv", str(tmp_path / "audit.csv"))
    text = (tmp_path / "audit.csv").read_text()
    assert code == 0 and text.startswith("id,at,actor") and "token_revoke" in text and "user_create" in text
