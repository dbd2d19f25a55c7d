"""HTTP API, ``/api/v1``: submit (safely retried with Idempotency-Key), read and delete batches and jobs.
Files (images, maps, overlays, reports, exports) are in web/api_files.py, DICOM in web/api_dicom.py,
webhooks in web/api_webhooks.py; make_blueprint puts them all on one blueprint. The contract (OpenAPI 3.1) is generated from their ``@route`` declarations and
the models in web/schemas.py.

Every route but the health check needs a bearer token or a signed-in session (web/auth.py) and sees only
its owner's items (admins: everyone's, audited); another owner's id answers 404 like a missing one.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json

from flask import Blueprint, Response, jsonify, request, url_for
from sqlalchemy import text

from shared.jobs import idempotency, version_results
from web import queries, schemas
from web.audit import audit_access
from web.auth import authenticate_api
from web.contract import route
from web.errors import ApiError
from web.owned import delete_owned_batch, delete_owned_job, owned_batch, owned_job
from web.queries import MAX_PAGE
from web.routes import Routes
from web.security import current_viewer
from web.serializers import DISCLAIMER, batch_json, counts_json, iso, job_json, model_json, other_versions_json
from web.services import services
from web.uploads import submit_batch

PRIVATE = "private, no-store"  # X-rays are patient data: never kept by a browser or proxy cache
routes = Routes()


def make_blueprint(*more: Routes) -> Blueprint:
    """The ``/api/v1`` blueprint of one app: this module's routes and the ``more`` tables given (the files,
    DICOM and webhook modules), behind one authentication."""
    api = Blueprint("api", __name__)
    api.before_request(_authenticate)
    for table in (routes, *more):
        table.add_to(api)
    return api


def _authenticate():
    if request.endpoint != "api.healthz":
        authenticate_api()


def _with_model_notice(session, body: dict) -> dict:
    """Every answer names the model the workers serve now and warns plainly if it is untrained."""
    served = model_json(queries.current_model(session))
    warnings = list(body.get("warnings", []))
    if served and served["warning"] and served["warning"] not in warnings:
        warnings.append(served["warning"])
    if served is None:
        warnings.append("No worker has reported a model yet: jobs wait until a worker starts.")
    return {**body, "served_model": served, "warnings": warnings, "disclaimer": DISCLAIMER}


def _whole_number(name: str, default: int) -> int:
    """A whole-number query parameter; absent: the default; anything but a whole number: 400."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise ApiError(400, f"'{name}' must be a whole number, got {raw[:40]!r}") from None


def _page_args() -> tuple[int, int]:
    """Numbers out of range are brought into it (as the contract says); what is not a number is refused."""
    page = min(max(1, _whole_number("page", 1)), MAX_PAGE)
    per_page = min(100, max(1, _whole_number("per_page", services().settings.history_page_size)))
    return page, per_page


@routes.post("/batches")
@route((202, schemas.Batch), (200, schemas.Batch), errors=(400, 401, 403, 409, 413, 415, 422, 429),
       form=schemas.Upload, headers=schemas.UploadHeaders, tags=["batches"])
def create_batch():
    """Multipart upload: one or many files in the 'files' field (or 'file'), and optionally their ground truth as
    an NIH-style CSV in 'labels' (the answer's ``labels`` says what matched). Answers 202 with the new batch.

    With an ``Idempotency-Key`` header, a retry (same key, same files and fields, within 24 h) answers 200
    with the first answer's body instead of making a second batch; the same key with anything else is 422.
    """
    files = request.files.getlist("files") + request.files.getlist("file")
    truth = _label_file()
    name, callback = request.form.get("name"), request.form.get("callback_url")
    model = (request.form.get("model") or "").strip() or None
    viewer, key = current_viewer(), request.headers.get("Idempotency-Key")
    if key is not None:
        try:
            replay = idempotency.reserve(services().db, viewer.user_id, key, _fingerprint(files, name, callback, model))
        except idempotency.IdempotencyError as exc:
            raise ApiError(exc.status, str(exc), headers={"Retry-After": "1"} if exc.status == 409 else None) from None
        if replay is not None:
            response = jsonify(replay.response)
            response.headers["Location"] = url_for("api.get_batch", batch_id=replay.batch_id)
            response.headers["Idempotent-Replayed"] = "true"
            return response
    label_report: dict = {}

    def attach_truth(session, batch) -> None:
        """The label file that came with the upload (web/api_labels.py), in the batch's own transaction: before
        any job is sent, so a worker that finishes the last image already finds the batch due for evaluation."""
        from web.api_labels import attach_labels

        label_report.update(attach_labels(session, batch, truth))

    try:
        batch_id = submit_batch(files, viewer, name, callback, model,
                                on_recorded=attach_truth if truth is not None else None)
        with services().db.session() as session:
            batch = queries.get_batch(session, viewer, batch_id)
            body = _with_model_notice(session, batch_json(batch))
            if truth is not None:
                body["labels"] = label_report
            if key is not None:
                idempotency.complete(session, viewer.user_id, key, batch_id, body)
    except BaseException:
        if key is not None:
            with services().db.session() as session:
                idempotency.release(session, viewer.user_id, key)
        raise
    response = jsonify(body)
    response.status_code = 202
    response.headers["Location"] = url_for("api.get_batch", batch_id=batch_id)
    return response


