"""A batch's evaluation: its results against its truth file, one evaluation per model version that ran on
it, and the readers against the truth and against each other (Cohen's κ per finding). Computed where the
batch's last job finishes (worker/pipeline.py) or by the recovery loop for anything left due, never in a
web request; stored in batch_evaluations and read by the pages and the API.

The figures come from shared.stats.evaluation, the same code ``xray-model evaluate`` runs, so a batch
scored here and its CSV export scored by the CLI agree."""
from __future__ import annotations

import dataclasses
import itertools
import math
import logging
import time
import uuid

import numpy as np
from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session, selectinload

from shared.db.engine import Database
from shared.db.models import (Batch, BatchEvaluation, Job, JobStatus, ModelVersion, ReaderLabel, TruthLabel, User,
                              VersionResult, utcnow)
from shared.model.labels import LABELS
from shared.stats.agreement import cohen_kappa
from shared.stats.evaluation import age_band, evaluate_labelled

log = logging.getLogger(__name__)
READERS = "readers"  # the batch_evaluations row of the readers' agreement
ROUNDS = 1000
SEED = 0


ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


def _unfinished(batch_id):
    """A job of the batch, or a result of it under another version (a rerun, shadow traffic), still to come."""
    return (exists(select(Job.id).where(Job.batch_id == batch_id, Job.status.in_(ACTIVE)))
            | exists(select(VersionResult.id).join(Job, Job.id == VersionResult.job_id)
                     .where(Job.batch_id == batch_id, VersionResult.status.in_(ACTIVE))))


def pending(session: Session, batch_id: uuid.UUID) -> bool:
    """Whether results of the batch (its jobs, or reruns and shadow results of them) are still to come."""
    return bool(session.scalar(select(_unfinished(batch_id))))


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


@dataclasses.dataclass(frozen=True)
class Predicted:
    """One image's probabilities under one version: the served result (its findings) or a result of the same
    image under another version (shared/jobs/version_results.py)."""

    job: Job
    probabilities: dict[str, float]


def _served(job: Job) -> Predicted | None:
    if len(job.findings) != len(LABELS):
        return None
    return Predicted(job, {f.label: f.probability for f in job.findings})


def _version_figures(predicted: list[Predicted], truth: dict[uuid.UUID, TruthLabel], thresholds: dict[str, float],
                     model_name: str | None) -> dict | None:
    scored = [p for p in predicted if p.job.id in truth and all(label in p.probabilities for label in LABELS)]
    if not scored:
        return None
    y = np.array([[label in truth[p.job.id].labels for label in LABELS] for p in scored])
    # As every export writes them (6 decimals), so the figures are those of the predictions a user downloads
    # and scores with `xray-model evaluate` (near-equal scores of an untrained model would tie there, not here).
    probabilities = np.array([[round(p.probabilities[label], 6) for label in LABELS] for p in scored])
    groups = np.array([truth[p.job.id].patient_key or f"image:{p.job.id}" for p in scored])
    subgroups = {"sex": [truth[p.job.id].sex for p in scored],
                 "age_band": [age_band(truth[p.job.id].age) for p in scored],
                 "view": [truth[p.job.id].view or p.job.view_position for p in scored]}
    figures = evaluate_labelled(y, probabilities, thresholds, groups, subgroups=subgroups, rounds=ROUNDS, seed=SEED)
    figures["model_name"] = model_name
    figures["unlabelled_images"] = len([p for p in predicted if p.job.id not in truth])
    return figures


def _by_version(session: Session, batch: Batch) -> dict[str, tuple[list[Predicted], dict, str | None]]:
    """Per version that ran on the batch: its predictions, thresholds and model name. The served results first,
    then the results of other versions on the same images (reruns, shadow traffic)."""
    out: dict[str, tuple[list[Predicted], dict, str | None]] = {}
    for job in batch.jobs:
        predicted = _served(job) if job.status == JobStatus.SUCCEEDED.value and job.model_version else None
        if predicted is not None:
            if job.model_version not in out:
                out[job.model_version] = ([], {f.label: f.threshold for f in job.findings},
                                          job.model.name if job.model else None)
            out[job.model_version][0].append(predicted)
    jobs = {job.id: job for job in batch.jobs}
    others = session.execute(select(VersionResult, ModelVersion).join(ModelVersion)
                             .where(VersionResult.job_id.in_(list(jobs)),
                                    VersionResult.status == JobStatus.SUCCEEDED.value)).all()
    served = set(out)
    for result, model in others:
        if result.model_version in served:
            continue  # a version that served some of the batch's jobs is scored on those
        if result.model_version not in out:
            out[result.model_version] = ([], dict((model.manifest or {}).get("thresholds", {})), model.name)
        out[result.model_version][0].append(Predicted(jobs[result.job_id], result.probabilities or {}))
    return out


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
    results = {}
    if truth:
        for version, (predicted, thresholds, name) in _by_version(session, batch).items():
            figures = _version_figures(predicted, truth, thresholds, name)
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
