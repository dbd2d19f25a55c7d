"""The one place that changes a job's status.

    queued ──claim──▶ running ──succeed──▶ succeeded
      ▲  │               │  │
      │  └─────fail──────┼──┴──────fail──▶ failed
      └──return_expired──┘   (lease ran out: the worker died or hung; failed after max attempts)
    queued ──cancel──▶ failed (the owner cancelled its batch; running jobs finish)
    failed ──retry───▶ queued (the owner asked again; its stored image is kept, so nothing is lost)

Every change is a conditional UPDATE (``WHERE status = ...``), so two workers that receive the same
job id cannot both claim it, and a worker that lost its claim cannot write a result.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Iterable, Sequence

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from shared.db.models import Batch, Finding, Job, JobStatus, as_utc, utcnow


class InvalidTransition(Exception):
    """The job is not in a state that allows the requested change."""


@dataclasses.dataclass(frozen=True)
class NewJob:
    """An upload as the web recorded it. ``error`` set means it was rejected at upload and never runs."""

    original_filename: str
    content_sha256: str
    size_bytes: int
    image_key: str | None = None
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    error: str | None = None
    stored_bytes: int = 0
    view_position: str | None = None  # DICOM only
    pixel_spacing_mm: float | None = None


@dataclasses.dataclass(frozen=True)
class FindingResult:
    label: str
    probability: float
    threshold: float
    positive: bool
    overlay_key: str | None = None


@dataclasses.dataclass(frozen=True)
class Timings:
    decode_ms: float
    inference_ms: float
    overlay_ms: float | None = None  # workers drew overlays before maps were stored as data


def create_batch(session: Session, owner_id: uuid.UUID, uploads: Sequence[NewJob], name: str | None = None,
                 model_version: str | None = None, model_ref: str | None = None) -> Batch:
    """Record a batch and its jobs; jobs rejected at upload are failed at once, the rest queued.
    ``model_version``: the version resolved for it now (None: the workers' own folder)."""
    if not uploads:
        raise ValueError("a batch needs at least one file")
    now = utcnow()
    batch = Batch(owner_id=owner_id, job_count=len(uploads), created_at=now, name=name, model_version=model_version,
                  model_ref=model_ref)
    for position, upload in enumerate(uploads):
        rejected = upload.error is not None
        batch.jobs.append(
            Job(
                position=position,
                image_key=upload.image_key,
                original_filename=upload.original_filename[:300],
                content_sha256=upload.content_sha256,
                content_type=upload.content_type,
                size_bytes=upload.size_bytes,
                stored_bytes=upload.stored_bytes,
                width=upload.width,
                height=upload.height,
                view_position=upload.view_position,
                pixel_spacing_mm=upload.pixel_spacing_mm,
                status=(JobStatus.FAILED if rejected else JobStatus.QUEUED).value,
                error=upload.error,
                attempts=0,
                created_at=now,
                updated_at=now,
                finished_at=now if rejected else None,
            )
        )
    session.add(batch)
    session.flush()
    return batch


def mark_dispatched(session: Session, job_ids: Iterable[uuid.UUID]) -> None:
    ids = list(job_ids)
    if ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(ids), Job.status == JobStatus.QUEUED.value)
            .values(dispatched_at=utcnow(), dispatch_count=Job.dispatch_count + 1)
        )


def mark_undispatched(session: Session, job_ids: Iterable[uuid.UUID]) -> None:
    """The broker refused these: make them due again at once."""
    ids = list(job_ids)
    if ids:
        session.execute(
            update(Job).where(Job.id.in_(ids), Job.status == JobStatus.QUEUED.value)
            .values(dispatched_at=None, dispatch_count=Job.dispatch_count - 1)
        )


def versions_of(session: Session, job_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str | None]:
    """Each job's resolved version (its batch's), to route it to its version's queue."""
    if not job_ids:
        return {}
    return dict(session.execute(select(Job.id, Batch.model_version).join(Batch, Batch.id == Job.batch_id)
                                .where(Job.id.in_(list(job_ids)))).all())


def take_due_for_dispatch(session: Session, relay_after: float, limit: int = 500) -> list[uuid.UUID]:
    """Queued jobs that need (re)sending, marked as sent in this transaction.

    Never sent (the broker was down at upload): due at once. Sent n times and still queued (the broker
    lost it, or the queue is long): due relay_after × 2^(n-1) seconds after the last send, so a long
    queue is not flooded with copies. Rows are locked with SKIP LOCKED on Postgres, so several relays
    running at once never pick the same job.
    """
    now = utcnow()
    candidates = select(Job.id, Job.dispatched_at, Job.dispatch_count).where(
        Job.status == JobStatus.QUEUED.value,
        or_(Job.dispatched_at.is_(None), Job.dispatched_at < now - dt.timedelta(seconds=relay_after)),
    ).order_by(Job.created_at, Job.position).limit(limit * 4)
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    due = []
    for job_id, dispatched_at, count in session.execute(candidates):
        if dispatched_at is not None:
            dispatched_at = as_utc(dispatched_at)
            wait = relay_after * 2 ** min(max(count - 1, 0), 10)
            if dispatched_at > now - dt.timedelta(seconds=wait):
                continue
        due.append(job_id)
        if len(due) == limit:
            break
    mark_dispatched(session, due)
    return due


