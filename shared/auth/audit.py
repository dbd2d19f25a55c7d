"""The audit log: who signed in, used a token, uploaded, viewed, downloaded or deleted what, and when.

Rows name ids only, never file names (they often carry patients' names or record numbers). The table is
append-only (a trigger refuses UPDATE and DELETE). Views and token use are frequent (a batch page polls
every second), so each (actor, action, target) is recorded at most once per ``REPEAT_SECONDS``.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import threading
import time
import uuid
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import AuditEvent, utcnow

ACTIONS = ("sign_in", "sign_in_failed", "sign_out", "password_change", "token_create", "token_revoke",
           "token_use", "upload", "view", "download", "delete", "admin_access", "retention_purge", "user_create",
           "password_reset", "user_disable", "user_enable", "webhook_change", "model_push", "model_alias",
           "model_delete", "model_check", "labels_attach", "labels_remove", "label", "reader_grant", "reader_revoke", "rerun",
           "cancel", "retry")
REPEAT_SECONDS = 600.0
EXPORT_COLUMNS = ("id", "at", "actor", "actor_id", "action", "target_type", "target_id", "ip", "detail")

_recent: dict[tuple, float] = {}
_recent_lock = threading.Lock()


def record(session: Session, action: str, actor_id: uuid.UUID | None = None, actor: str | None = None,
           target_type: str | None = None, target_id=None, ip: str | None = None, detail: dict | None = None,
           dedupe: bool = False) -> None:
    """Add one event to the session's transaction (so it commits, or not, with what it describes)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if dedupe and not _first_in_a_while((actor_id, action, target_type, str(target_id))):
        return
    session.add(AuditEvent(at=utcnow(), actor_id=actor_id, actor=actor, action=action, target_type=target_type,
                           target_id=None if target_id is None else str(target_id), ip=ip, detail=detail))


def _first_in_a_while(key: tuple) -> bool:
    now = time.monotonic()
    with _recent_lock:
        if now - _recent.get(key, -REPEAT_SECONDS) < REPEAT_SECONDS:
            return False
        if len(_recent) > 50_000:  # a long-running process: forget the oldest half
            for stale in sorted(_recent, key=_recent.get)[:25_000]:
                del _recent[stale]
        _recent[key] = now
        return True


def events(session: Session, since: dt.datetime | None = None, action: str | None = None,
           actor: str | None = None, limit: int = 200, offset: int = 0) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if action:
        query = query.where(AuditEvent.action == action)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    return list(session.scalars(query.offset(offset).limit(limit)))


def to_csv(rows: Iterable[AuditEvent]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow([row.id, row.at.isoformat() if row.at else "", row.actor or "", row.actor_id or "", row.action,
                         row.target_type or "", row.target_id or "", row.ip or "", "" if row.detail is None else json.dumps(row.detail)])
    return out.getvalue()
