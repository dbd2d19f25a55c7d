"""How two model versions agree on the same images: the served version's findings against another
version's results of the same jobs (shadow traffic, reruns). Aggregates only: no job, file or owner."""
from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import Finding, Job, JobStatus, ModelVersion, VersionResult
from shared.model.labels import LABELS, NO_FINDING


def _pairs(session: Session, served: str, other: str) -> tuple[dict, dict]:
    """{job id: {label: p}} for the served version's results and the other version's, on the same jobs."""
    rows = session.execute(select(VersionResult.job_id, VersionResult.probabilities)
                           .join(Job, Job.id == VersionResult.job_id)
                           .where(VersionResult.model_version == other, VersionResult.status == JobStatus.SUCCEEDED.value,
                                  Job.model_version == served, Job.status == JobStatus.SUCCEEDED.value)).all()
    theirs = {job_id: probabilities for job_id, probabilities in rows}
    ours: dict = {job_id: {} for job_id in theirs}
    if theirs:
        for job_id, label, probability in session.execute(select(Finding.job_id, Finding.label, Finding.probability)
                                                          .where(Finding.job_id.in_(list(theirs)))):
            ours[job_id][label] = probability
    return ours, theirs


def agreement(session: Session, served: ModelVersion, other: ModelVersion) -> dict:
    ours, theirs = _pairs(session, served.version, other.version)
    jobs = sorted(ours)
    ours_thresholds = (served.manifest or {}).get("thresholds", {})
    theirs_thresholds = (other.manifest or {}).get("thresholds", {})
    findings = []
    for label in LABELS:
        if label == NO_FINDING:
            continue
        a = np.array([ours[j].get(label, np.nan) for j in jobs], dtype=float)
        b = np.array([(theirs[j] or {}).get(label, np.nan) for j in jobs], dtype=float)
        keep = ~(np.isnan(a) | np.isnan(b))
        a, b = a[keep], b[keep]
        n = int(keep.sum())
        ta, tb = ours_thresholds.get(label), theirs_thresholds.get(label)
        disagree = (float(np.mean((a >= ta) != (b >= tb))) if n and ta is not None and tb is not None else None)
        both_vary = n > 2 and np.std(a) > 0 and np.std(b) > 0
        findings.append({"finding": label, "images": n, "disagreement": disagree,
                         "correlation": float(np.corrcoef(a, b)[0, 1]) if both_vary else None,
                         "positive_served": float(np.mean(a >= ta)) if n and ta is not None else None,
                         "positive_other": float(np.mean(b >= tb)) if n and tb is not None else None})
    return {"served": served.version, "other": other.version, "images": len(jobs), "findings": findings}
