"""Batches and jobs as the JSON the API answers and the pages render.

What is shown of a job is decided in web/reading.py: "No Finding" is a summary ("no finding above its
threshold"), never listed among the shown findings and never with a heatmap; an image the input gate
says is not a frontal chest radiograph shows the gate's reason instead of findings; each finding carries
the model's measured quality for it and whether it is reliable.
"""
from __future__ import annotations

import datetime as dt

from flask import url_for

from shared.db.models import Batch, Finding, Job, JobStatus, ModelVersion, as_utc
from shared.model.labels import LABELS, NO_FINDING, display_name
from shared.model.manifest import UNTRAINED_WARNING
from web.reading import Reading

DISCLAIMER = "Research and education only: not a medical device, not for diagnosis or treatment decisions."
ORDER = {label: i for i, label in enumerate(LABELS)}


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
        "card_url": url_for("pages.model_card", version=model.version),
    }


def has_heatmap(job: Job, finding: Finding) -> bool:
    return finding.label != NO_FINDING and (job.maps is not None or bool(finding.overlay_key))


def finding_json(reading: Reading, finding: Finding, detail: bool = False) -> dict:
    job = reading.job
    body = {
        "label": finding.label,
        "display_name": display_name(finding.label),
        "probability": round(finding.probability, 6),
        "threshold": finding.threshold,
        "positive": finding.positive,
        "summary": finding.label == NO_FINDING,
        "reliable": reading.reliable(finding.label),
        "overlay_url": url_for("api.job_overlay", job_id=job.id, label=finding.label) if has_heatmap(job, finding) else None,
    }
    if detail:
        body["quality"] = reading.quality.get(finding.label)
    return body


def thumbnail_finding(reading: Reading) -> tuple[Finding | None, bool]:
    """The finding a thumbnail shows: the most probable one above threshold, else the most probable of all
    (flagged as below threshold); None when the job has no results or its findings are hidden."""
    if reading.gated or not reading.findings:
        return None, False
    if reading.shown:
        return reading.shown[0], True
    return reading.findings[0], False


LATERAL_WARNING = ("Not a frontal view ({view}): the model was trained on frontal (PA/AP) chest X-rays, so its "
                   "findings for this image mean little")


def dicom_json(job: Job, reading: Reading) -> dict | None:
    if job.content_type != "application/dicom":
        return None
    view = job.view_position
    analysed = job.status == JobStatus.SUCCEEDED.value
    return {
        "view_position": view, "frontal": None if not view else view in ("PA", "AP"),
        "pixel_spacing_mm": job.pixel_spacing_mm,
        "image_url": url_for("api.job_dicom_image", job_id=job.id),
        "report_url": url_for("api.job_dicom_report", job_id=job.id) if analysed else None,
        "map_url": url_for("api.job_dicom_map", job_id=job.id)
        if analysed and job.maps is not None and any(f.label != NO_FINDING for f in reading.shown) else None,
        "heatmap_urls": {f.label: url_for("api.job_dicom_heatmap", job_id=job.id, label=f.label)
                         for f in reading.shown if has_heatmap(job, f)} if analysed else {},
    }


def job_warnings(job: Job) -> list[str]:
    view = job.view_position
    return [LATERAL_WARNING.format(view=view)] if view and view not in ("PA", "AP") else []


def _seconds(start, end) -> float | None:
    return None if start is None or end is None else round(max(0.0, (as_utc(end) - as_utc(start)).total_seconds()), 3)


def job_json(job: Job, detail: bool = False) -> dict:
    reading = Reading.of(job)
    thumb, above = thumbnail_finding(reading)
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
        "summary": reading.summary,
        "shown_findings": [finding_json(reading, f) for f in reading.shown],
        "no_finding": reading.no_finding,
        "input_check": job.input_check,
        "findings_hidden": reading.gated,
        "thumbnail": None if thumb is None or not has_heatmap(job, thumb) else {
            "label": thumb.label, "display_name": display_name(thumb.label), "above_threshold": above,
            "url": url_for("api.job_overlay", job_id=job.id, label=thumb.label, size="thumb")},
        "dicom": dicom_json(job, reading),
        "warnings": job_warnings(job),
        "finished_at": iso(job.finished_at),
        "updated_at": iso(job.updated_at),
        "received_at": iso(job.created_at),
        "queue_seconds": _seconds(job.created_at, job.started_at),
        "run_seconds": _seconds(job.started_at, job.finished_at),
        "worker": job.worker,
    }
    if detail:
        body["findings"] = [finding_json(reading, f, detail=True)
                            for f in sorted(job.findings, key=lambda f: ORDER.get(f.label, 99))]
        body["opening_label"] = reading.opening_label
        body["reliability_set"] = reading.reliability_set
        body["maps_url"] = url_for("api.job_maps", job_id=job.id) if job.maps is not None else None
        body["values_url"] = url_for("api.job_values", job_id=job.id) if job.image_key else None
        body["timings_ms"] = {"decode": job.decode_ms, "inference": job.inference_ms}
        body["runtime"] = job.runtime
        body["created_at"] = iso(job.created_at)
        body["started_at"] = iso(job.started_at)
    return body


