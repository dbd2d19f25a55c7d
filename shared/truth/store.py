"""Writing ground truth and readers' labels, and who may read a batch. Every change marks the batch's
evaluation as due; the worker or the recovery loop computes it (shared/truth/evaluate.py)."""
from __future__ import annotations

import hashlib
import hmac
import uuid

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from shared.db.models import Batch, BatchReader, Job, ReaderLabel, TruthLabel, utcnow
from shared.model.labels import LABELS, NO_FINDING
from shared.truth.labelfile import TruthRow

ANSWERS = ("present", "absent", "unsure")
SHOWN_UNMATCHED = 20  # names in a report (never stored)


def patient_key(secret: bytes, patient_id: str) -> str:
    """A patient's key: HMAC-SHA256 of the label file's Patient ID with the service's secret, so images of
    one patient stay together in the bootstrap while the ID itself is never stored."""
    return hmac.new(secret, patient_id.encode(), hashlib.sha256).hexdigest()[:32]


def attach_truth(session: Session, batch: Batch, rows: list[TruthRow], secret: bytes) -> dict:
    """Replace the batch's truth with the file's rows, matched to its images by file name. Returns the
    report: how many matched, and which rows and images did not (names in the answer only, not stored)."""
    by_name: dict[str, list[Job]] = {}
    for job in batch.jobs:
        by_name.setdefault(job.original_filename, []).append(job)
    session.execute(delete(TruthLabel).where(TruthLabel.batch_id == batch.id))
    matched, unmatched_rows = set(), []
    for row in rows:
        jobs = by_name.get(row.image_index)
        if not jobs:
            unmatched_rows.append(row.image_index)
            continue
        for job in jobs:
            matched.add(job.id)
            session.add(TruthLabel(job_id=job.id, batch_id=batch.id, labels=list(row.labels),
                                   patient_key=patient_key(secret, row.patient_id) if row.patient_id else None,
                                   age=row.age, sex=row.sex, view=row.view))
    unmatched_images = [job.original_filename for job in batch.jobs if job.id not in matched]
    counts = {label: 0 for label in LABELS}
    for row in rows:
        if row.image_index in by_name:
            for label in row.labels:
                counts[label] += len(by_name[row.image_index])
    summary = {"images_labelled": len(matched), "rows": len(rows), "unmatched_rows": len(unmatched_rows),
               "unmatched_images": len(unmatched_images), "positives": counts,
               "has_sex": any(r.sex for r in rows), "has_age": any(r.age is not None for r in rows),
               "has_view": any(r.view for r in rows), "attached_at": utcnow().isoformat()}
    batch.truth_summary = summary if matched else None
    batch.evaluation_due = True
    return {**summary, "unmatched_row_names": unmatched_rows[:SHOWN_UNMATCHED],
            "unmatched_image_names": unmatched_images[:SHOWN_UNMATCHED]}


def remove_truth(session: Session, batch: Batch) -> int:
    removed = session.execute(delete(TruthLabel).where(TruthLabel.batch_id == batch.id)).rowcount
    batch.truth_summary = None
    batch.evaluation_due = True
    return removed


def set_reader_labels(session: Session, job: Job, reader_id: uuid.UUID, answers: dict[str, str], blind: bool,
                      model_version: str | None) -> list[ReaderLabel]:
    """Record (or change) a reader's answers for some findings of one image. ``model_missed`` is set where the
    reader says present and the model's result said no. Raises ValueError on an unknown finding or answer."""
    for label, answer in answers.items():
        if label not in LABELS:
            raise ValueError(f"unknown finding {label[:50]!r}; known: {', '.join(LABELS)}")
        if answer not in ANSWERS:
            raise ValueError(f"the answer for {label} must be one of {', '.join(ANSWERS)}, got {str(answer)[:20]!r}")
    positive = {f.label: f.positive for f in job.findings}
    existing = {r.label: r for r in session.scalars(select(ReaderLabel).where(
        ReaderLabel.job_id == job.id, ReaderLabel.reader_id == reader_id))}
    now = utcnow()
    for label, answer in answers.items():
        row = existing.get(label) or ReaderLabel(job_id=job.id, batch_id=job.batch_id, reader_id=reader_id, label=label)
        row.answer, row.blind, row.model_version, row.at = answer, blind, model_version, now
        row.model_missed = answer == "present" and label != NO_FINDING and label in positive and not positive[label]
        if label not in existing:
            session.add(row)
            existing[label] = row
    job.batch.evaluation_due = True
    return list(existing.values())


def reader_labels(session: Session, job_ids: list[uuid.UUID] | None = None, batch_id: uuid.UUID | None = None,
                  reader_id: uuid.UUID | None = None) -> list[ReaderLabel]:
    query = select(ReaderLabel).order_by(ReaderLabel.job_id, ReaderLabel.reader_id, ReaderLabel.label)
    if batch_id is not None:
        query = query.where(ReaderLabel.batch_id == batch_id)
    if job_ids is not None:
        query = query.where(ReaderLabel.job_id.in_(job_ids))
    if reader_id is not None:
        query = query.where(ReaderLabel.reader_id == reader_id)
    return list(session.scalars(query))


def grant(session: Session, batch: Batch, user_id: uuid.UUID, granted_by: uuid.UUID | None) -> bool:
    """A reader role on the batch; False if the user had it already."""
    if session.get(BatchReader, (batch.id, user_id)) is not None:
        return False
    session.add(BatchReader(batch_id=batch.id, user_id=user_id, granted_by=granted_by, granted_at=utcnow()))
    return True


def revoke(session: Session, batch: Batch, user_id: uuid.UUID) -> bool:
    return bool(session.execute(delete(BatchReader).where(BatchReader.batch_id == batch.id,
                                                          BatchReader.user_id == user_id)).rowcount)


def readers(session: Session, batch_id: uuid.UUID) -> list[BatchReader]:
    return list(session.scalars(select(BatchReader).where(BatchReader.batch_id == batch_id)))
