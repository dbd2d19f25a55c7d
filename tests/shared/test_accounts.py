"""Accounts on the databases the service runs on: passwords, API tokens, one-time sign-in links."""
import datetime as dt

import pytest

from shared.auth import accounts
from shared.auth.accounts import AccountError
from shared.db.models import ApiToken, Role, as_utc, utcnow


def test_passwords_are_argon2_hashes_and_only_the_right_one_signs_in(db):
    with db.session() as session:
        user = accounts.create_user(session, "Alice", "correct horse battery", Role.MEMBER)
        assert user.username == "alice" and user.password_hash.startswith("$argon2id$")
        assert "correct horse" not in user.password_hash
    with db.session() as session:
        assert accounts.authenticate(session, "ALICE ", "correct horse battery").username == "alice"
        assert accounts.authenticate(session, "alice", "wrong password!!") is None
        assert accounts.authenticate(session, "nobody", "correct horse battery") is None
        accounts.find_user(session, "alice").active = False
    with db.session() as session:
        assert accounts.authenticate(session, "alice", "correct horse battery") is None  # disabled


def test_bad_usernames_short_passwords_and_duplicates_are_refused(db):
    with db.session() as session:
        for name in ("", "a", "has space", "x" * 81, "../etc"):
            with pytest.raises(AccountError):
                accounts.create_user(session, name, "long enough password")
        with pytest.raises(AccountError, match="at least 10"):
            accounts.create_user(session, "bob", "short")
        accounts.create_user(session, "bob", "long enough password")
        with pytest.raises(AccountError, match="already"):
            accounts.create_user(session, "BOB", "long enough password")
        link_only = accounts.create_user(session, "carol", None)
        assert accounts.authenticate(session, "carol", "") is None and link_only.password_hash is None


def test_a_token_works_until_it_expires_or_is_revoked_and_is_stored_only_as_a_hash(db):
    with db.session() as session:
        user = accounts.create_user(session, "alice", "correct horse battery")
        token, plain = accounts.create_token(session, user, "importer", expires_in_days=30)
        assert plain.startswith(f"xrt_{token.prefix}_") and plain.split("_", 2)[2] not in token.secret_sha256
        expiring, expiring_plain = accounts.create_token(session, user, "short", expires_in_days=1)
        never, never_plain = accounts.create_token(session, user, "forever", expires_in_days=None)
    with db.session() as session:
        found = accounts.resolve_token(session, plain)
        assert found.user.username == "alice" and found.last_used_at is not None
        assert accounts.resolve_token(session, plain[:-1] + ("A" if plain[-1] != "A" else "B")) is None
        assert accounts.resolve_token(session, "xrt_nope_nope") is None and accounts.resolve_token(session, "") is None
        assert accounts.resolve_token(session, never_plain) is not None and never.expires_at is None
        session.get(ApiToken, expiring.id).expires_at = utcnow() - dt.timedelta(seconds=1)
    with db.session() as session:
        assert accounts.resolve_token(session, expiring_plain) is None
        assert accounts.token_state(session.get(ApiToken, expiring.id)) == "expired"
        other = accounts.create_user(session, "mallory", "correct horse battery")
        assert accounts.revoke_token(session, token.id, owner_id=other.id) is None  # not theirs
        assert accounts.revoke_token(session, token.id, owner_id=token.user_id).revoked_at is not None
    with db.session() as session:
        assert accounts.resolve_token(session, plain) is None
        assert accounts.token_state(session.get(ApiToken, token.id)) == "revoked"


def test_last_use_is_written_at_most_once_a_minute(db):
    with db.session() as session:
        _, plain = accounts.create_token(session, accounts.create_user(session, "alice", None), "poller")
    with db.session() as session:
        first = accounts.resolve_token(session, plain).last_used_at
    with db.session() as session:
        assert as_utc(accounts.resolve_token(session, plain).last_used_at) == as_utc(first)


def test_a_sign_in_link_works_once_and_not_after_it_expires(db):
    with db.session() as session:
        admin = accounts.ensure_local_admin(session)
        assert admin.is_admin and accounts.ensure_local_admin(session).id == admin.id  # idempotent
        secret = accounts.create_sign_in_link(session, admin)
        stale = accounts.create_sign_in_link(session, admin, valid_for=dt.timedelta(seconds=-1))
    with db.session() as session:
        assert accounts.use_sign_in_link(session, secret).username == "admin"
    with db.session() as session:
        assert accounts.use_sign_in_link(session, secret) is None
        assert accounts.use_sign_in_link(session, stale) is None
        assert accounts.use_sign_in_link(session, "made-up") is None


def test_the_audit_log_cannot_be_changed_or_deleted(db):
    import sqlalchemy as sa

    from shared.auth import audit
    from shared.db.models import AuditEvent

    with db.session() as session:
        audit.record(session, "sign_in", actor="alice")
    for statement in ("UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with db.session() as session:
                session.execute(sa.text(statement))
    with db.session() as session:
        assert [e.actor for e in session.scalars(sa.select(AuditEvent))] == ["alice"]


def test_browser_sessions_end_and_are_forgotten(db):
    import datetime as dt

    import sqlalchemy as sa

    from shared.auth import accounts, sessions
    from shared.db.models import WebSession, utcnow

    idle, lifetime = dt.timedelta(hours=12), dt.timedelta(days=7)
    with db.session() as session:
        user = accounts.create_user(session, "pat", "a long enough password")
        first, second, third = (sessions.start(session, user) for _ in range(3))
    with db.session() as session:
        assert sessions.resolve(session, first, idle, lifetime).user_id == user.id
        assert sessions.resolve(session, "made-up", idle, lifetime) is None
        sessions.end(session, first)
        assert sessions.end_all(session, user.id, keep=second) == 1  # the third; the first had ended
    with db.session() as session:
        assert sessions.resolve(session, first, idle, lifetime) is None
        assert sessions.resolve(session, third, idle, lifetime) is None
        assert sessions.resolve(session, second, idle, lifetime) is not None
        session.execute(sa.update(WebSession).values(last_seen_at=utcnow() - dt.timedelta(hours=1)))
    with db.session() as session:
        assert sessions.purge(session, idle, lifetime) == 2  # the two that ended; the idle hour is fine
        assert sessions.purge(session, dt.timedelta(minutes=30), lifetime) == 1
        assert session.scalar(sa.select(sa.func.count()).select_from(WebSession)) == 0
