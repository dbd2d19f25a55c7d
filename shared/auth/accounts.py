"""Users, passwords, API tokens and one-time sign-in links: the models' rules in plain functions.

Passwords: Argon2id (argon2-cffi, its default parameters). API tokens and sign-in links are 256-bit
random secrets, so a plain SHA-256 of them is enough to store (nothing to brute force); lookups go by
a public prefix and compare digests in constant time.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import re
import secrets
import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.auth import sessions
from shared.db.models import ApiToken, Role, SignInLink, User, as_utc, utcnow

TOKEN_PREFIX = "xrt"
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,79}$")
MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message says why, for a person."""


@dataclasses.dataclass(frozen=True)
class Viewer:
    """Who is asking: every query of batches, jobs and files goes through one."""

    user_id: uuid.UUID
    username: str
    is_admin: bool

    @classmethod
    def of(cls, user: User) -> "Viewer":
        return cls(user.id, user.username, user.is_admin)


def normalise_username(username: str) -> str:
    name = (username or "").strip().lower()
    if not USERNAME_PATTERN.match(name):
        raise AccountError("a username is 2 to 80 characters: letters, digits and . _ @ -, starting with a letter or digit")
    return name


def check_password_strength(password: str) -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    check_password_strength(password)
    return _hasher.hash(password)


def find_user(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == (username or "").strip().lower())).one_or_none()


def create_user(session: Session, username: str, password: str | None, role: Role = Role.MEMBER) -> User:
    name = normalise_username(username)
    if find_user(session, name) is not None:
        raise AccountError(f"there is already a user {name!r}")
    user = User(username=name, role=Role(role).value, active=True, created_at=utcnow(),
                password_hash=hash_password(password) if password is not None else None,
                password_changed_at=utcnow() if password is not None else None)
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, user: User, password: str, keep_session: str | None = None) -> None:
    """A new password signs out every browser of the user but ``keep_session`` (the one that changed it)."""
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    sessions.end_all(session, user.id, keep=keep_session)
    session.flush()


def set_active(session: Session, user: User, active: bool) -> None:
    """Disabling a user signs out every browser of theirs at once (their tokens stop working too)."""
    user.active = active
    if not active:
        sessions.end_all(session, user.id)
    session.flush()


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The user if the password is right and the account active; None otherwise (same time either way)."""
    user = find_user(session, username)
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    try:
        _hasher.verify(stored, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.password_hash or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(session: Session, user: User, name: str, expires_in_days: float | None = 90) -> tuple[ApiToken, str]:
    """A new API token; the second value is the token itself, which is never stored and shown only now."""
    name = (name or "").strip()[:100] or "token"
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    expires = utcnow() + dt.timedelta(days=expires_in_days) if expires_in_days else None
    token = ApiToken(user_id=user.id, name=name, prefix=prefix, secret_sha256=_sha256(secret), created_at=utcnow(),
                     expires_at=expires)
    session.add(token)
    session.flush()
    return token, f"{TOKEN_PREFIX}_{prefix}_{secret}"


def resolve_token(session: Session, presented: str, touch_every: float = 60.0) -> ApiToken | None:
    """The live token (and through it its user) for a presented bearer token, or None.

    last_used_at is written at most once a minute per token, so polling clients cost no write per request.
    """
    parts = (presented or "").strip().split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    token = session.scalars(select(ApiToken).where(ApiToken.prefix == parts[1])).one_or_none()
    if token is None or not hmac.compare_digest(token.secret_sha256, _sha256(parts[2])):
        return None
    now = utcnow()
    if token.revoked_at is not None or (token.expires_at is not None and as_utc(token.expires_at) <= now):
        return None
    if not token.user.active:
        return None
    if token.last_used_at is None or (now - as_utc(token.last_used_at)).total_seconds() >= touch_every:
        token.last_used_at = now
    return token


def token_state(token: ApiToken) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and as_utc(token.expires_at) <= utcnow():
        return "expired"
    return "active"


def list_tokens(session: Session, user_id: uuid.UUID | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.created_at.desc())
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return list(session.scalars(query))


def revoke_token(session: Session, token_id: uuid.UUID, owner_id: uuid.UUID | None = None) -> ApiToken | None:
    """Revoke a token (only the owner's own, when owner_id is given); None if there is no such token."""
    token = session.get(ApiToken, token_id)
    if token is None or (owner_id is not None and token.user_id != owner_id):
        return None
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def create_sign_in_link(session: Session, user: User, valid_for: dt.timedelta = dt.timedelta(hours=12)) -> str:
    """A one-time secret for /signin/link/<secret>; only its hash is kept."""
    secret = secrets.token_urlsafe(32)
    session.add(SignInLink(user_id=user.id, secret_sha256=_sha256(secret), created_at=utcnow(),
                           expires_at=utcnow() + valid_for))
    session.flush()
    return secret


def use_sign_in_link(session: Session, secret: str) -> User | None:
    """The link's user, once: the link is spent whether or not the user can still sign in."""
    link = session.scalars(select(SignInLink).where(SignInLink.secret_sha256 == _sha256(secret or ""))
                           .with_for_update()).one_or_none()
    if link is None or link.used_at is not None or as_utc(link.expires_at) <= utcnow():
        return None
    link.used_at = utcnow()
    user = session.get(User, link.user_id)
    return user if user is not None and user.active else None


def ensure_local_admin(session: Session, username: str = "admin") -> User:
    """The embedded run's admin: created without a password on first start (it signs in by link)."""
    user = find_user(session, username)
    if user is None:
        user = create_user(session, username, None, Role.ADMIN)
    return user
