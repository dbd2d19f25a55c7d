"""Idempotency-Key for uploads: a client that lost the answer to an upload retries with the same key and
gets the first batch back instead of a second one. Keys are per owner and live 24 hours.

A key is reserved (its row written, no batch yet) before anything is stored, so two concurrent requests
with one key cannot both create a batch: the second is told to retry shortly. A request that fails
gives its reservation back.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import uuid

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.db.engine import Database
from shared.db.models import IdempotencyKey, utcnow

LIFETIME = dt.timedelta(hours=24)
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")  # visible ASCII, as in the IETF draft's examples


class IdempotencyError(ValueError):
    """The key cannot be honoured; ``status`` and the message say why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Replay:
    """The first answer to this key: the client gets it again."""

    batch_id: uuid.UUID
    response: dict


def fingerprint(parts: list[tuple[str, str, bytes | str]]) -> str:
    """A digest of what a request sent: (field, file name, content digest or text) in order."""
    digest = hashlib.sha256()
    for field, name, content in parts:
        for piece in (field, name, content if isinstance(content, str) else content.hex()):
            digest.update(piece.encode() + b"\0")
    return digest.hexdigest()


def _find(session: Session, owner_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    return session.scalars(select(IdempotencyKey).where(IdempotencyKey.owner_id == owner_id,
                                                        IdempotencyKey.key == key)).one_or_none()


def reserve(db: Database, owner_id: uuid.UUID, key: str, request_sha256: str) -> Replay | None:
    """Claim ``key`` for this request (committed at once), or return the answer an earlier request got.

    Raises IdempotencyError 400 for a malformed key, 422 when the key was used for a different request,
    and 409 while the first request with it is still being processed.
    """
    if not KEY_PATTERN.match(key):
        raise IdempotencyError(400, "an Idempotency-Key is 1 to 200 visible ASCII characters")
    try:
        with db.session() as session:
            session.execute(delete(IdempotencyKey).where(IdempotencyKey.owner_id == owner_id, IdempotencyKey.key == key,
                                                         IdempotencyKey.created_at < utcnow() - LIFETIME))
            existing = _find(session, owner_id, key)
            if existing is None:
                session.add(IdempotencyKey(owner_id=owner_id, key=key, request_sha256=request_sha256, created_at=utcnow()))
                return None
    except IntegrityError:  # another request took the key this very moment
        with db.session() as session:
            existing = _find(session, owner_id, key)
    if existing is None:
        raise IdempotencyError(409, "an upload with this Idempotency-Key is still being processed; retry in a moment")
    if existing.request_sha256 != request_sha256:
        raise IdempotencyError(422, "this Idempotency-Key was already used for a different upload (other files or name); "
                             "use a new key for a new upload")
    if existing.batch_id is None or existing.response is None:
        raise IdempotencyError(409, "an upload with this Idempotency-Key is still being processed; retry in a moment")
    return Replay(existing.batch_id, existing.response)


def complete(session: Session, owner_id: uuid.UUID, key: str, batch_id: uuid.UUID, response: dict) -> None:
    row = session.scalars(select(IdempotencyKey).where(IdempotencyKey.owner_id == owner_id,
                                                       IdempotencyKey.key == key)).one()
    row.batch_id, row.response = batch_id, response


def release(session: Session, owner_id: uuid.UUID, key: str) -> None:
    """The request failed: a retry with the key may try again."""
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.owner_id == owner_id, IdempotencyKey.key == key,
                                                 IdempotencyKey.batch_id.is_(None)))


def purge_expired(session: Session) -> int:
    return session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - LIFETIME)).rowcount