def _label_file():
    """An upload's optional label file ('labels' field): read before anything is stored, so a bad file
    refuses the upload with a 400 that says which line and why."""
    if "labels" not in request.files:
        return None
    from web.api_labels import read_label_upload

    return read_label_upload()


def _fingerprint(files, name: str | None, callback: str | None, model: str | None = None) -> str:
    """What this upload sent: every file (field, name, content digest) and the text fields."""
    parts = []
    for file in files:
        digest = hashlib.sha256()
        for block in iter(lambda: file.stream.read(1 << 20), b""):
            digest.update(block)
        file.stream.seek(0)
        parts.append(("file", file.filename or "", digest.digest()))
    parts += [("name", "", name or ""), ("callback_url", "", callback or "")]
    if model:  # only when given, so keys recorded before the field existed still match
        parts.append(("model", "", model))
    return idempotency.fingerprint(parts)


@routes.get("/batches")
@route((200, schemas.BatchList), errors=(400, 401, 429), query=schemas.PageQuery, tags=["batches"])
def list_batches():
    """Your batches, newest first, a page at a time (``?page=N&per_page=M``), with their status counts."""
    page, per_page = _page_args()
    with services().db.session() as session:
        batches, total = queries.list_batches(session, current_viewer(), page, per_page)
        counts = queries.status_counts(session, [b.id for b in batches])
        items = [
            {"id": str(b.id), "created_at": iso(b.created_at), **counts_json(counts[b.id], b.job_count),
             "url": url_for("api.get_batch", batch_id=b.id)}
            for b in batches
        ]
        pages = max(1, -(-total // per_page))
        body = {"batches": items, "page": page, "per_page": per_page, "total": total, "pages": pages}
        if page > pages:
            body["warnings"] = [f"page {page} is past the last page ({pages})"]
        body = _with_model_notice(session, body)
    return jsonify(body)


CURSOR_EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
CURSOR_LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.timezone.utc)


def _since() -> dt.datetime | None:
    raw = request.args.get("since")
    if raw is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"'since' must be a cursor from an earlier answer (ISO 8601), got {raw!r}") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
    # Any cursor before the service existed means "everything"; clamped so that looking back a few seconds
    # (serializers.CURSOR_OVERLAP) from year 1 cannot overflow.
    return min(max(moment, CURSOR_EARLIEST), CURSOR_LATEST)


@routes.get("/batches/<batch_id>")
@route((200, schemas.Batch), (304, None), errors=(400, 401, 404, 429), query=schemas.BatchQuery, tags=["batches"])
def get_batch(batch_id: str):
    """The batch; ``?since=<cursor>`` gives only the jobs changed since an earlier answer, and an unchanged
    answer is ``304`` to a request with its ETag, so polling costs next to nothing."""
    since = _since()
    with services().db.session() as session:
        batch = owned_batch(session, batch_id)
        audit_access(session, "view", "batch", batch.id, batch.owner_id)
        body = json.dumps(_with_model_notice(session, batch_json(batch, since)), separators=(",", ":"), sort_keys=True)
    response = Response(body, mimetype="application/json")
    response.set_etag(hashlib.sha256(body.encode()).hexdigest()[:32])
    response.headers["Cache-Control"] = "private, no-cache"
    return response.make_conditional(request)


@routes.delete("/batches/<batch_id>")
@route((204, None), errors=(401, 403, 404, 429), tags=["batches"])
def delete_batch(batch_id: str):
    """The batch, its jobs, findings, uploads and overlays; answers 204."""
    delete_owned_batch(batch_id)
    return "", 204


@routes.get("/jobs/<job_id>")
@route((200, schemas.Job), tags=["jobs"])
def get_job(job_id: str):
    """One image: all 15 findings with the model's measured quality, the input check, timings and the model."""
    with services().db.session() as session:
        job = owned_job(session, job_id)
        audit_access(session, "view", "job", job.id, job.batch.owner_id)
        body = job_json(job, detail=True)
        body["other_versions"] = other_versions_json(job, version_results.with_maps(session, job.id))
        if job.model and job.model.trained is False:
            body["warnings"] = body["warnings"] + [body["model"]["warning"]]
        return jsonify(_with_model_notice(session, body))


@routes.delete("/jobs/<job_id>")
@route((204, None), errors=(401, 403, 404, 429), tags=["jobs"])
def delete_job(job_id: str):
    """One image with its results and files (its batch too if it was the last); answers 204."""
    delete_owned_job(job_id)
    return "", 204


@routes.get("/models/current")
@route((200, schemas.CurrentModel), errors=(401, 429), tags=["models"])
def current_model():
    """The model the workers last reported: what a new upload will most likely be analysed with."""
    with services().db.session() as session:
        return jsonify(_with_model_notice(session, {"model": model_json(queries.current_model(session))}))


@routes.get("/healthz")
@route((200, schemas.Health), (503, schemas.Health), errors=(), public=True, tags=["service"])
def healthz():
    """Liveness and readiness: the database answers. Needs no authentication (load balancers ask it)."""
    try:
        with services().db.session() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        return jsonify({"status": "unavailable", "database": f"error: {type(exc).__name__}"}), 503
    return jsonify({"status": "ok", "database": "ok"})