def other_versions_json(job: Job, results) -> list[dict]:
    """The job's results under other versions (shared/jobs/version_results.with_maps) for the viewer's side by side."""
    return [{"version": r.model_version, "kind": r.kind, "probabilities": r.probabilities or {},
             "maps_url": url_for("api.job_maps", job_id=job.id, version=r.model_version)} for r in results]


def counts_json(counts: dict[str, int], total: int) -> dict:
    full = {status.value: counts.get(status.value, 0) for status in JobStatus}
    done = full["succeeded"] + full["failed"]
    return {"total": total, "done": done, "finished": done == total, "counts": full}


def rate_json(jobs: list[Job], remaining: int) -> dict:
    """Images per second over the finished jobs so far and the time left at that rate (None until known)."""
    finished = sorted(as_utc(j.finished_at) for j in jobs if j.finished_at and j.status == JobStatus.SUCCEEDED.value)
    started = [as_utc(j.started_at) for j in jobs if j.started_at]
    if len(finished) < 2 or not started:
        return {"images_per_second": None, "eta_seconds": None}
    span = (finished[-1] - min(started)).total_seconds()
    rate = len(finished) / span if span > 0 else None
    return {"images_per_second": rate, "eta_seconds": remaining / rate if rate and remaining else (0 if rate else None)}


# A status change is stamped when its statement runs and seen when its transaction commits; the cursor
# looks back this far so a change committed just after a later one is not missed.
CURSOR_OVERLAP = dt.timedelta(seconds=5)


def batch_json(batch: Batch, since: dt.datetime | None = None) -> dict:
    """The batch with its jobs; with ``since`` (the previous answer's cursor), only the jobs that changed
    since then, so a page polling a batch of thousands downloads what changed, not everything."""
    counts: dict[str, int] = {}
    for job in batch.jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    warnings = sorted({UNTRAINED_WARNING for job in batch.jobs if job.model and not job.model.trained})
    changed = batch.jobs if since is None else [j for j in batch.jobs if as_utc(j.updated_at) > since - CURSOR_OVERLAP]
    cursor = max((as_utc(j.updated_at) for j in batch.jobs), default=as_utc(batch.created_at))
    full = counts_json(counts, batch.job_count)
    return {
        "id": str(batch.id),
        "name": batch.name,
        "model_version": batch.model_version,
        "model_ref": batch.model_ref,
        "callback_url": batch.callback_url,
        "webhooks_url": url_for("api.batch_webhooks", batch_id=batch.id),
        "created_at": iso(batch.created_at),
        **full,
        **rate_json(batch.jobs, full["total"] - full["done"]),
        "url": url_for("api.get_batch", batch_id=batch.id),
        "page_url": url_for("pages.batch_page", batch_id=batch.id),
        "downloads": {kind: url_for("api.batch_export", batch_id=batch.id, kind=kind) for kind in ("csv", "json", "pdf")},
        "cursor": iso(cursor),
        "partial": since is not None,
        "jobs": [job_json(job) for job in changed],
        "warnings": warnings,
    }


def delivery_json(delivery) -> dict:
    return {
        "id": str(delivery.id), "url": delivery.url, "state": delivery.state, "attempts": delivery.attempts,
        "next_attempt_at": iso(delivery.next_attempt_at) if delivery.state == "pending" else None,
        "delivered_at": iso(delivery.delivered_at),
        "attempt_log": [{"at": iso(a.at), "status_code": a.status_code, "error": a.error,
                         "duration_ms": round(a.duration_ms, 1)} for a in delivery.attempt_log],
    }
