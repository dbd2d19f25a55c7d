"""Pages for people: upload, batch (polls the API), job, history."""
from __future__ import annotations

import math

from flask import Blueprint, Flask, redirect, render_template, request, url_for

from shared import queries
from shared.labels import display_name
from web.security import current_owner
from shared.model_manifest import UNTRAINED_WARNING
from web.ids import not_found, parse_id
from web.serializers import DISCLAIMER, counts_json
from web.services import services
from web.uploads import submit_batch

blueprint = Blueprint("pages", __name__)


def register_template_globals(app: Flask) -> None:
    @app.context_processor
    def model_notice():
        try:
            with services().db.session() as session:
                model = queries.current_model(session)
                info = None if model is None else {"name": model.name, "version": model.version, "trained": model.trained}
        except Exception:  # an error page must still render when the database is down
            info = None
        return {"current_model": info, "disclaimer": DISCLAIMER, "untrained_warning": UNTRAINED_WARNING,
                "display_name": display_name}


@blueprint.get("/")
def upload_page():
    return render_template("upload.html")


@blueprint.post("/batches")
def upload_form():
    batch_id = submit_batch(request.files.getlist("files"))
    return redirect(url_for("pages.batch_page", batch_id=batch_id), code=303)


@blueprint.get("/batches/<batch_id>")
def batch_page(batch_id: str):
    with services().db.session() as session:
        batch = queries.get_batch(session, current_owner(), parse_id(batch_id, "batch"))
        if batch is None:
            raise not_found("batch", batch_id)
        created = batch.created_at
    return render_template("batch.html", batch_id=batch_id, created_at=created)


@blueprint.get("/jobs/<job_id>")
def job_page(job_id: str):
    with services().db.session() as session:
        job = queries.get_job(session, current_owner(), parse_id(job_id, "job"))
        if job is None:
            raise not_found("job", job_id)
        return render_template("job.html", job=job)


@blueprint.get("/history")
def history_page():
    per_page = services().settings.history_page_size
    page = max(1, request.args.get("page", 1, type=int))
    with services().db.session() as session:
        batches, total = queries.list_batches(session, current_owner(), page, per_page)
        counts = queries.status_counts(session, [b.id for b in batches])
        rows = [{"batch": b, **counts_json(counts[b.id], b.job_count)} for b in batches]
    pages = max(1, math.ceil(total / per_page))
    return render_template("history.html", rows=rows, page=page, pages=pages, total=total)
