"""Benchmark: how soon a labelled batch's evaluation is ready after its last image finishes.

A batch of N images (default 500) with the real NIH labels of the 64×64 sample (patients repeat, so the
bootstrap resamples real clusters) and every job's 15 results recorded; N − 1 jobs are done, the last one
is claimed and completed with the worker's own calls (lifecycle.succeed, then the hook the worker runs after
each group: shared.truth.evaluate.evaluate_due). Printed: seconds from the last job's commit to the stored
evaluation (target: under 5 s), and in the same run the same figures with the bootstrap as it was before
(one scikit-learn AUROC per label per resampled round), as a ratio.

    .venv/bin/python bench/evaluation.py [--images 500] [--database-url postgresql+psycopg2://...]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import REPO, machine

LABELS_CSV = REPO.parent / "shared" / "data" / "nih" / "nih1000-64px" / "labels.csv"


def build(database_url: str, count: int):
    import numpy as np

    from shared.auth.accounts import create_user
    from shared.db.engine import Database
    from shared.db.migrate import upgrade
    from shared.db.models import JobStatus, ModelVersion, Role
    from shared.jobs import lifecycle
    from shared.model.labels import LABELS
    from shared.truth import labelfile, store

    upgrade(database_url)
    db = Database(database_url)
    rows = labelfile.parse(LABELS_CSV.read_bytes())[:count]
    rng = np.random.default_rng(0)
    with db.session() as session:
        owner = create_user(session, f"bench-{rng.integers(1 << 30)}", None, Role.MEMBER)
        session.merge(ModelVersion(version="bench-model", name="bench", architecture="small-cnn", trained=True, manifest={}))
        batch = lifecycle.create_batch(session, owner.id, [
            lifecycle.NewJob(row.image_index, f"{i:064d}", 1, image_key=f"bench/{i}") for i, row in enumerate(rows)])
        store.attach_truth(session, batch, rows, b"bench-secret")
        batch_id, last = batch.id, batch.jobs[-1].id
        for job in batch.jobs[:-1]:
            job.status, job.model_version = JobStatus.SUCCEEDED.value, "bench-model"
            truth = set(rows[job.position].labels)
            for label in LABELS:  # a model that is somewhat right, so the figures are not all 0.5
                p = float(np.clip(rng.normal(0.65 if label in truth else 0.4, 0.15), 0, 1))
                job.findings.append(lifecycle_finding(label, p))
    return db, batch_id, last, rows


def lifecycle_finding(label, probability):
    from shared.db.models import Finding

    return Finding(label=label, probability=probability, threshold=0.5, positive=probability >= 0.5)


def finish_last(db, job_id) -> float:
    """The worker's calls for the last job; returns seconds from its commit to the stored evaluation."""
    from shared.jobs import lifecycle
    from shared.model.labels import LABELS
    from shared.truth.evaluate import evaluate_due

    with db.session() as session:
        job = lifecycle.claim(session, job_id, "bench-worker", 60)
        batch_id = job.batch_id
        lifecycle.succeed(session, job_id, "bench-worker", "bench-model",
                          [lifecycle.FindingResult(label, 0.5, 0.5, True) for label in LABELS], lifecycle.Timings(1, 1))
    started = time.perf_counter()
    assert evaluate_due(db, [batch_id]) == [batch_id]
    return time.perf_counter() - started


def old_bootstrap_seconds(db, batch_id) -> float:
    """The same AUROC intervals with the bootstrap as it was: roc_auc_score per label per resampled round."""
    import numpy as np
    from sklearn.metrics import roc_auc_score
    from sqlalchemy import select

    from shared.db.models import Job, TruthLabel
    from shared.model.labels import LABELS
    from shared.stats.metrics import bootstrap_indices

    with db.session() as session:
        truth = {t.job_id: t for t in session.scalars(select(TruthLabel).where(TruthLabel.batch_id == batch_id))}
        jobs = list(session.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.position)))
        y = np.array([[label in truth[j.id].labels for label in LABELS] for j in jobs])
        p = np.array([[{f.label: f.probability for f in j.findings}[label] for label in LABELS] for j in jobs])
        groups = np.array([truth[j.id].patient_key for j in jobs])
    started = time.perf_counter()
    for index in bootstrap_indices(groups, 1000, 0):
        for c in range(len(LABELS)):
            if 0 < y[index, c].sum() < len(index):
                roc_auc_score(y[index, c], p[index, c])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--database-url", help="a scratch database (it is migrated and written to); default: a new "
                        "SQLite file (the embedded default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        db, batch_id, last, rows = build(url, args.images)
        seconds = finish_last(db, last)
        old = old_bootstrap_seconds(db, batch_id)
    patients = len({r.patient_id for r in rows})
    print(f"machine: {machine()}")
    print(f"database: {url.split(':')[0]}; {len(rows)} labelled images, {patients} patients, 15 findings, 1000 rounds")
    print(f"last job finished -> evaluation stored: {seconds:.2f} s (target < 5 s)")
    print(f"the AUROC bootstrap alone as it was (scikit-learn per round): {old:.2f} s; "
          f"whole evaluation now / old bootstrap alone: {seconds / old:.2f}")


if __name__ == "__main__":
    main()
