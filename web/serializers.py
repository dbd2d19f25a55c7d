"""Batches and jobs as the JSON the API answers and the batch page renders."""
from __future__ import annotations

import datetime as dt

from flask import url_for

from shared.labels import LABELS, display_name
from shared.model_manifest import UNTRAINED_WARNING
from shared.models import Batch, Finding, Job, JobStatus, ModelVersion, as_utc

DISCLAIMER = "Research and education only: not a medical device, not for diagnosis or treatment decisions."


def iso(moment: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC."""
    return None if moment is None else as_utc(moment).isoformat()


def model_json(model: ModelVersion | None) -> dict | None:
    if model is None:
        return None
    return {
        "name": model.name,
        "version": model.version,
        "architecture": model.architecture,
        "trained": model.trained,
        "warning": None if model.trained else UNTRAINED_WARNING,
    }


def finding_json(job: Job, finding: Finding) -> dict:
    return {
        "label": finding.label,
        "display_name": display_name(finding.label),
        "probability": round(finding.probability, 6),
        "threshold": finding.threshold,
        "positive": finding.positive,
        "overlay_url": url_for("api.job_overlay", job_id=job.id, label=finding.label) if finding.overlay_key else None,
    }


def job_json(job: Job, detail: bool = False) -> dict:
    shown = [f for f in job.findings if f.overlay_key]  # findings arrive most probable first
    body = {
        "id": str(job.id),
        "batch_id": str(job.batch_id),
        "position": job.position,
        "filename": job.original_filename,
        "status": job.status,
        "error": job.error,
        "attempts": job.attempts,
        "width": job.width,
        "height": job.height,
        "url": url_for("api.get_job", job_id=job.id),
        "page_url": url_for("pages.job_page", job_id=job.id),
        "image_url": url_for("api.job_image", job_id=job.id) if job.image_key else None,
        "model": model_json(job.model),
        "shown_findings": [finding_json(job, f) for f in shown],
    }
    if detail:
        order = {label: i for i, label in enumerate(LABELS)}
        body["findings"] = [finding_json(job, f) for f in sorted(job.findings, key=lambda f: order.get(f.label, 99))]
        body["timings_ms"] = {"decode": job.decode_ms, "inference": job.inference_ms, "overlay": job.overlay_ms}
        body["created_at"] = iso(job.created_at)
        body["started_at"] = iso(job.started_at)
        body["finished_at"] = iso(job.finished_at)
    return body


def counts_json(counts: dict[str, int], total: int) -> dict:
    full = {status.value: counts.get(status.value, 0) for status in JobStatus}
    done = full["succeeded"] + full["failed"]
    return {"total": total, "done": done, "finished": done == total, "counts": full}


def batch_json(batch: Batch) -> dict:
    counts: dict[str, int] = {}
    for job in batch.jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    warnings = sorted({UNTRAINED_WARNING for job in batch.jobs if job.model and not job.model.trained})
    return {
        "id": str(batch.id),
        "created_at": iso(batch.created_at),
        **counts_json(counts, batch.job_count),
        "url": url_for("api.get_batch", batch_id=batch.id),
        "page_url": url_for("pages.batch_page", batch_id=batch.id),
        "jobs": [job_json(job) for job in batch.jobs],
        "warnings": warnings,
    }
