"""Results of a job's image under another version than its batch's: shadow traffic and reruns.

The one place that changes a version result's status (queued → running → succeeded | failed), by
conditional UPDATEs as for jobs (shared/jobs/lifecycle.py), so a result is written once. Never shown as a
job's answer: the served result stays the batch's version's.
"""
from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Iterable

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from shared.db.models import Job, JobStatus, VersionResult, utcnow

QUEUED, RUNNING, SUCCEEDED, FAILED = (s.value for s in JobStatus)
SHADOW, RERUN = "shadow", "rerun"


def add_shadow(session: Session, job_ids: Iterable[uuid.UUID], version: str, share: float,
               rng: random.Random | None = None) -> dict[uuid.UUID, str]:
    """A share of these (default-traffic) jobs also runs on ``version``; returns {result id: version}."""
    rng = rng or random.Random()
    chosen = [job_id for job_id in job_ids if rng.random() < share]
    return _add(session, chosen, version, SHADOW)


def add_rerun(session: Session, job_ids: Iterable[uuid.UUID], version: str) -> dict[uuid.UUID, str]:
    """Every one of these jobs again under ``version`` (a job that already has a result of it is skipped)."""
    have = set(session.scalars(select(VersionResult.job_id).where(VersionResult.model_version == version)))
    return _add(session, [j for j in job_ids if j not in have], version, RERUN)


def rerun_batch(session: Session, batch, version: str) -> dict[uuid.UUID, str]:
    """The batch's analysed images again under ``version`` (a ready one; the caller checks), without a new
    upload; its evaluation is computed again once they are done (shared/truth/evaluate.py)."""
    job_ids = [job.id for job in batch.jobs if job.status == SUCCEEDED and job.model_version != version]
    added = add_rerun(session, job_ids, version)
    if added:
        batch.evaluation_due = True
    return added


def _add(session: Session, job_ids: list[uuid.UUID], version: str, kind: str) -> dict[uuid.UUID, str]:
    now = utcnow()
    rows = [VersionResult(id=uuid.uuid4(), job_id=job_id, model_version=version, kind=kind, status=QUEUED,
                          attempts=0, created_at=now) for job_id in job_ids]
    session.add_all(rows)
    session.flush()
    return {row.id: version for row in rows}


def with_maps(session: Session, job_id: uuid.UUID) -> list[VersionResult]:
    """The job's succeeded results under other versions that kept their maps (the viewer's side by side)."""
    return list(session.scalars(select(VersionResult).where(
        VersionResult.job_id == job_id, VersionResult.status == SUCCEEDED, VersionResult.maps.is_not(None))
        .order_by(VersionResult.finished_at.desc(), VersionResult.model_version)))


def one_with_maps(session: Session, job_id: uuid.UUID, version: str) -> VersionResult | None:
    return session.scalars(select(VersionResult).where(
        VersionResult.job_id == job_id, VersionResult.model_version == version, VersionResult.status == SUCCEEDED,
        VersionResult.maps.is_not(None))).first()


def mark_dispatched(session: Session, ids: Iterable[uuid.UUID]) -> None:
    ids = list(ids)
    if ids:
        session.execute(update(VersionResult).where(VersionResult.id.in_(ids), VersionResult.status == QUEUED)
                        .values(dispatched_at=utcnow()))


def claim(session: Session, result_id: uuid.UUID, worker: str, lease_seconds: float) -> VersionResult | None:
    now = utcnow()
    done = session.execute(update(VersionResult).where(VersionResult.id == result_id, VersionResult.status == QUEUED)
                           .values(status=RUNNING, worker=worker, attempts=VersionResult.attempts + 1,
                                   lease_expires_at=now + dt.timedelta(seconds=lease_seconds)))
    if done.rowcount != 1:
        return None
    return session.scalars(select(VersionResult).where(VersionResult.id == result_id)
                           .execution_options(populate_existing=True)).one()


def image_of(session: Session, result: VersionResult) -> tuple[str | None, uuid.UUID]:
    """The stored image of the result's job, and its batch."""
    return session.execute(select(Job.image_key, Job.batch_id).where(Job.id == result.job_id)).one()


def succeed(session: Session, result_id: uuid.UUID, worker: str, probabilities: dict[str, float], maps: bytes,
            runtime: str) -> bool:
    done = session.execute(update(VersionResult).where(VersionResult.id == result_id, VersionResult.status == RUNNING,
                                                       VersionResult.worker == worker)
                           .values(status=SUCCEEDED, probabilities=probabilities, maps=maps, runtime=runtime,
                                   error=None, lease_expires_at=None, finished_at=utcnow()))
    return done.rowcount == 1


def fail(session: Session, result_id: uuid.UUID, worker: str | None, message: str) -> bool:
    condition = [VersionResult.id == result_id, VersionResult.status.in_([QUEUED, RUNNING])]
    if worker is not None:
        condition.append(VersionResult.worker == worker)
    done = session.execute(update(VersionResult).where(*condition).values(
        status=FAILED, error=message[:2000], lease_expires_at=None, finished_at=utcnow()))
    return done.rowcount == 1


def recover(session: Session, relay_after: float, max_attempts: int, limit: int = 500) -> dict[uuid.UUID, str]:
    """Leases that ran out go back to queued (failed after max_attempts); returns {id: version} of the queued
    results to send (again): never sent, or sent relay_after seconds ago and still queued."""
    now = utcnow()
    expired = [VersionResult.status == RUNNING, VersionResult.lease_expires_at < now]
    session.execute(update(VersionResult).where(*expired, VersionResult.attempts >= max_attempts).values(
        status=FAILED, finished_at=now, lease_expires_at=None,
        error=f"the worker running it stopped or hung {max_attempts} time(s); giving up"))
    session.execute(update(VersionResult).where(*expired).values(status=QUEUED, worker=None, lease_expires_at=None,
                                                                 dispatched_at=None))
    due = select(VersionResult.id, VersionResult.model_version).where(
        VersionResult.status == QUEUED,
        or_(VersionResult.dispatched_at.is_(None),
            VersionResult.dispatched_at < now - dt.timedelta(seconds=relay_after))).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    picked = dict(session.execute(due).all())
    mark_dispatched(session, picked)
    return picked
