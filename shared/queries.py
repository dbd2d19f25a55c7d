"""Reads of batches and jobs. Every one goes through the owner, so adding real accounts changes no query."""
from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from shared.models import Batch, Job, ModelVersion


def get_batch(session: Session, owner: str, batch_id: uuid.UUID) -> Batch | None:
    return session.scalars(
        select(Batch)
        .where(Batch.id == batch_id, Batch.owner == owner)
        .options(selectinload(Batch.jobs).selectinload(Job.findings), selectinload(Batch.jobs).selectinload(Job.model))
    ).one_or_none()


def get_job(session: Session, owner: str, job_id: uuid.UUID) -> Job | None:
    return session.scalars(
        select(Job)
        .join(Batch)
        .where(Job.id == job_id, Batch.owner == owner)
        .options(selectinload(Job.findings), selectinload(Job.model))
    ).one_or_none()


def list_batches(session: Session, owner: str, page: int, per_page: int) -> tuple[list[Batch], int]:
    """One page of the owner's batches, newest first, and the total count."""
    total = session.scalar(select(func.count()).select_from(Batch).where(Batch.owner == owner)) or 0
    batches = session.scalars(
        select(Batch)
        .where(Batch.owner == owner)
        .order_by(Batch.created_at.desc(), Batch.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return list(batches), total


def status_counts(session: Session, batch_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
    """Per batch, how many jobs are in each status (one query for a whole page of history)."""
    counts: dict[uuid.UUID, dict[str, int]] = {batch_id: {} for batch_id in batch_ids}
    if batch_ids:
        rows = session.execute(
            select(Job.batch_id, Job.status, func.count()).where(Job.batch_id.in_(batch_ids)).group_by(Job.batch_id, Job.status)
        )
        for batch_id, status, count in rows:
            counts[batch_id][status] = count
    return counts


def current_model(session: Session) -> ModelVersion | None:
    """The model a worker registered most recently: what new uploads will most likely be analysed with."""
    return session.scalars(select(ModelVersion).order_by(ModelVersion.last_seen_at.desc()).limit(1)).one_or_none()
