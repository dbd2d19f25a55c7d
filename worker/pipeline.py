"""What a worker does with one job id: claim, decode, analyse, draw overlays, record the result.

Plain functions over a WorkerContext so tests call them directly; the Celery task only passes the id.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
import uuid

from celery.exceptions import SoftTimeLimitExceeded

from shared import jobs
from shared.config import Settings
from shared.db import Database, retry_on_disconnect
from shared.images import ImageError, decode_image
from shared.labels import LABELS
from shared.model_manifest import Manifest
from shared.storage import LocalStorage, StorageError, overlay_key
from worker.engine import Analysis, InferenceEngine
from worker.overlay import render_overlay

log = logging.getLogger(__name__)


@dataclasses.dataclass
class WorkerContext:
    settings: Settings
    db: Database
    storage: LocalStorage
    engine: InferenceEngine
    manifest: Manifest
    worker_name: str

    @property
    def lease_seconds(self) -> float:
        return float(self.settings.lease)


def shown_labels(analysis: Analysis, thresholds: dict[str, float]) -> list[str]:
    """Findings above their threshold, most probable first; the top finding when none is."""
    ranked = sorted(analysis.probabilities, key=analysis.probabilities.get, reverse=True)
    above = [label for label in ranked if analysis.probabilities[label] >= thresholds[label]]
    return above or ranked[:1]


def _in_transaction(ctx: WorkerContext, what: str, operation):
    """Run operation(session) in its own transaction, waiting out a Postgres restart (with backoff)."""
    def attempt():
        with ctx.db.session() as session:
            return operation(session)

    return retry_on_disconnect(attempt, ctx.settings.db_retry_seconds, what)


def process_job(ctx: WorkerContext, job_id: uuid.UUID) -> str:
    """Run one job to a final state; returns the status it ended in ('skipped' if not ours to run)."""
    def claim(session):
        job = jobs.claim(session, job_id, ctx.worker_name, ctx.lease_seconds)
        return None if job is None else (job.image_key, job.content_sha256)

    claimed = _in_transaction(ctx, f"claim {job_id}", claim)
    if claimed is None:
        log.info("job %s is not queued (already claimed or finished); skipping", job_id)
        return "skipped"
    image_key, sha256 = claimed
    if ctx.settings.fault_crash_sha256 and sha256 == ctx.settings.fault_crash_sha256:
        log.critical("fault injection: crashing on job %s", job_id)
        os._exit(70)
    try:
        findings, timings = analyse_image(ctx, job_id, image_key)
    except (ImageError, StorageError) as exc:
        return _fail(ctx, job_id, f"{exc}")
    except SoftTimeLimitExceeded:
        return _fail(ctx, job_id, f"analysis took longer than {ctx.settings.task_soft_time_limit} s and was stopped")
    except Exception as exc:  # a model or library error must fail this job, not the worker
        log.exception("job %s failed", job_id)
        return _fail(ctx, job_id, f"internal error while analysing the image ({type(exc).__name__}: {exc})")
    try:
        _in_transaction(ctx, f"record result of {job_id}", lambda session: jobs.succeed(
            session, job_id, ctx.worker_name, ctx.manifest.version, findings, timings))
    except jobs.InvalidTransition:
        # The lease ran out (e.g. Postgres was away for longer) and the job was handed to another
        # worker: that worker's result is the one recorded. Overlay keys are per job and label,
        # so the files written here are the same set, not a second one.
        log.warning("job %s was reassigned while this worker ran it; its result is discarded", job_id)
        return "lost"
    return "succeeded"


def analyse_image(ctx: WorkerContext, job_id: uuid.UUID, image_key: str | None):
    if image_key is None:
        raise StorageError("the job has no stored image")
    started = time.perf_counter()
    grey = decode_image(ctx.storage.get(image_key), ctx.settings.max_image_pixels)
    decoded = time.perf_counter()
    analysis = ctx.engine.analyze([grey])[0]
    inferred = time.perf_counter()
    thresholds = ctx.manifest.thresholds
    shown = set(shown_labels(analysis, thresholds))
    findings = []
    for label in LABELS:
        key = None
        if label in shown:
            key = overlay_key(job_id, label)
            ctx.storage.put(key, render_overlay(grey, analysis.heatmaps[label]))
        probability = analysis.probabilities[label]
        findings.append(jobs.FindingResult(label, probability, thresholds[label], probability >= thresholds[label], key))
    drawn = time.perf_counter()
    timings = jobs.Timings(
        decode_ms=(decoded - started) * 1000, inference_ms=(inferred - decoded) * 1000, overlay_ms=(drawn - inferred) * 1000
    )
    return findings, timings


def _fail(ctx: WorkerContext, job_id: uuid.UUID, message: str) -> str:
    log.warning("job %s failed: %s", job_id, message)
    try:
        _in_transaction(ctx, f"record failure of {job_id}",
                        lambda session: jobs.fail(session, job_id, message, worker=ctx.worker_name))
    except jobs.InvalidTransition:
        log.warning("job %s was reassigned while this worker ran it; its failure is discarded", job_id)
        return "lost"
    return "failed"
