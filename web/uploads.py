"""Accepting uploads: check each file by content, keep only its pixels (DICOM: de-identified), record the
batch, then enqueue.

Order matters: the job rows are committed before anything is enqueued, so a worker never receives an
id it cannot find, and a broker outage leaves jobs queued in the database instead of losing them.
One bad file becomes one failed job; it never rejects the files beside it. If recording the batch
fails, the bytes already stored for it are removed again: no file without a row.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import uuid

from flask import current_app, request
from werkzeug.datastructures import FileStorage

from shared.auth.accounts import Viewer
from shared.db.models import JobStatus
from shared.imaging.deidentify import deidentified_bytes
from shared.imaging.dicom_in import read_header
from shared.imaging.images import DamagedImage, ImageError, ImageTooLarge, inspect_image
from shared.imaging.privacy import MetadataError, clean_filename, clean_text, strip_metadata
from shared.jobs import lifecycle, version_results, webhooks
from shared.jobs.queue import VERSION_RESULT_TASK, dispatch, dispatch_by_version
from shared.model import registry
from shared.jobs.storage import StorageError, upload_key
from shared.ops import metrics
from web import queries
from web.audit import audit
from web.errors import ApiError, human_size
from web.metrics import rejected
from web.services import services


log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Upload:
    """One file of a request as recorded; ``too_large`` says why a rejected one was rejected."""

    job: lifecycle.NewJob
    too_large: bool = False


def _kept_bytes(data: bytes, info, owner: uuid.UUID) -> bytes:
    """What may be stored: DICOM always de-identified; PNG/JPEG without metadata unless originals are kept."""
    if info.format == "DICOM":
        try:
            return deidentified_bytes(data, current_app.secret_key.encode(), str(owner))
        except ValueError as exc:
            raise ImageError(str(exc)) from None
    return data if services().settings.keep_originals else strip_metadata(data, info.format)


def _name(file: FileStorage, data: bytes, digest: str) -> str:
    """The name a job keeps. A DICOM file's name often spells the patient (``DOE_JANE_1234.dcm``), so it is
    never kept: a stored DICOM file is named from its de-identified UIDs (``_dicom_name``), a refused one is
    "DICOM file". With XRAY_KEEP_FILENAMES=0 no upload keeps its name: it is named by its content's hash."""
    if data[128:132] == b"DICM" or (file.filename or "").lower().endswith((".dcm", ".dicom")):
        return "DICOM file"
    if not services().settings.keep_filenames:
        return f"upload-{digest[:12]}"
    return clean_filename(file.filename)


def _dicom_name(kept: bytes) -> str:
    """study-series-instance from the ends of the de-identified UIDs (keyed hashes, PS3.15 action U)."""
    ds = read_header(kept)
    return "-".join(str(ds.get(k, "") or "")[-8:] for k in ("StudyInstanceUID", "SeriesInstanceUID",
                                                             "SOPInstanceUID")) + ".dcm"


def _accept(file: FileStorage, owner: uuid.UUID) -> Upload:
    settings, storage = services().settings, services().storage
    data = file.stream.read(settings.max_file_bytes + 1)
    digest = hashlib.sha256(data).hexdigest()
    name = _name(file, data, digest)
    metrics.UPLOAD_BYTES.inc(len(data))
    if len(data) > settings.max_file_bytes:
        rejected("too_large")
        limit = human_size(settings.max_file_bytes)
        too_big = f"the file is larger than the {limit} limit per image"
        return Upload(lifecycle.NewJob(name, digest, len(data), error=too_big),
                      too_large=True)
    try:
        info = inspect_image(data, settings.max_image_pixels, settings.max_decoded_bytes)
        kept = _kept_bytes(data, info, owner)
    except ImageError as exc:
        rejected("too_large" if isinstance(exc, ImageTooLarge) else "damaged" if isinstance(exc, DamagedImage)
                 else "not_an_image")
        return Upload(lifecycle.NewJob(name, digest, len(data), error=str(exc)),
                      too_large=isinstance(exc, ImageTooLarge))
    except MetadataError as exc:
        rejected("damaged")
        return Upload(lifecycle.NewJob(name, digest, len(data),
                                       error=f"the image could not be decoded: the file is damaged or truncated ({exc})"))
    if info.format == "DICOM":
        name = _dicom_name(kept)
    key = upload_key(info.extension)
    try:
        storage.put(key, kept)
    except StorageError as exc:
        raise ApiError(503, "the upload could not be stored; try again later") from exc
    facts = info.dicom
    return Upload(lifecycle.NewJob(name, digest, len(data), image_key=key, content_type=info.content_type,
                                   width=info.width, height=info.height, stored_bytes=len(kept),
                                   view_position=facts.view_position if facts else None,
                                   pixel_spacing_mm=facts.pixel_spacing_mm if facts else None))


def _queue(settings, version: str | None) -> str | None:
    queue = settings.queue_for(version)
    return None if queue == settings.queue_name else queue


def _shadow(session, job_ids: list[uuid.UUID], served: str | None) -> dict[uuid.UUID, str]:
    """Default traffic: a share of its jobs also runs on the 'shadow' alias's version (never shown)."""
    alias = registry.aliases(session).get(registry.SHADOW)
    if alias is None or not job_ids or alias.version == served:
        return {}
    return version_results.add_shadow(session, job_ids, alias.version, alias.share or 0.0)


