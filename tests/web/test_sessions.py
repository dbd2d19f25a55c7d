"""Browser sessions live in the database, not in the cookie: a cookie copied before sign-out, a password
change or disabling the user stops working at once; sessions end when idle or too old; a new API token
never travels in the cookie. Real Postgres, Redis and a worker behind the app."""
import base64
import datetime as dt
import html
import re
import zlib

import pytest
import sqlalchemy as sa

from shared.db.models import User, WebSession, utcnow
from tests.web.test_accounts import PASSWORD, app, csrf_of, db, sign_in  # noqa: F401 (fixtures)


def _cookie(client) -> str:
    return client.get_cookie("session").value


def _copy_of(app, cookie: str):
    """Another browser holding a copy of the cookie (what an attacker who copied it would have)."""
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    return thief


def _signed_out(client) -> bool:
    answer = client.get("/account")
    return answer.status_code == 302 and answer.headers["Location"].startswith("/signin")


def _cookie_text(cookie: str) -> str:
    """What anyone holding the cookie can read: Flask signs it (itsdangerous), it does not encrypt it."""
    payload = cookie.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return (zlib.decompress(raw) if cookie.startswith(".") else raw).decode(errors="replace")


def test_a_cookie_copied_before_sign_out_no_longer_opens_anything(app):
    kate = sign_in(app, "kate")
    copied = _cookie(kate)
    assert not _signed_out(_copy_of(app, copied))  # the copy works while kate is signed in (it is her session)
    kate.post("/signout", data={"csrf_token": csrf_of(kate.get("/account").get_data(as_text=True))})
    thief = _copy_of(app, copied)
    assert _signed_out(thief)
    assert thief.get("/api/v1/batches").status_code == 401
    assert thief.get("/history").status_code == 302


def test_a_password_change_ends_the_other_sessions_and_disabling_ends_all(app, db):
    first, second = sign_in(app, "lena"), sign_in(app, "lena", create=False)
    copied = _cookie(first)
    page = first.get("/account").get_data(as_text=True)
    first.post("/account/password", data={"csrf_token": csrf_of(page), "current": PASSWORD,
                                          "new": "a brand new password", "repeat": "a brand new password"})
    assert not _signed_out(first) and not _signed_out(_copy_of(app, copied))  # the one that changed it stays
    assert _signed_out(second)

    from shared.auth import accounts
    from shared.db.engine import Database

    database = Database(app.extensions["xray"].settings.database_url)
    with database.session() as session:
        accounts.set_active(session, accounts.find_user(session, "lena"), False)
    database.engine.dispose()
    assert _signed_out(first) and _signed_out(_copy_of(app, copied))


@pytest.mark.parametrize("column, hours", [("last_seen_at", 13), ("created_at", 24 * 8)])
def test_sessions_end_when_idle_for_12_hours_or_7_days_after_sign_in(app, db, column, hours):
    mia = sign_in(app, f"mia-{column.split('_')[0]}")
    assert not _signed_out(mia)
    with db.begin() as conn:  # as if the time had passed
        user_id = conn.execute(sa.select(User.id).where(User.username == f"mia-{column.split('_')[0]}")).scalar_one()
        conn.execute(sa.update(WebSession).where(WebSession.user_id == user_id)
                     .values({column: utcnow() - dt.timedelta(hours=hours)}))
    assert _signed_out(mia)
    with db.connect() as conn:
        ended = conn.execute(sa.select(WebSession.ended_at).where(WebSession.user_id == user_id)).scalars().all()
    assert ended and all(e is not None for e in ended)


def test_a_new_api_token_never_travels_in_the_cookie(app, db):
    nora = sign_in(app, "nora")
    page = nora.get("/account").get_data(as_text=True)
    assert nora.post("/account/tokens", data={"csrf_token": csrf_of(page), "name": "ci", "days": "3"}).status_code == 303
    assert "xrt_" not in _cookie_text(_cookie(nora))  # what the redirect left in the browser
    with db.connect() as conn:  # nor in the database as such: only XOR-ed with the cookie's pad
        held = conn.execute(sa.select(WebSession.reveal).where(WebSession.reveal.is_not(None))).scalars().all()
    assert held and not any(b"xrt_" in bytes(h) for h in held)
    shown = nora.get("/account").get_data(as_text=True)
    token = re.search(r'<code id="new-token">(xrt_[^<]+)</code>', shown).group(1)
    assert token not in _cookie_text(_cookie(nora)) and token not in nora.get("/account").get_data(as_text=True)


@pytest.mark.parametrize("days", ["nan", "inf", "-1", "0", "1e400", "ten", "99999"])
def test_a_token_lifetime_that_is_not_a_sensible_number_is_refused_with_400(app, days):
    olga = sign_in(app, "olga")
    page = olga.get("/account").get_data(as_text=True)
    answer = olga.post("/account/tokens", data={"csrf_token": csrf_of(page), "name": "x", "days": days})
    assert answer.status_code == 400 and "'days'" in html.unescape(answer.get_data(as_text=True))