def return_expired(session: Session, max_attempts: int) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Running jobs whose lease ran out: back to queued, or failed once they used all their attempts.

    Returns (requeued ids, failed ids). Conditional updates: several reapers at once do no double work.
    """
    now = utcnow()
    expired = [Job.status == JobStatus.RUNNING.value, Job.lease_expires_at < now]
    failed = session.scalars(
        update(Job).where(*expired, Job.attempts >= max_attempts)
        .values(status=JobStatus.FAILED.value, finished_at=now, lease_expires_at=None, updated_at=now,
                error=f"the worker analysing this image stopped or hung {max_attempts} time(s) "
                      f"(crash, time limit or lost machine); giving up")
        .returning(Job.id)
    ).all()
    requeued = session.scalars(
        update(Job).where(*expired, Job.attempts < max_attempts)
        .values(status=JobStatus.QUEUED.value, worker=None, lease_expires_at=None, dispatched_at=None,
                dispatch_count=0, updated_at=now)
        .returning(Job.id)
    ).all()
    return list(requeued), list(failed)


def exists(session: Session, job_id: uuid.UUID) -> bool:
    return session.get(Job, job_id) is not None


def claim(session: Session, job_id: uuid.UUID, worker: str, lease_seconds: float) -> Job | None:
    """queued → running for this worker, or None when the job is gone or someone else has it."""
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED.value)
        .values(
            status=JobStatus.RUNNING.value,
            worker=worker,
            attempts=Job.attempts + 1,
            started_at=now,
            updated_at=now,
            lease_expires_at=now + dt.timedelta(seconds=lease_seconds),
        )
    )
    if result.rowcount != 1:
        return None
    return session.scalars(select(Job).where(Job.id == job_id).execution_options(populate_existing=True)).one()


def version_of(session: Session, job_id: uuid.UUID) -> tuple[bool, str | None]:
    """(the job exists, the model version its batch resolved at submit: None for the workers' own folder)."""
    row = session.execute(select(Batch.model_version).join(Job, Job.batch_id == Batch.id)
                          .where(Job.id == job_id)).one_or_none()
    return (row is not None, row[0] if row is not None else None)


_ANY = object()


def claim_more(session: Session, worker: str, lease_seconds: float, limit: int, version=_ANY) -> list[Job]:
    """Up to ``limit`` more queued jobs, claimed for this worker in one statement, fairly across owners.

    Round robin: every owner's oldest queued job first, then every owner's second, and so on, so one
    owner's backlog of thousands delays another owner's single image by about one forward batch.
    Only first attempts are taken: a job that is being retried (its worker crashed or hung) runs alone,
    so an image that crashes its worker never takes the images beside it down with it. With ``version``, only
    jobs whose batch resolved that version (None: none) are taken: one forward pass, one model.
    """
    if limit <= 0:
        return []
    now = utcnow()
    turn = func.row_number().over(partition_by=Batch.owner_id, order_by=(Job.created_at, Job.position)).label("turn")
    ranked = (select(Job.id, turn).join(Batch, Batch.id == Job.batch_id)
              .where(Job.status == JobStatus.QUEUED.value, Job.attempts == 0))
    if version is not _ANY:
        ranked = ranked.where(Batch.model_version.is_(None) if version is None else Batch.model_version == version)
    ranked = ranked.subquery()
    candidates = (select(Job.id).join(ranked, ranked.c.id == Job.id)
                  .order_by(ranked.c.turn, Job.created_at, Job.position).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        # Rows another worker is claiming right now are skipped (and the next ones taken), not waited for.
        candidates = candidates.with_for_update(skip_locked=True, of=Job)
    picked = session.scalars(candidates).all()
    if not picked:
        return []
    claimed = session.scalars(
        update(Job)
        .where(Job.id.in_(picked), Job.status == JobStatus.QUEUED.value)
        .values(status=JobStatus.RUNNING.value, worker=worker, attempts=Job.attempts + 1, started_at=now, updated_at=now,
                lease_expires_at=now + dt.timedelta(seconds=lease_seconds))
        .returning(Job.id)
    ).all()
    if not claimed:
        return []
    return list(session.scalars(select(Job).where(Job.id.in_(claimed)).order_by(Job.created_at, Job.position)
                                .execution_options(populate_existing=True)))


@dataclasses.dataclass(frozen=True)
class Result:
    """One job's result as its worker records it: ``maps`` are its class activation maps
    (shared/imaging/maps.py), ``input_check`` what the input gate said of the image (shared/model/gate.py)."""

    job_id: uuid.UUID
    findings: Sequence[FindingResult]
    timings: Timings
    maps: bytes | None = None
    input_check: dict | None = None


def succeed(
    session: Session,
    job_id: uuid.UUID,
    worker: str,
    model_version: str,
    findings: Sequence[FindingResult],
    timings: Timings,
    maps: bytes | None = None,
    runtime: str | None = None,
    input_check: dict | None = None,
) -> None:
    """running → succeeded with its findings, only while this worker still holds the claim. ``runtime`` names
    what computed it (worker/runtimes.py)."""
    if not succeed_many(session, worker, model_version, [Result(job_id, findings, timings, maps, input_check)], runtime):
        raise InvalidTransition(f"job {job_id} is not running on {worker}; its result was not recorded")


def succeed_many(session: Session, worker: str, model_version: str, results: Sequence[Result],
                 runtime: str | None = None) -> set[uuid.UUID]:
    """running → succeeded for each result whose job this worker still holds, in the caller's transaction, so a
    whole forward batch costs one commit; every recorded job's findings go in one INSERT. Returns the ids
    recorded: the others were reassigned or deleted meanwhile, and nothing of theirs is written."""
    now = utcnow()
    recorded = set()
    for result in results:
        updated = session.execute(
            update(Job)
            .where(Job.id == result.job_id, Job.status == JobStatus.RUNNING.value, Job.worker == worker)
            .values(status=JobStatus.SUCCEEDED.value, model_version=model_version, runtime=runtime, finished_at=now,
                    updated_at=now, maps=result.maps, input_check=result.input_check, lease_expires_at=None,
                    error=None, decode_ms=result.timings.decode_ms, inference_ms=result.timings.inference_ms,
                    overlay_ms=result.timings.overlay_ms)
            # No evaluation of the WHERE clause in Python for objects of this session: a Job loaded here shows the
            # new state once the transaction commits (every caller commits right after).
            .execution_options(synchronize_session=False)
        )
        if updated.rowcount == 1:
            recorded.add(result.job_id)
    rows = [{"job_id": result.job_id, "label": f.label, "probability": float(f.probability),
             "threshold": float(f.threshold), "positive": bool(f.positive), "overlay_key": f.overlay_key}
            for result in results if result.job_id in recorded for f in result.findings]
    if rows:
        session.execute(insert(Finding), rows)
    return recorded


def release(session: Session, job_id: uuid.UUID, worker: str) -> bool:
    """running → queued: the worker gives a job back unfinished (time limit hit, e.g. while it waited
    for the database). The attempt still counts. False if the worker no longer held it."""
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING.value, Job.worker == worker)
        .values(status=JobStatus.QUEUED.value, worker=None, lease_expires_at=None, dispatched_at=None, dispatch_count=0,
                updated_at=utcnow())
    )
    return result.rowcount == 1


