"""Recording audit events from a request: the actor is whoever the request authenticated as."""
from __future__ import annotations

from flask import g, request
from flask_login import current_user

from shared.auth import audit as audit_log


def _actor():
    viewer = getattr(g, "viewer", None)
    if viewer is None and current_user.is_authenticated:
        viewer = current_user.viewer
    return viewer


def audit(db, action: str, target_type: str | None = None, target_id=None, detail: dict | None = None,
          dedupe: bool = False) -> None:
    viewer = _actor()
    audit_log.record(db, action, actor_id=viewer.user_id if viewer else None, actor=viewer.username if viewer else None,
                     target_type=target_type, target_id=target_id, ip=request.remote_addr, detail=detail, dedupe=dedupe)


def audit_access(db, action: str, target_type: str, target, owner_id) -> None:
    """A view or download; an admin looking at someone else's item is recorded as admin access too."""
    audit(db, action, target_type, target, dedupe=True)
    viewer = _actor()
    if viewer is not None and owner_id != viewer.user_id:
        audit(db, "admin_access", target_type, target, detail={"owner_id": str(owner_id), "action": action}, dedupe=True)
