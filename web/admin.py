"""Admin pages: the audit log, read and exported. Members get 404, as for anything that is not theirs."""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, render_template, request
from flask_login import current_user

from shared import audit as audit_log
from web.auth import login_manager
from web.errors import ApiError
from web.services import services

blueprint = Blueprint("admin", __name__, url_prefix="/admin")
PAGE = 200


@blueprint.before_request
def _admins_only():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_admin:
        raise ApiError(404, "there is no such page")


def _since() -> dt.datetime | None:
    raw = request.args.get("since", "")
    try:
        return dt.datetime.fromisoformat(raw).replace(tzinfo=dt.timezone.utc) if raw else None
    except ValueError:
        raise ApiError(400, f"'since' must be a date like 2026-11-27, got {raw!r}") from None


@blueprint.get("/audit")
def audit_page():
    filters = {"since": _since(), "action": request.args.get("action") or None, "actor": request.args.get("actor") or None}
    page = min(max(1, request.args.get("page", 1, type=int)), 100_000)
    with services().db.session() as session:
        if request.args.get("format") == "csv":
            rows = audit_log.events(session, **filters, limit=1_000_000)
            return Response(audit_log.to_csv(rows), mimetype="text/csv", headers={
                "Content-Disposition": "attachment; filename=audit.csv", "Cache-Control": "private, no-store"})
        rows = audit_log.events(session, **filters, limit=PAGE + 1, offset=(page - 1) * PAGE)
    return render_template("audit.html", rows=rows[:PAGE], more=len(rows) > PAGE, page=page, actions=audit_log.ACTIONS,
                           filters={k: request.args.get(k, "") for k in ("since", "action", "actor")})
