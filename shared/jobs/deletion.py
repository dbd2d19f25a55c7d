"""Deleting batches and jobs, by their owner or by the retention limit: rows first, then their files.

Rows go in the caller's transaction; the files are removed once it committed (``remove_files``), so a
failed transaction never leaves rows pointing at deleted files. A worker still running a deleted job
finds its row gone when it records the result and removes what it wrote (worker/pipeline.py).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from shared.db.models import Batch, Job, JobStatus, utcnow
from shared.jobs.storage import LocalStorage, StorageError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Removed:
    """What a deletion took out: rows now, files once the transaction committed."""

    batches: int = 0
    jobs: int = 0
    batch_id: uuid.UUID | None = None  # when one job was deleted and its batch stays: that batch
    image_keys: list[str] = dataclasses.field(default_factory=list)
    job_ids: list[uuid.UUID] = dataclasses.field(default_factory=list)

    def add(self, other: "Removed") -> None:
        self.batches += other.batches
        self.jobs += other.jobs
        self.image_keys += other.image_keys
        self.job_ids += other.job_ids


def _files_of(jobs: list[Job]) -> Removed:
    return Removed(jobs=len(jobs), image_keys=[j.image_key for j in jobs if j.image_key], job_ids=[j.id for j in jobs])


def delete_batch(session: Session, batch: Batch) -> Removed:
    removed = _files_of(list(batch.jobs))
    removed.batches = 1
    session.delete(batch)  # jobs and findings go with it (cascade)
    session.flush()
    return removed


def delete_job(session: Session, job: Job) -> Removed:
    """One image; its batch goes too when it was the last one."""
    batch = job.batch
    if batch.job_count <= 1:
        return delete_batch(session, batch)
    removed = _files_of([job])
    removed.batch_id = batch.id
    batch.job_count -= 1
    if batch.evaluated_at is not None:  # its evaluation counted this image: computed again without it
        batch.evaluation_due = True
    session.delete(job)
    session.flush()
    return removed


def remove_files(storage: LocalStorage, removed: Removed) -> None:
    """After the commit: the uploads and everything the workers wrote for these jobs."""
    for key in removed.image_keys:
        try:
            storage.delete(key)
        except StorageError as exc:
            log.warning("could not delete a stored upload (%s)", exc)
    for job_id in removed.job_ids:
        try:
            storage.delete_job_files(job_id)
        except OSError as exc:
            log.warning("could not delete the files of job %s (%s)", job_id, exc)


def expired_batches(session: Session, older_than_days: float, limit: int = 200) -> list[Batch]:
    """Batches past the retention limit whose jobs are all final (running ones are left to finish)."""
    cutoff = utcnow() - dt.timedelta(days=older_than_days)
    unfinished = exists().where(Job.batch_id == Batch.id, Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))
    return list(session.scalars(select(Batch).where(Batch.created_at < cutoff, ~unfinished)
                                .order_by(Batch.created_at).limit(limit)))
