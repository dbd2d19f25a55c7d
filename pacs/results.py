"""A job's results as the bridge reads them: through the service's HTTP API, as the bridge's own account
(so only the jobs it submitted, and nothing from the database), in the shape the DICOM objects are
built from (shared/imaging/dicom_out.Result)."""
from __future__ import annotations

import base64
import dataclasses
import uuid

import numpy as np

from client.service import Api, ServiceError
from shared.imaging.dicom_out import Finding, Result


@dataclasses.dataclass(frozen=True)
class JobState:
    status: str  # queued, running, succeeded, failed, or "gone" (deleted, or removed by retention)
    error: str | None = None
    result: Result | None = None  # for a succeeded job


def _maps(api: Api, url: str | None) -> dict[str, np.ndarray] | None:
    if not url:
        return None
    body = api.json(url)
    shape = (int(body["height"]), int(body["width"]))
    return {label: np.frombuffer(base64.b64decode(data), np.uint8).reshape(shape)
            for label, data in body["maps"].items()}


def job_state(api: Api, job_id: uuid.UUID) -> JobState:
    """Where the job stands; for a succeeded one its findings, model and maps."""
    try:
        job = api.json(f"/api/v1/jobs/{job_id}")
    except ServiceError as exc:
        if exc.status == 404:
            return JobState("gone", "the job is gone (deleted, or removed by retention)")
        raise
    if job["status"] != "succeeded":
        return JobState(job["status"], job.get("error"))
    model = job.get("model") or {}
    findings = [Finding(f["label"], float(f["probability"]), float(f["threshold"]), bool(f["positive"]),
                        f.get("reliable")) for f in job["findings"]]
    return JobState("succeeded", None, Result(uuid.UUID(job["id"]), model.get("name") or "unknown",
                                              model.get("version") or "unknown", findings,
                                              _maps(api, job.get("maps_url")), job.get("input_check")))