def fail(session: Session, job_id: uuid.UUID, message: str, worker: str | None = None,
         input_check: dict | None = None) -> None:
    """queued or running → failed with a message the person who sent the image can read (and, when the
    input gate refused the image, its verdict).

    With ``worker`` given, only that worker's running claim may be failed.
    """
    condition = [Job.id == job_id]
    if worker is None:
        condition.append(Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))
    else:
        condition += [Job.status == JobStatus.RUNNING.value, Job.worker == worker]
    result = session.execute(
        update(Job).where(*condition).values(
            status=JobStatus.FAILED.value, error=message[:2000], finished_at=utcnow(), lease_expires_at=None,
            updated_at=utcnow(), **({"input_check": input_check} if input_check is not None else {}),
        )
    )
    if result.rowcount != 1:
        raise InvalidTransition(f"job {job_id} cannot fail from its current state")


CANCELLED = "cancelled by its owner before it ran: retry it to analyse it"


def cancel_queued(session: Session, batch_id: uuid.UUID) -> list[uuid.UUID]:
    """The batch's queued jobs → failed, saying they were cancelled; running ones finish as they would.
    A worker that receives a cancelled job's id finds it no longer queued and skips it (``claim``)."""
    now = utcnow()
    return list(session.scalars(
        update(Job).where(Job.batch_id == batch_id, Job.status == JobStatus.QUEUED.value)
        .values(status=JobStatus.FAILED.value, error=CANCELLED, finished_at=now, lease_expires_at=None,
                updated_at=now)
        .returning(Job.id)
    ).all())


def retry_failed(session: Session, job_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    """Failed jobs with a stored image → queued again (attempts and run times reset; received stays the
    upload's time); the caller dispatches them. Rejected uploads (no stored image) stay failed: there is nothing to analyse."""
    ids = list(job_ids)
    if not ids:
        return []
    queued = list(session.scalars(
        update(Job).where(Job.id.in_(ids), Job.status == JobStatus.FAILED.value, Job.image_key.is_not(None))
        .values(status=JobStatus.QUEUED.value, error=None, attempts=0, worker=None, lease_expires_at=None,
                started_at=None, finished_at=None, dispatched_at=None, dispatch_count=0, maps=None, input_check=None,
                updated_at=utcnow())
        .returning(Job.id)
    ).all())
    if queued:  # a failed job has no findings; should one have any, the new analysis replaces them
        session.execute(delete(Finding).where(Finding.job_id.in_(queued)))
    return queued
