"""A batch's results as CSV and JSON for download: every job, all 15 probabilities with thresholds, what is
shown as the answer (web/reading.py: the input gate's verdict, reliability, "No Finding" derived), the
model that produced them, and timings. File names are the owner's own.

The CSV scores as it is: ``xray-model evaluate --predictions batch.csv --labels labels.csv`` reads its
``Image Index`` (the uploaded file name) and ``prob_<Label>`` columns and names the others as ignored."""
from __future__ import annotations

import csv
import io

from shared.db.models import Batch, Job, as_utc
from shared.model.labels import LABELS
from web.reading import Reading


def _iso(moment):
    return None if moment is None else as_utc(moment).isoformat()


def job_record(job: Job) -> dict:
    reading = Reading.of(job)
    by_label = {f.label: f for f in job.findings}
    return {
        "job_id": str(job.id),
        "position": job.position,
        "image_index": job.original_filename,
        "status": job.status,
        "error": job.error,
        "model_name": job.model.name if job.model else None,
        "model_version": job.model_version,
        "runtime": job.runtime,
        "input_check": job.input_check,
        "findings_hidden": reading.gated,
        "findings_above_threshold": [f.label for f in reading.shown],
        "no_finding": reading.no_finding,
        "probabilities": {label: round(by_label[label].probability, 6) for label in LABELS if label in by_label},
        "thresholds": {label: by_label[label].threshold for label in LABELS if label in by_label},
        "reliable": {label: reading.reliable(label) for label in LABELS} if job.model else {},
        "reliability_set": reading.reliability_set if job.model else None,
        "decode_ms": job.decode_ms,
        "inference_ms": job.inference_ms,
        "created_at": _iso(job.created_at),
        "finished_at": _iso(job.finished_at),
    }


def batch_json(batch: Batch, disclaimer: str) -> dict:
    jobs = []
    for job in batch.jobs:
        record = job_record(job)
        record["filename"] = record["image_index"]  # the name this field had before "image_index" (v1 keeps both)
        jobs.append(record)
    return {"batch_id": str(batch.id), "name": batch.name, "created_at": _iso(batch.created_at),
            "disclaimer": disclaimer, "labels": list(LABELS), "jobs": jobs}


def _cell(value):
    """Spreadsheets run a cell that starts with = + - @ as a formula: such text is quoted."""
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") else value


COLUMNS = (["Image Index", "job_id", "position", "filename", "status", "error", "model_name", "model_version",
            "runtime", "input_check", "input_check_score", "input_check_reason", "findings_hidden",
            "findings_above_threshold", "no_finding"]
           + [f"prob_{label}" for label in LABELS] + [f"threshold_{label}" for label in LABELS]
           + [f"reliable_{label}" for label in LABELS] + ["decode_ms", "inference_ms", "created_at", "finished_at"])


def batch_csv(batch: Batch) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for job in batch.jobs:
        record, check = job_record(job), job.input_check or {}
        row = {k: v for k, v in record.items() if k in COLUMNS}
        row.update({"Image Index": record["image_index"], "filename": record["image_index"],
                    "input_check": check.get("result"), "input_check_score": check.get("score"),
                    "input_check_reason": check.get("reason"),
                    "findings_above_threshold": "|".join(record["findings_above_threshold"])})
        row.update({f"prob_{k}": v for k, v in record["probabilities"].items()})
        row.update({f"threshold_{k}": v for k, v in record["thresholds"].items()})
        row.update({f"reliable_{k}": v for k, v in record["reliable"].items()})
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue()
