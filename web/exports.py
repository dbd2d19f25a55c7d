"""A batch's results as CSV and JSON for download: every job, all 15 probabilities with thresholds, the
findings above threshold, the model that produced them, and timings. File names are the owner's own."""
from __future__ import annotations

import csv
import io

from shared.db.models import Batch, Job, as_utc
from shared.model.labels import LABELS, NO_FINDING


def _iso(moment):
    return None if moment is None else as_utc(moment).isoformat()


def job_record(job: Job) -> dict:
    by_label = {f.label: f for f in job.findings}
    return {
        "job_id": str(job.id),
        "position": job.position,
        "filename": job.original_filename,
        "status": job.status,
        "error": job.error,
        "model_name": job.model.name if job.model else None,
        "model_version": job.model_version,
        "runtime": job.runtime,
        "findings_above_threshold": [f.label for f in sorted(job.findings, key=lambda f: -f.probability)
                                     if f.positive and f.label != NO_FINDING],
        "probabilities": {label: round(by_label[label].probability, 6) for label in LABELS if label in by_label},
        "thresholds": {label: by_label[label].threshold for label in LABELS if label in by_label},
        "decode_ms": job.decode_ms,
        "inference_ms": job.inference_ms,
        "created_at": _iso(job.created_at),
        "finished_at": _iso(job.finished_at),
    }


def batch_json(batch: Batch, disclaimer: str) -> dict:
    return {"batch_id": str(batch.id), "name": batch.name, "created_at": _iso(batch.created_at),
            "disclaimer": disclaimer, "labels": list(LABELS), "jobs": [job_record(job) for job in batch.jobs]}


def _cell(value):
    """Spreadsheets run a cell that starts with = + - @ as a formula: such text is quoted."""
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") else value


def batch_csv(batch: Batch) -> str:
    columns = (["job_id", "position", "filename", "status", "error", "model_name", "model_version",
                "runtime", "findings_above_threshold"] + [f"prob_{label}" for label in LABELS]
               + [f"threshold_{label}" for label in LABELS] + ["decode_ms", "inference_ms", "created_at", "finished_at"])
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for job in batch.jobs:
        record = job_record(job)
        row = {k: v for k, v in record.items() if k in columns}
        row["findings_above_threshold"] = "|".join(record["findings_above_threshold"])
        row.update({f"prob_{k}": v for k, v in record["probabilities"].items()})
        row.update({f"threshold_{k}": v for k, v in record["thresholds"].items()})
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue()
