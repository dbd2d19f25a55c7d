"""API routes that answer files, not JSON: the stored image, the maps as data, overlays drawn on request,
PDF reports and exports. On the API's blueprint (web/api.make_blueprint), with its authentication and owner rules."""
from __future__ import annotations

import base64
import json

from flask import Response, jsonify, request

from shared.imaging import maps, values
from shared.imaging.images import ImageError
from shared.jobs import version_results
from shared.jobs.storage import StorageError
from web import exports, renders, reports, schemas
from web.api import PRIVATE
from web.audit import audit_access
from web.contract import route
from web.errors import ApiError
from web.owned import owned_batch, owned_job, readable_job
from web.page_params import MODEL_VERSION
from web.serializers import DISCLAIMER
from web.routes import Routes
from web.services import services

routes = Routes()


@routes.get("/batches/<batch_id>/export.<kind>")
@route((200, None), tags=["batches"])
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
            data, mimetype = reports.batch_report(batch, DISCLAIMER, services().storage, **limits()), "application/pdf"
    name = f"batch-{batch_id[:8]}.{kind}"
    return Response(data, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"',
                                                      "Cache-Control": PRIVATE})


def _send_stored(key: str, mimetype: str):
    # The bytes, not a file passed through to the server: the contract's wrapper reads every answer
    # (an upload is at most XRAY_MAX_FILE_BYTES).
    try:
        data = services().storage.get(key)
    except StorageError:
        raise ApiError(404, "the stored file is missing") from None
    return Response(data, mimetype=mimetype, headers={"Cache-Control": PRIVATE})


@routes.get("/jobs/<job_id>/image")
@route((200, None), tags=["jobs"])
def job_image(job_id: str):
    """The image as stored (PNG or JPEG); a DICOM upload as PNG of its display pixels (window applied)."""
    with services().db.session() as session:
        job = readable_job(session, job_id)  # a granted reader labels it
        audit_access(session, "download", "job", job.id, job.batch.owner_id)
    if not job.image_key:
        raise ApiError(404, "this job has no stored image (the upload was rejected)")
    if job.content_type == "application/dicom":  # browsers cannot show DICOM: its display pixels as PNG
        try:
            return Response(renders.display_png(services().storage, job, **limits()), mimetype="image/png",
                            headers={"Cache-Control": PRIVATE})
        except StorageError:
            raise ApiError(404, "the stored image is missing") from None
        except ImageError as exc:
            raise ApiError(404, f"the stored image cannot be shown: {exc}") from None
    return _send_stored(job.image_key, job.content_type or "application/octet-stream")


def limits() -> dict:
    settings = services().settings
    return {"max_pixels": settings.max_image_pixels, "max_decoded_bytes": settings.max_decoded_bytes}


@routes.get("/jobs/<job_id>/maps")
@route((200, schemas.Maps), errors=(400, 401, 404, 429), query=schemas.MapsQuery, tags=["jobs"])
def job_maps(job_id: str):
    """Every class's activation map at the model's feature resolution (uint8, base64, row-major), with the
    colour table the service draws them with: what the viewer draws from. ``?version=`` gives another model
    version's maps of the same image (a rerun or shadow result; the viewer's side by side)."""
    version = request.args.get("version")
    if version is not None and not MODEL_VERSION.match(version):
        raise ApiError(400, "version is a model version: 1 to 80 letters, digits and . _ : -")
    with services().db.session() as session:
        job = owned_job(session, job_id)
        audit_access(session, "download", "job", job.id, job.batch.owner_id)
        stored, served = job.maps, job.model_version
        if version is not None and version != job.model_version:
            result = version_results.one_with_maps(session, job.id, version)
            if result is None:
                raise ApiError(404, f"job {job_id} has no heatmaps from model version {version}")
            stored, served = result.maps, version
    if stored is None:
        raise ApiError(404, f"job {job_id} has no heatmaps (not analysed yet, failed, or analysed before maps were kept)")
    decoded = maps.decode(stored)
    height, width = next(iter(decoded.values())).shape
    body = {"model_version": served, "labels": list(decoded), "height": height, "width": width, "scale": "0..255, each map scaled to its own maximum",
            "colormap": maps.JET_RGB.tolist(), "default_opacity": maps.DEFAULT_OPACITY,
            "maps": {label: base64.b64encode(m.tobytes()).decode() for label, m in decoded.items()}}
    response = jsonify(body)
    response.headers["Cache-Control"] = PRIVATE
    return response


@routes.get("/jobs/<job_id>/values")
@route((200, schemas.PixelValues), tags=["jobs"])
def job_values(job_id: str):
    """The image's own values at full bit depth (a DICOM's stored values through its Modality LUT), at the
    viewer's working size, with the file's window, window presets and pixel spacing: what the viewer's
    window/level, pixel readout and length tool work on."""
    with services().db.session() as session:
        job = owned_job(session, job_id)
        audit_access(session, "download", "job", job.id, job.batch.owner_id)
    if not job.image_key:
        raise ApiError(404, "this job has no stored image (the upload was rejected)")
    try:
        found = values.image_values(services().storage.get(job.image_key), **limits())
    except StorageError:
        raise ApiError(404, "the stored image is missing") from None
    except ImageError as exc:
        raise ApiError(404, f"the stored image cannot be read: {exc}") from None
    height, width = found.values.shape
    body = {"height": height, "width": width, "original_width": found.original_size[0],
            "original_height": found.original_size[1], "bits": found.bits, "source": found.source,
            "monochrome1": found.inverted, "minimum": float(found.values.min()), "maximum": float(found.values.max()),
            "windows": {name: w.as_dict() for name, w in found.presets().items()},
            "pixel_spacing_mm": list(found.spacing_mm) if found.spacing_mm else None,
            "pixel_spacing_source": found.spacing_source,
            "values": base64.b64encode(found.values.astype("<f4").tobytes()).decode()}
    response = jsonify(body)
    response.headers["Cache-Control"] = PRIVATE
    return response


@routes.get("/jobs/<job_id>/overlays/<label>")
@route((200, None), errors=(400, 401, 404, 429), query=schemas.OverlayQuery, tags=["jobs"])
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
                                         size=size, **limits())
    except renders.RenderError as exc:
        raise ApiError(404, str(exc)) from None
    except StorageError:
        raise ApiError(404, "the stored image is missing") from None
    return Response(data, mimetype=mimetype, headers={"Cache-Control": PRIVATE})


@routes.get("/jobs/<job_id>/report.pdf")
@route((200, None), tags=["jobs"])
def job_report(job_id: str):
    """A PDF: the original, the heatmaps of the findings above threshold, all probabilities with the
    model's measured quality, the model and the disclaimer."""
    with services().db.session() as session:
        job = owned_job(session, job_id)
        audit_access(session, "download", "job", job.id, job.batch.owner_id)
        try:
            data = reports.job_report(job, services().storage, DISCLAIMER, **limits())
        except StorageError:
            raise ApiError(404, "the stored image is missing") from None
    return Response(data, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="report-{job_id[:8]}.pdf"', "Cache-Control": PRIVATE})
