"""One page of a batch's images for the batch page, narrowed and sorted in the database: a batch of
thousands renders one page of rows, not all of them (the rows' filters used to run in the browser over
every row). Owner checks happen before (web/owned.py); this reads one batch's jobs."""
from __future__ import annotations

import dataclasses
import uuid

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, selectinload

from shared.db.models import Batch, Finding, Job, JobStatus
from web.queries import MAX_PAGE, _visible

SORTS = ("position", "top", "status")
STATUS_ORDER = {JobStatus.FAILED.value: 0, JobStatus.SUCCEEDED.value: 1, JobStatus.RUNNING.value: 2, JobStatus.QUEUED.value: 3}


@dataclasses.dataclass(frozen=True)
class RowFilter:
    """A text in the file name, a status, a finding above its threshold, the least top probability (0..1)."""

    text: str = ""
    status: str = ""
    finding: str = ""
    minimum: float = 0.0
    sort: str = "position"


def _top():
    """Each job's highest probability among its findings above threshold (0 when none)."""
    return (select(func.coalesce(func.max(Finding.probability), 0.0))
            .where(Finding.job_id == Job.id, Finding.positive.is_(True)).scalar_subquery())


def head(session: Session, viewer, batch_id: uuid.UUID) -> Batch | None:
    """The batch without its jobs (a batch of thousands loads one page of them, below)."""
    return session.scalars(_visible(select(Batch).where(Batch.id == batch_id), viewer)).one_or_none()


def page_of_jobs(session: Session, batch_id: uuid.UUID, narrowed: RowFilter, page: int,
                 per_page: int) -> tuple[list[Job], int]:
    """The page's jobs (with findings and model) and how many match in all."""
    where = [Job.batch_id == batch_id]
    if narrowed.text:
        pattern = "%" + narrowed.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(Job.original_filename.ilike(pattern, escape="\\"))
    if narrowed.status:
        where.append(Job.status == narrowed.status)
    if narrowed.finding:
        where.append(select(Finding.id).where(Finding.job_id == Job.id, Finding.label == narrowed.finding,
                                              Finding.positive.is_(True)).exists())
    top = _top()
    if narrowed.minimum > 0:
        where.append(top >= narrowed.minimum)
    total = session.scalar(select(func.count()).select_from(Job).where(*where)) or 0
    order = {"position": [Job.position], "top": [top.desc(), Job.position],
             "status": [case(STATUS_ORDER, value=Job.status, else_=9), Job.position]}[narrowed.sort]
    page = min(max(1, page), MAX_PAGE, max(1, -(-total // per_page)))  # past the end: the last page
    jobs = session.scalars(select(Job).where(*where).order_by(*order).offset((page - 1) * per_page).limit(per_page)
                           .options(selectinload(Job.findings), selectinload(Job.model))).all()
    return list(jobs), total


def cursor(session: Session, batch_id: uuid.UUID):
    return session.scalar(select(func.max(Job.updated_at)).where(Job.batch_id == batch_id))


IMAGES_FOUND = 50  # images a history search lists (newest first); the batches below it page on


def matching_images(session: Session, owner_id: uuid.UUID, text: str, finding: str, since=None, before=None) -> list[Job]:
    """The owner's images whose file name holds ``text`` and/or with ``finding`` above threshold, newest first:
    a history search answers the images, not only the batches that hold them."""
    where = [Batch.owner_id == owner_id]
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(Job.original_filename.ilike(pattern, escape="\\"))
    if finding:
        where.append(select(Finding.id).where(Finding.job_id == Job.id, Finding.label == finding,
                                              Finding.positive.is_(True)).exists())
    if since is not None:
        where.append(Job.created_at >= since)
    if before is not None:
        where.append(Job.created_at < before)
    return list(session.scalars(select(Job).join(Batch).where(*where).order_by(Job.created_at.desc(), Job.position)
                                .limit(IMAGES_FOUND).options(selectinload(Job.findings), selectinload(Job.model))).all())