def _check_quota(viewer: Viewer, files: int) -> None:
    settings = services().settings
    with services().db.session() as session:
        waiting, stored = queries.owner_usage(session, viewer.user_id)
    if waiting + files > settings.quota_queued_jobs:
        rejected("quota")
        raise ApiError(429, f"you have {waiting} images waiting or running; at most {settings.quota_queued_jobs} may "
                            "wait at once: send these when some have finished", headers={"Retry-After": "60"})
    incoming = request.content_length or 0  # an upper bound of what this request would add
    if stored + incoming > settings.quota_stored_bytes:
        rejected("quota")
        raise ApiError(413, f"your stored images take {human_size(stored)} and this upload up to "
                            f"{human_size(incoming)}; your quota is {human_size(settings.quota_stored_bytes)}: "
                            "delete old batches first")


def _remove_stored(uploads: list[Upload]) -> None:
    for upload in uploads:
        if upload.job.image_key:
            try:
                services().storage.delete(upload.job.image_key)
            except StorageError:
                pass


def _resolve_model(model: str | None) -> tuple[str | None, str | None]:
    """(version, reference) for a new batch: checked before any file is stored, resolved again on commit."""
    with services().db.session() as session:
        try:
            row = registry.resolve_for_batch(session, model)
        except registry.RegistryError as exc:
            raise ApiError(exc.status if exc.status != 404 else 400, str(exc)) from None
        return (row.version if row else None), (model or None)


def submit_batch(files: list[FileStorage], viewer: Viewer, name: str | None = None,
                 callback_url: str | None = None, model: str | None = None, on_recorded=None) -> uuid.UUID:
    """Store, record and enqueue; returns the batch id. Raises ApiError when nothing can be accepted.
    ``name`` (optional) names the batch in the history; ``callback_url`` (optional) gets a signed POST
    when the batch is finished (checked here: http(s), public addresses only); ``model`` (optional) is a
    model version or alias (shared/model/registry.py), else the 'default' alias serves it. The version is
    resolved once, here: an alias moved while the batch runs does not split it. ``on_recorded(session, batch)``
    (optional) runs in the batch's own transaction, before anything is sent to the workers."""
    if callback_url:
        try:
            webhooks.check_url(callback_url, services().settings.webhook_allow_private)
        except webhooks.WebhookError as exc:
            raise ApiError(400, str(exc)) from None
    settings = services().settings
    files = [f for f in files if f and (f.filename or f.content_length)]
    if not files:
        rejected("no_files")
        raise ApiError(400, "no files were sent: attach one or more PNG, JPEG or DICOM images in the 'files' field")
    if len(files) > settings.max_files_per_batch:
        rejected("too_many_files")
        raise ApiError(400, f"{len(files)} files were sent; a batch may hold at most {settings.max_files_per_batch}")
    _check_quota(viewer, len(files))
    _resolve_model(model)  # a wrong model name is refused before any file is stored
    uploads: list[Upload] = []
    try:
        for file in files:
            uploads.append(_accept(file, viewer.user_id))
        accepted = [upload.job for upload in uploads]
        if all(job.error for job in accepted):
            details = [{"filename": job.original_filename, "error": job.error} for job in accepted]
            too_large = all(upload.too_large for upload in uploads)
            summary = "; ".join(f"{d['filename']}: {d['error']}" for d in details[:5])
            raise ApiError(413 if too_large else 415, f"none of the files can be analysed ({summary})", details)
        with services().db.session() as session:
            try:
                resolved = registry.resolve_for_batch(session, model)
            except registry.RegistryError as exc:  # the alias moved to something unusable meanwhile
                raise ApiError(exc.status if exc.status != 404 else 400, str(exc)) from None
            version = resolved.version if resolved else None
            batch = lifecycle.create_batch(session, viewer.user_id, accepted, name=clean_text(name, 200) or None,
                                           model_version=version, model_ref=model or None)
            batch.callback_url = callback_url or None
            batch_id = batch.id
            queued = [job.id for job in batch.jobs if job.status == JobStatus.QUEUED.value]
            shadow = _shadow(session, queued, version) if not model else {}
            if on_recorded is not None:
                on_recorded(session, batch)
            audit(session, "upload", "batch", batch_id, detail={"images": len(accepted), "queued": len(queued),
                                                                "model_version": version, "shadow": len(shadow)})
    except BaseException:
        _remove_stored(uploads)
        raise
    settings = services().settings
    sent = dispatch(services().celery, queued, queue=_queue(settings, version))
    with services().db.session() as session:
        lifecycle.mark_dispatched(session, sent)
    if shadow:
        sent_shadow = dispatch_by_version(services().celery, settings, shadow, task=VERSION_RESULT_TASK)
        with services().db.session() as session:
            version_results.mark_dispatched(session, sent_shadow)
    log.info("batch accepted: %d images, %d queued, %d sent to the workers", len(accepted), len(queued), len(sent),
             extra={"batch_id": str(batch_id)})
    return batch_id
