"""HTTP API, ``/api/v1``: submit, read and delete batches and jobs; fetch images, heatmaps (as data or
drawn), reports and exports.

Every route but the health check needs a bearer token or a signed-in session (web/auth.py) and sees only
its owner's items (admins: everyone's, audited); another owner's id answers 404 like a missing one.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

from flask import Blueprint, Response, jsonify, request, send_file, url_for
from sqlalchemy import text

from shared import exports, maps, queries, renders, reports
from shared.queries import MAX_PAGE
from shared.storage import StorageError
from web.audit import audit_access
from web.auth import authenticate_api
from web.errors import ApiError
from web.owned import delete_owned_batch, delete_owned_job, owned_batch, owned_job
from web.security import current_viewer
from web.serializers import DISCLAIMER, batch_json, counts_json, iso, job_json, model_json
from web.services import services
from web.uploads import submit_batch

blueprint = Blueprint("api", __name__)
PRIVATE = "private, no-store"  # X-rays are patient data: never kept by a browser or proxy cache


@blueprint.before_request
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


def _page_args() -> tuple[int, int]:
    page = min(max(1, request.args.get("page", 1, type=int)), MAX_PAGE)
    per_page = min(100, max(1, request.args.get("per_page", services().settings.history_page_size, type=int)))
    return page, per_page


@blueprint.post("/batches")
def create_batch():
    """Multipart upload: one or many files in the 'files' field (or 'file'). Answers 202."""
    files = request.files.getlist("files") + request.files.getlist("file")
    batch_id = submit_batch(files, current_viewer(), request.form.get("name"))
    with services().db.session() as session:
        body = _with_model_notice(session, batch_json(queries.get_batch(session, current_viewer(), batch_id)))
    response = jsonify(body)
    response.status_code = 202
    response.headers["Location"] = url_for("api.get_batch", batch_id=batch_id)
    return response


@blueprint.get("/batches")
def list_batches():
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


def _since() -> dt.datetime | None:
    raw = request.args.get("since")
    if not raw:
        return None
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"'since' must be a cursor from an earlier answer (ISO 8601), got {raw!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


@blueprint.get("/batches/<batch_id>")
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


@blueprint.get("/batches/<batch_id>/export.<kind>")
def batch_export(batch_id: str, kind: str):
    """Every job of the batch as CSV or JSON (all 15 probabilities, thresholds, model, timings), or a PDF summary."""
    if kind not in ("csv", "json", "pdf"):
        raise ApiError(404, f"exports are .csv, .json or .pdf, not .{kind}")
    with services().db.session() as session:
        batch = owned_batch(session, batch_id)
        audit_access(session, "download", "batch", batch.id, batch.owner_id)
        if kind == "csv":
            data, mimetype = exports.batch_csv(batch), "text/csv"
        elif kind == "json":
            data, mimetype = json.dumps(exports.batch_json(batch, DISCLAIMER), indent=1), "application/json"
        else:
            data, mimetype = reports.batch_report(batch, DISCLAIMER), "application/pdf"
    name = f"batch-{batch_id[:8]}.{kind}"
    return Response(data, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"',
                                                      "Cache-Control": PRIVATE})


@blueprint.delete("/batches/<batch_id>")
def delete_batch(batch_id: str):
    """The batch, its jobs, findings, uploads and overlays; answers 204."""
    delete_owned_batch(batch_id)
    return "", 204


@blueprint.get("/jobs/<job_id>")
def get_job(job_id: str):
    with services().db.session() as session:
        job = owned_job(session, job_id)
        audit_access(session, "view", "job", job.id, job.batch.owner_id)
        body = job_json(job, detail=True)
        if job.model and job.model.trained is False:
            body["warnings"] = [body["model"]["warning"]]
        return jsonify(_with_model_notice(session, body))


@blueprint.delete("/jobs/<job_id>")
def delete_job(job_id: str):
    """One image with its results and files (its batch too if it was the last); answers 204."""
    delete_owned_job(job_id)
    return "", 204


def _send_stored(key: str, mimetype: str):
    try:
        path = services().storage.path(key)
        if not path.is_file():
            raise StorageError(f"stored file {key} is missing")
    except StorageError:
        raise ApiError(404, "the stored file is missing") from None
    response = send_file(path, mimetype=mimetype, conditional=False, etag=False)
    response.headers["Cache-Control"] = PRIVATE
    return response


@blueprint.get("/jobs/<job_id>/image")
def job_image(job_id: str):
    with services().db.session() as session:
        job = owned_job(session, job_id)
        audit_access(session, "download", "job", job.id, job.batch.owner_id)
    if not job.image_key:
        raise ApiError(404, "this job has no stored image (the upload was rejected)")
    return _send_stored(job.image_key, job.content_type or "application/octet-stream")


def _limits() -> dict:
    settings = services().settings
    return {"max_pixels": settings.max_image_pixels, "max_decoded_bytes": settings.max_decoded_bytes}


@blueprint.get("/jobs/<job_id>/maps")
def job_maps(job_id: str):
    """Every class's activation map at the model's feature resolution (uint8, base64, row-major), with the
    colour table the service draws them with: what the viewer draws from."""
    with services().db.session() as session:
        job = owned_job(session, job_id)
        audit_access(session, "download", "job", job.id, job.batch.owner_id)
    if job.maps is None:
        raise ApiError(404, f"job {job_id} has no heatmaps (not analysed yet, failed, or analysed before maps were kept)")
    decoded = maps.decode(job.maps)
    height, width = next(iter(decoded.values())).shape
    body = {"labels": list(decoded), "height": height, "width": width, "scale": "0..255, each map scaled to its own maximum",
            "colormap": maps.JET_RGB.tolist(), "default_opacity": maps.DEFAULT_OPACITY,
            "maps": {label: base64.b64encode(m.tobytes()).decode() for label, m in decoded.items()}}
    response = jsonify(body)
    response.headers["Cache-Control"] = PRIVATE
    return response


@blueprint.get("/jobs/<job_id>/overlays/<label>")
def job_overlay(job_id: str, label: str):
    """The label's heatmap over the image, drawn on request: ``?format=jpeg|png``, ``?opacity=0..1``,
    ``?size=full|thumb`` (the default look is cached)."""
    image_format = request.args.get("format", "jpeg")
    size = request.args.get("size", "full")
    opacity = request.args.get("opacity", maps.DEFAULT_OPACITY, type=float)
    if image_format not in renders.FORMATS or size not in ("full", "thumb") or not 0.0 <= opacity <= 1.0:
        raise ApiError(400, "format is jpeg or png, size is full or thumb, opacity lies between 0 and 1")
    with services().db.session() as session:
        job = owned_job(session, job_id)
        audit_access(session, "download", "job", job.id, job.batch.owner_id)
    try:
        data, mimetype = renders.overlay(services().storage, job, label, image_format=image_format, opacity=opacity,
                                         size=size, **_limits())
    except renders.RenderError as exc:
        raise ApiError(404, str(exc)) from None
    except StorageError:
        raise ApiError(404, "the stored image is missing") from None
    return Response(data, mimetype=mimetype, headers={"Cache-Control": PRIVATE})


@blueprint.get("/jobs/<job_id>/report.pdf")
def job_report(job_id: str):
    """A PDF: the original, the heatmaps of the findings above threshold, all probabilities with the
    model's measured quality, the model and the disclaimer."""
    with services().db.session() as session:
        job = owned_job(session, job_id)
        audit_access(session, "download", "job", job.id, job.batch.owner_id)
        try:
            data = reports.job_report(job, services().storage, DISCLAIMER, **_limits())
        except StorageError:
            raise ApiError(404, "the stored image is missing") from None
    return Response(data, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="report-{job_id[:8]}.pdf"', "Cache-Control": PRIVATE})


@blueprint.get("/models/current")
def current_model():
    with services().db.session() as session:
        return jsonify(_with_model_notice(session, {"model": model_json(queries.current_model(session))}))


@blueprint.get("/healthz")
def healthz():
    """Liveness and readiness: the database answers. Needs no authentication (load balancers ask it)."""
    try:
        with services().db.session() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        return jsonify({"status": "unavailable", "database": f"error: {type(exc).__name__}"}), 503
    return jsonify({"status": "ok", "database": "ok"})
