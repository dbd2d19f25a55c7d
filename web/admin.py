"""Admin pages: the audit log, read and exported. Members get 404, as for anything that is not theirs."""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, render_template, request
from flask_login import current_user

from shared.auth import audit as audit_log
from web import page_params
from web.auth import login_manager
from web.errors import ApiError
from web.services import services

blueprint = Blueprint("admin", __name__, url_prefix="/admin")
PAGE = 200


@blueprint.before_request
def admins_only():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_admin:
        raise ApiError(404, "there is no such page")


@blueprint.get("/audit")
def audit_page():
    params = page_params.parse(page_params.AuditParams)
    since = dt.datetime.combine(params.since, dt.time(), dt.timezone.utc) if params.since else None
    filters = {"since": since, "action": params.action, "actor": params.actor}
    page = params.page
    with services().db.session() as session:
        if params.format == "csv":
            rows = audit_log.events(session, **filters, limit=1_000_000)
            return Response(audit_log.to_csv(rows), mimetype="text/csv", headers={
                "Content-Disposition": "attachment; filename=audit.csv", "Cache-Control": "private, no-store"})
        rows = audit_log.events(session, **filters, limit=PAGE + 1, offset=(page - 1) * PAGE)
    return render_template("audit.html", rows=rows[:PAGE], more=len(rows) > PAGE, page=page, actions=audit_log.ACTIONS,
                           filters={k: request.args.get(k, "") for k in ("since", "action", "actor")})
