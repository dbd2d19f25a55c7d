"""Signed-in browsers, kept in the database rather than in the cookie.

Flask's cookie session is signed, not encrypted, and lives as long as the browser keeps it: a copy
taken before sign-out would go on working. Here the cookie carries only a random secret; the row with
its SHA-256 says whether that browser is still signed in. Sign-out ends the row, a password change or
reset ends the user's other rows, disabling a user ends them all, and a row also ends after
``idle`` without a request or ``lifetime`` after sign-in, whichever comes first. A new API token is
shown once from here too (``hold_reveal``/``take_reveal``), never from the cookie.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from shared.db.models import User, WebSession, as_utc, utcnow

TOUCH_EVERY = dt.timedelta(seconds=60)  # last_seen_at is written at most once a minute per session


def _digest(secret: str) -> str:
    return hashlib.sha256((secret or "").encode()).hexdigest()


def start(session: Session, user: User) -> str:
    """A new signed-in session of ``user``; returns the secret the cookie carries (never stored)."""
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(WebSession(id=_digest(secret), user_id=user.id, created_at=now, last_seen_at=now))
    session.flush()
    return secret


def resolve(session: Session, secret: str, idle: dt.timedelta, lifetime: dt.timedelta) -> WebSession | None:
    """The live session a cookie's secret names, or None (ended, timed out, or its user disabled)."""
    row = session.get(WebSession, _digest(secret))
    if row is None or row.ended_at is not None:
        return None
    now = utcnow()
    user = session.get(User, row.user_id)
    expired = now - as_utc(row.created_at) > lifetime or now - as_utc(row.last_seen_at) > idle
    if expired or user is None or not user.active:
        row.ended_at = now
        return None
    if now - as_utc(row.last_seen_at) >= TOUCH_EVERY:
        row.last_seen_at = now
    return row


def end(session: Session, secret: str) -> None:
    session.execute(update(WebSession).where(WebSession.id == _digest(secret), WebSession.ended_at.is_(None))
                    .values(ended_at=utcnow(), reveal=None))


def end_all(session: Session, user_id: uuid.UUID, keep: str | None = None) -> int:
    """End every live session of a user (but ``keep``'s, the one asking); returns how many ended."""
    query = update(WebSession).where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
    if keep:
        query = query.where(WebSession.id != _digest(keep))
    return session.execute(query.values(ended_at=utcnow(), reveal=None)).rowcount or 0


def purge(session: Session, idle: dt.timedelta, lifetime: dt.timedelta) -> int:
    """Forget sessions that have ended or can no longer be used (the recovery loop calls this)."""
    now = utcnow()
    return session.execute(delete(WebSession).where(or_(
        WebSession.ended_at.is_not(None), WebSession.created_at < now - lifetime,
        WebSession.last_seen_at < now - idle)).execution_options(synchronize_session=False)).rowcount or 0


def _xor(data: bytes, pad: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, pad, strict=True))


def hold_reveal(session: Session, secret: str, plain: str) -> bytes:
    """Keep ``plain`` (a new API token) to show once; returns the pad the caller puts in the cookie."""
    data = plain.encode()
    pad = secrets.token_bytes(len(data))
    session.execute(update(WebSession).where(WebSession.id == _digest(secret)).values(reveal=_xor(data, pad)))
    return pad


def take_reveal(session: Session, secret: str, pad: bytes | None) -> str | None:
    """The held token, once: it is cleared whether or not the pad fits."""
    row = session.scalars(select(WebSession).where(WebSession.id == _digest(secret))).one_or_none()
    if row is None or row.reveal is None:
        return None
    held, row.reveal = row.reveal, None
    if not pad or len(pad) != len(held):
        return None
    try:
        return _xor(held, pad).decode()
    except UnicodeDecodeError:
        return None
