"""A batch's evaluation: its results against its truth file, one evaluation per model version that ran on
it, and the readers against the truth and against each other (Cohen's κ per finding). Computed where the
batch's last job finishes (worker/pipeline.py) or by the recovery loop for anything left due, never in a
web request; stored in batch_evaluations and read by the pages and the API.

The figures come from shared.stats.evaluation, the same code ``xray-model evaluate`` runs, so a batch
scored here and its CSV export scored by the CLI agree."""
from __future__ import annotations

import itertools
import math
import logging
import time
import uuid

import numpy as np
from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session, selectinload

from shared.db.engine import Database
from shared.db.models import Batch, BatchEvaluation, Job, JobStatus, ReaderLabel, TruthLabel, User, utcnow
from shared.model.labels import LABELS
from shared.stats.agreement import cohen_kappa
from shared.stats.evaluation import age_band, evaluate_labelled

log = logging.getLogger(__name__)
READERS = "readers"  # the batch_evaluations row of the readers' agreement
ROUNDS = 1000
SEED = 0


def _unfinished(batch_id):
    return exists(select(Job.id).where(Job.batch_id == batch_id,
                                       Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value])))


def due_batches(session: Session, batch_ids: list[uuid.UUID] | None = None, limit: int = 20) -> list[uuid.UUID]:
    """Batches whose labels changed since their evaluation and whose jobs are all final."""
    query = select(Batch.id).where(Batch.evaluation_due.is_(True), ~_unfinished(Batch.id))
    if batch_ids is not None:
        query = query.where(Batch.id.in_(batch_ids))
    return list(session.scalars(query.order_by(Batch.created_at).limit(limit)))


def _jsonable(value):
    """Plain JSON types, NaN and infinities as null: stored JSON must be JSON (Postgres refuses NaN)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _version_figures(jobs: list[Job], truth: dict[uuid.UUID, TruthLabel]) -> dict | None:
    scored = [job for job in jobs if job.id in truth and len(job.findings) == len(LABELS)]
    if not scored:
        return None
    y = np.array([[label in truth[job.id].labels for label in LABELS] for job in scored])
    by_label = [{f.label: f for f in job.findings} for job in scored]
    # As every export writes them (6 decimals), so the figures are those of the predictions a user downloads
    # and scores with `xray-model evaluate` (near-equal scores of an untrained model would tie there, not here).
    probabilities = np.array([[round(found[label].probability, 6) for label in LABELS] for found in by_label])
    thresholds = {label: by_label[0][label].threshold for label in LABELS}
    groups = np.array([truth[job.id].patient_key or f"image:{job.id}" for job in scored])
    subgroups = {"sex": [truth[job.id].sex for job in scored],
                 "age_band": [age_band(truth[job.id].age) for job in scored],
                 "view": [truth[job.id].view or job.view_position for job in scored]}
    figures = evaluate_labelled(y, probabilities, thresholds, groups, subgroups=subgroups, rounds=ROUNDS, seed=SEED)
    figures["model_name"] = scored[0].model.name if scored[0].model else None
    figures["unlabelled_images"] = len([job for job in jobs if job.id not in truth])
    return figures


def _as_bool(answer: str) -> bool | None:
    return {"present": True, "absent": False}.get(answer)


def _reader_figures(session: Session, batch: Batch, truth: dict[uuid.UUID, TruthLabel]) -> dict | None:
    labels = list(session.scalars(select(ReaderLabel).where(ReaderLabel.batch_id == batch.id)))
    if not labels:
        return None
    names = {u.id: u.username for u in session.scalars(select(User).where(
        User.id.in_({r.reader_id for r in labels})))}
    answers: dict[uuid.UUID, dict[tuple, bool | None]] = {}
    for row in labels:
        answers.setdefault(row.reader_id, {})[(row.job_id, row.label)] = _as_bool(row.answer)
    job_ids = [job.id for job in batch.jobs]
    readers = sorted(answers, key=lambda r: names.get(r, ""))
    out = {"readers": [{"reader": names.get(r, "?"), "images": len({k[0] for k in answers[r]}),
                        "answers": len(answers[r]),
                        "model_missed": sum(1 for row in labels if row.reader_id == r and row.model_missed)}
                       for r in readers],
           "between_readers": [], "against_truth": []}
    for first, second in itertools.combinations(readers, 2):
        per_label = {label: cohen_kappa([answers[first].get((j, label)) for j in job_ids],
                                        [answers[second].get((j, label)) for j in job_ids]) for label in LABELS}
        out["between_readers"].append({"readers": [names.get(first), names.get(second)], "per_label": per_label})
    if truth:
        for reader in readers:
            per_label = {label: cohen_kappa([answers[reader].get((j, label)) for j in job_ids],
                                            [(label in truth[j].labels) if j in truth else None for j in job_ids])
                         for label in LABELS}
            out["against_truth"].append({"reader": names.get(reader), "per_label": per_label})
    return out


def evaluate_batch(session: Session, batch_id: uuid.UUID) -> dict[str, dict]:
    """Compute and store the batch's evaluations (one per model version, and the readers'); returns them."""
    batch = session.scalars(select(Batch).where(Batch.id == batch_id).options(
        selectinload(Batch.jobs).selectinload(Job.findings), selectinload(Batch.jobs).selectinload(Job.model))).one()
    started = time.perf_counter()
    truth = {t.job_id: t for t in session.scalars(select(TruthLabel).where(TruthLabel.batch_id == batch_id))}
    by_version: dict[str, list[Job]] = {}
    for job in batch.jobs:
        if job.status == JobStatus.SUCCEEDED.value and job.model_version:
            by_version.setdefault(job.model_version, []).append(job)
    results = {}
    if truth:
        for version, jobs in by_version.items():
            figures = _version_figures(jobs, truth)
            if figures is not None:
                results[version] = figures
    reader_figures = _reader_figures(session, batch, truth)
    if reader_figures is not None:
        results[READERS] = reader_figures
    session.execute(delete(BatchEvaluation).where(BatchEvaluation.batch_id == batch_id))
    now, seconds = utcnow(), time.perf_counter() - started
    for version, figures in results.items():
        session.add(BatchEvaluation(batch_id=batch_id, model_version=version, figures=_jsonable(figures),
                                    computed_at=now, seconds=seconds))
    batch.evaluated_at, batch.evaluation_due = now, False
    return results


def evaluate_due(db: Database, batch_ids: list[uuid.UUID] | None = None) -> list[uuid.UUID]:
    """Evaluate every due batch (of ``batch_ids``, or any), each in its own transaction. The batch row is
    locked (SKIP LOCKED): two workers finishing a batch's last images together compute it once."""
    done = []
    with db.session() as session:
        due = due_batches(session, batch_ids)
    for batch_id in due:
        with db.session() as session:
            locked = session.scalars(select(Batch.id).where(Batch.id == batch_id, Batch.evaluation_due.is_(True))
                                     .with_for_update(skip_locked=True)).one_or_none()
            if locked is None:
                continue
            started = time.perf_counter()
            evaluate_batch(session, batch_id)
        log.info("evaluated batch in %.2f s", time.perf_counter() - started, extra={"batch_id": str(batch_id)})
        done.append(batch_id)
    return done


def stored(session: Session, batch_id: uuid.UUID) -> dict[str, BatchEvaluation]:
    return {row.model_version: row for row in session.scalars(
        select(BatchEvaluation).where(BatchEvaluation.batch_id == batch_id).order_by(BatchEvaluation.computed_at))}
