"""DICOM downloads of a job uploaded as DICOM: the de-identified image as stored, a Measurement Report (SR
TID 1500) of its findings, a Parametric Map of the shown findings' heatmaps (shared/imaging/dicom_maps.py) and
a JPEG Secondary Capture of each shown finding's heatmap (shared/imaging/dicom_out.py), all in the image's
de-identified study. On the API's blueprint (web/api.make_blueprint), with its authentication and owner rules."""
from __future__ import annotations

from flask import Response

from shared.db.models import Job, JobStatus
from shared.imaging import dicom_in, dicom_maps, dicom_out, maps
from shared.imaging.images import decode_image
from shared.jobs.storage import StorageError
from shared.model.labels import NO_FINDING
from web.api import PRIVATE
from web.api_files import limits
from web.audit import audit_access
from web.contract import route
from web.errors import ApiError
from web.owned import owned_job
from web.routes import Routes
from web.services import services

DICOM = "application/dicom"

routes = Routes()


def _dicom_job(session, job_id: str) -> Job:
    job = owned_job(session, job_id)
    audit_access(session, "download", "job", job.id, job.batch.owner_id)
    if job.content_type != DICOM or not job.image_key:
        raise ApiError(404, "this job's image was not sent as DICOM, so there are no DICOM objects for it")
    return job


def _source(job: Job):
    try:
        return dicom_in.read_header(services().storage.get(job.image_key))
    except StorageError:
        raise ApiError(404, "the stored image is missing") from None


def _analysed(job: Job) -> None:
    if job.status != JobStatus.SUCCEEDED.value:
        raise ApiError(404, f"job {job.id} has no results yet (it is {job.status})")


def _send(data: bytes, name: str) -> Response:
    return Response(data, mimetype=DICOM, headers={"Content-Disposition": f'attachment; filename="{name}"',
                                                   "Cache-Control": PRIVATE})


@routes.get("/jobs/<job_id>/dicom/image")
@route((200, None), tags=["dicom"])
def job_dicom_image(job_id: str):
    """The image as stored: de-identified on arrival, pixel data as sent."""
    with services().db.session() as session:
        job = _dicom_job(session, job_id)
    try:
        return _send(services().storage.get(job.image_key), f"image-{job_id[:8]}.dcm")
    except StorageError:
        raise ApiError(404, "the stored image is missing") from None


@routes.get("/jobs/<job_id>/dicom/report")
@route((200, None), tags=["dicom"])
def job_dicom_report(job_id: str):
    """A DICOM Measurement Report (SR, TID 1500): each finding coded, present or absent at its threshold, its
    probability, the model's name and version, referencing the analysed image and the Parametric Map."""
    with services().db.session() as session:
        job = _dicom_job(session, job_id)
        _analysed(job)
        report = dicom_out.structured_report(_source(job), dicom_out.result_of(job))
    return _send(dicom_out.to_bytes(report), f"report-{job_id[:8]}.dcm")


@routes.get("/jobs/<job_id>/dicom/map")
@route((200, None), tags=["dicom"])
def job_dicom_map(job_id: str):
    """A DICOM Parametric Map: a frame per shown finding's heatmap on the image's pixel grid, in its study."""
    with services().db.session() as session:
        job = _dicom_job(session, job_id)
        _analysed(job)
        parametric = dicom_maps.parametric_map(_source(job), dicom_out.result_of(job))
    if parametric is None:
        raise ApiError(404, f"job {job_id} shows no heatmap, so it has no parametric map")
    return _send(dicom_out.to_bytes(parametric), f"map-{job_id[:8]}.dcm")


@routes.get("/jobs/<job_id>/dicom/heatmaps/<label>")
@route((200, None), tags=["dicom"])
def job_dicom_heatmap(job_id: str, label: str):
    """A DICOM Secondary Capture of the label's heatmap over the image, in the image's de-identified study."""
    with services().db.session() as session:
        job = _dicom_job(session, job_id)
        _analysed(job)
        if label == NO_FINDING or job.maps is None or not any(f.label == label for f in job.findings):
            raise ApiError(404, f"job {job_id} has no heatmap for {label!r}")
        try:
            stored = services().storage.get(job.image_key)  # read once: the header and the pixels both come from it
        except StorageError:
            raise ApiError(404, "the stored image is missing") from None
        grey = maps.base_image(decode_image(stored, **limits()))
        capture = dicom_out.captures(dicom_in.read_header(stored), grey, dicom_out.result_of(job), [label])[0]
    return _send(dicom_out.to_bytes(capture), f"heatmap-{job_id[:8]}-{label}.dcm")
