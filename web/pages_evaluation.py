"""Pages of ground truth and readers: a batch's evaluation (tables and SVG plots drawn from the stored
figures; nothing is computed in the request) and the label room, where a reader labels the batch's images
one keystroke per finding. Both follow the reader rule: owner, admin, or a reader granted the batch."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from shared.model import registry
from shared.model.labels import LABELS, display_name
from shared.truth import store
from web.audit import audit_access
from web.auth import login_manager
from web.evaluation_views import evaluation_json
from web.owned import owned_batch, readable_batch
from web.security import current_viewer
from web.services import services

blueprint = Blueprint("evaluation", __name__)
# The label room's keys: one per finding, in LABELS order ("No Finding" follows from the others).
KEYS = "1234567890qwer"
PLOT = 240  # the SVG plots' side, in their own units


@blueprint.before_request
def _signed_in():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()


def _points(xs, ys) -> str:
    """An SVG polyline's points for values in [0, 1] (y up)."""
    return " ".join(f"{x * PLOT:.1f},{(1 - y) * PLOT:.1f}" for x, y in zip(xs, ys))


def _fmt(value, digits=3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _interval(row: dict, digits=2) -> str:
    if row is None or row.get("value") is None:
        return "–"
    return f"{row['value']:.{digits}f} ({_fmt(row['ci_low'], digits)}–{_fmt(row['ci_high'], digits)})"


@blueprint.get("/batches/<batch_id>/evaluation")
def evaluation_page(batch_id: str):
    with services().db.session() as session:
        batch = readable_batch(session, batch_id)
        audit_access(session, "view", "evaluation", batch.id, batch.owner_id)
        body = evaluation_json(session, batch)
        mine = batch.owner_id == current_viewer().user_id or current_viewer().is_admin
        choices = [row for row in registry.versions(session) if row.status == registry.READY] if mine else []
        return render_template("evaluation.html", batch=batch, body=body, labels=LABELS, points=_points, fmt=_fmt,
                               interval=_interval, plot=PLOT, owner=mine, rerun_choices=choices,
                               api=url_for("api.get_evaluation", batch_id=batch.id))


@blueprint.get("/batches/<batch_id>/label")
def label_room(batch_id: str):
    """One image at a time, its findings as a list with one key each; the next image is preloaded."""
    with services().db.session() as session:
        batch = readable_batch(session, batch_id)
        audit_access(session, "view", "batch", batch.id, batch.owner_id)
        jobs = [job for job in batch.jobs if job.status == "succeeded"]
        done = {row.job_id for row in store.reader_labels(session, batch_id=batch.id, reader_id=current_viewer().user_id)}
        images = [{"id": str(job.id), "name": job.original_filename, "done": job.id in done,
                   "image": url_for("api.job_image", job_id=job.id), "labels": url_for("api.get_job_labels", job_id=job.id),
                   "probabilities": {f.label: round(f.probability, 3) for f in job.findings},
                   "positive": [f.label for f in job.findings if f.positive]} for job in jobs]
        start = next((i for i, image in enumerate(images) if not image["done"]), 0)
        findings = [{"label": label, "name": display_name(label), "key": key} for label, key in zip(LABELS, KEYS)]
        return render_template("label_room.html", batch=batch, images=images, start=start, findings=findings,
                               blind=request.args.get("blind") == "1")


@blueprint.post("/batches/<batch_id>/rerun")
def rerun_form(batch_id: str):
    """The evaluation page's "rerun with version X" (the owner's): the same images, another version."""
    from web.api_models import dispatch_queued_reruns, queue_rerun

    with services().db.session() as session:
        batch = owned_batch(session, batch_id)
        try:
            queued, version = queue_rerun(session, batch, (request.form.get("model") or "").strip())
            flash(f"{len(queued)} image(s) queued under version {version}; its figures appear here once they are done.",
                  "info")
        except registry.RegistryError as exc:
            queued = {}
            flash(f"Not rerun: {exc}", "error")
        target = url_for("evaluation.evaluation_page", batch_id=batch.id)
    dispatch_queued_reruns(queued)
    return redirect(target, code=303)
