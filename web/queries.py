"""Reads of batches and jobs. Every one goes through a Viewer: members see their own, admins all (the web
audits an admin's look at someone else's). Another owner's id finds nothing, exactly like a missing id."""
from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from shared.auth.accounts import Viewer
from shared.db.models import Batch, BatchReader, Finding, Job, JobStatus, ModelAlias, ModelVersion

MAX_PAGE = 1_000_000  # beyond any real history; keeps OFFSET arithmetic in range


def _visible(query, viewer: Viewer):
    return query if viewer.is_admin else query.where(Batch.owner_id == viewer.user_id)


def _readable(query, viewer: Viewer):
    """Owner, admin, or a reader the batch was granted to (shared/truth/store.grant): read and label only."""
    if viewer.is_admin:
        return query
    granted = select(BatchReader.batch_id).where(BatchReader.user_id == viewer.user_id)
    return query.where(or_(Batch.owner_id == viewer.user_id, Batch.id.in_(granted)))


def get_batch(session: Session, viewer: Viewer, batch_id: uuid.UUID, readers: bool = False) -> Batch | None:
    """readers: also a batch the viewer was granted as a reader (for reading and labelling only)."""
    return session.scalars(
        (_readable if readers else _visible)(select(Batch).where(Batch.id == batch_id), viewer)
        .options(selectinload(Batch.jobs).selectinload(Job.findings), selectinload(Batch.jobs).selectinload(Job.model))
    ).one_or_none()


def get_job(session: Session, viewer: Viewer, job_id: uuid.UUID, readers: bool = False) -> Job | None:
    return session.scalars(
        (_readable if readers else _visible)(select(Job).join(Batch).where(Job.id == job_id), viewer)
        .options(selectinload(Job.findings), selectinload(Job.model), selectinload(Job.batch))
    ).one_or_none()


@dataclasses.dataclass(frozen=True)
class HistoryFilter:
    """What the history is narrowed to: a text in the batch's name or a file name, a finding above its
    threshold in some image, and a date range (UTC, inclusive)."""

    text: str = ""
    finding: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def conditions(self) -> list:
        found = []
        if self.text:
            pattern = "%" + self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            named = select(Job.id).where(Job.batch_id == Batch.id, Job.original_filename.ilike(pattern, escape="\\"))
            found.append(or_(Batch.name.ilike(pattern, escape="\\"), exists(named)))
        if self.finding:
            found.append(exists(select(Finding.id).join(Job).where(Job.batch_id == Batch.id, Finding.label == self.finding,
                                                                    Finding.positive.is_(True))))
        if self.date_from:
            found.append(Batch.created_at >= dt.datetime.combine(self.date_from, dt.time(), dt.timezone.utc))
        if self.date_to:
            found.append(Batch.created_at < dt.datetime.combine(self.date_to + dt.timedelta(days=1), dt.time(), dt.timezone.utc))
        return found


def list_batches(session: Session, viewer: Viewer, page: int, per_page: int,
                 narrowed: HistoryFilter = HistoryFilter()) -> tuple[list[Batch], int]:
    """One page of the viewer's batches (an admin's own, not everyone's), newest first, and the total."""
    where = [Batch.owner_id == viewer.user_id, *narrowed.conditions()]
    total = session.scalar(select(func.count()).select_from(Batch).where(*where)) or 0
    page = min(max(1, page), MAX_PAGE)
    batches = session.scalars(
        select(Batch).where(*where).order_by(Batch.created_at.desc(), Batch.id).offset((page - 1) * per_page).limit(per_page)
    ).all()
    return list(batches), total


def first_jobs(session: Session, batch_ids: list[uuid.UUID]) -> dict[uuid.UUID, Job]:
    """Each batch's first image (position 0), with its findings: the history shows its name and thumbnail."""
    if not batch_ids:
        return {}
    jobs = session.scalars(select(Job).where(Job.batch_id.in_(batch_ids), Job.position == 0)
                           .options(selectinload(Job.findings)))
    return {job.batch_id: job for job in jobs}


def neighbours(session: Session, job: Job) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """The previous and next image of the job's batch, for the viewer's previous/next."""
    before = session.scalar(select(Job.id).where(Job.batch_id == job.batch_id, Job.position < job.position)
                            .order_by(Job.position.desc()).limit(1))
    after = session.scalar(select(Job.id).where(Job.batch_id == job.batch_id, Job.position > job.position)
                           .order_by(Job.position).limit(1))
    return before, after


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


def owner_usage(session: Session, owner_id: uuid.UUID) -> tuple[int, int]:
    """(jobs waiting or running, bytes stored) of one owner: what the quotas limit."""
    waiting = session.scalar(select(func.count()).select_from(Job).join(Batch)
                             .where(Batch.owner_id == owner_id, Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value])))
    stored = session.scalar(select(func.coalesce(func.sum(Job.stored_bytes), 0)).select_from(Job).join(Batch)
                            .where(Batch.owner_id == owner_id))
    return int(waiting or 0), int(stored or 0)


def current_model(session: Session) -> ModelVersion | None:
    """What a new upload that names no model is analysed with: the registry's 'default' alias, else the model
    a worker registered most recently (its own folder)."""
    default = session.get(ModelAlias, "default")
    if default is not None:
        return session.get(ModelVersion, default.version)
    return session.scalars(select(ModelVersion).where(ModelVersion.folder_sha256.is_(None))
                           .order_by(ModelVersion.last_seen_at.desc()).limit(1)).one_or_none()
