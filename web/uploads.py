"""Accepting uploads: check each file by content, store it, record the batch, then enqueue.

Order matters: the job rows are committed before anything is enqueued, so a worker never receives an
id it cannot find, and a broker outage leaves jobs queued in the database instead of losing them.
One bad file becomes one failed job; it never rejects the files beside it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import uuid

from werkzeug.datastructures import FileStorage

from shared import jobs
from shared.images import ImageError, ImageTooLarge, inspect_image
from shared.models import JobStatus
from shared.queue import dispatch
from shared.storage import StorageError, upload_key
from web.errors import ApiError, human_size
from web.security import current_owner
from web.services import services


@dataclasses.dataclass(frozen=True)
class Upload:
    """One file of a request as recorded; ``too_large`` says why a rejected one was rejected."""

    job: jobs.NewJob
    too_large: bool = False


def _accept(file: FileStorage) -> Upload:
    settings, storage = services().settings, services().storage
    name = (file.filename or "unnamed").replace("\\", "/").rsplit("/", 1)[-1] or "unnamed"
    data = file.stream.read(settings.max_file_bytes + 1)
    digest = hashlib.sha256(data).hexdigest()
    if len(data) > settings.max_file_bytes:
        limit = human_size(settings.max_file_bytes)
        return Upload(jobs.NewJob(name, digest, len(data), error=f"the file is larger than the {limit} limit per image"),
                      too_large=True)
    try:
        info = inspect_image(data, settings.max_image_pixels)
    except ImageError as exc:
        return Upload(jobs.NewJob(name, digest, len(data), error=str(exc)), too_large=isinstance(exc, ImageTooLarge))
    key = upload_key(info.extension)
    try:
        storage.put(key, data)
    except StorageError as exc:
        raise ApiError(503, f"the upload could not be stored ({exc}); try again later") from exc
    return Upload(jobs.NewJob(name, digest, len(data), image_key=key, content_type=info.content_type,
                              width=info.width, height=info.height))


def submit_batch(files: list[FileStorage]) -> uuid.UUID:
    """Store, record and enqueue; returns the batch id. Raises ApiError when nothing can be accepted."""
    settings = services().settings
    files = [f for f in files if f and (f.filename or f.content_length)]
    if not files:
        raise ApiError(400, "no files were sent: attach one or more PNG or JPEG images in the 'files' field")
    if len(files) > settings.max_files_per_batch:
        raise ApiError(400, f"{len(files)} files were sent; a batch may hold at most {settings.max_files_per_batch}")
    uploads = [_accept(f) for f in files]
    accepted = [upload.job for upload in uploads]
    if all(job.error for job in accepted):
        details = [{"filename": job.original_filename, "error": job.error} for job in accepted]
        too_large = all(upload.too_large for upload in uploads)
        summary = "; ".join(f"{d['filename']}: {d['error']}" for d in details[:5])
        raise ApiError(413 if too_large else 415, f"none of the files can be analysed ({summary})", details)

    db = services().db
    with db.session() as session:
        batch = jobs.create_batch(session, current_owner(), accepted)
        batch_id = batch.id
        queued = [job.id for job in batch.jobs if job.status == JobStatus.QUEUED.value]
    sent = dispatch(services().celery, queued)
    with db.session() as session:
        jobs.mark_dispatched(session, sent)
    return batch_id
