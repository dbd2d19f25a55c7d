"""Ground truth in the database (real Postgres): a batch whose images ran under two model versions gets one
evaluation per version, side by side; the label file's Patient ID is never stored; a batch is evaluated once
its last job is final, and only then."""
import numpy as np
import pytest
from sqlalchemy import select

from shared.db.engine import Database
from shared.db.models import BatchEvaluation, Finding, JobStatus, ModelVersion, TruthLabel
from shared.jobs import lifecycle
from shared.model.labels import LABELS
from shared.truth import labelfile, store
from shared.truth.evaluate import evaluate_due
from tests.helpers import SHARED_DATA, ensure_user

LABELS_CSV = SHARED_DATA / "nih1000-64px" / "labels.csv"


@pytest.mark.skipif(not LABELS_CSV.is_file(), reason="needs ../shared/data/nih/nih1000-64px")
def test_two_versions_on_one_batch_are_evaluated_side_by_side_once_every_job_is_final(own_pg_url):
    db = Database(own_pg_url)  # its own: its made-up versions and queued jobs must not meet the shared worker
    rows = labelfile.parse(LABELS_CSV.read_bytes())[:120]
    rng = np.random.default_rng(0)
    with db.session() as session:
        owner = ensure_user(session, "two-versions")
        for version in ("version-a", "version-b"):
            session.merge(ModelVersion(version=version, name=version, architecture="small-cnn", trained=True, manifest={}))
        batch = lifecycle.create_batch(session, owner.id, [lifecycle.NewJob(r.image_index, f"{i:064d}", 1, image_key=f"k/{i}")
                                                           for i, r in enumerate(rows)])
        report = store.attach_truth(session, batch, rows, b"secret")
        batch_id = batch.id
        for job in batch.jobs[:-1]:
            job.status = JobStatus.SUCCEEDED.value
            job.model_version = "version-a" if job.position % 2 else "version-b"
            for label in LABELS:
                p = float(rng.random())
                job.findings.append(Finding(label=label, probability=p, threshold=0.5, positive=p >= 0.5))
    assert report["images_labelled"] == 120 and report["unmatched_rows"] == 0
    assert evaluate_due(db, [batch_id]) == []  # one job still queued: not yet
    with db.session() as session:
        session.get(type(batch), batch_id).jobs[-1].status = JobStatus.FAILED.value
    assert evaluate_due(db, [batch_id]) == [batch_id]
    assert evaluate_due(db, [batch_id]) == []  # done: not again until the labels change
    with db.session() as session:
        stored = {row.model_version: row.figures for row in session.scalars(
            select(BatchEvaluation).where(BatchEvaluation.batch_id == batch_id))}
        keys = [t.patient_key for t in session.scalars(select(TruthLabel).where(TruthLabel.batch_id == batch_id))]
    assert set(stored) == {"version-a", "version-b"}
    assert stored["version-a"]["images"] + stored["version-b"]["images"] == 119
    assert all(v["per_label"]["No Finding"]["status"] == "scored" for v in stored.values())
    patient_ids = {r.patient_id for r in rows}
    assert all(k and len(k) == 32 and k not in patient_ids for k in keys)  # keyed, never the ID itself
    db.engine.dispose()


def test_label_files_are_read_or_refused_with_the_line_and_the_reason():
    rows = labelfile.parse(b"\xef\xbb\xbfImage Index,Finding Labels,Patient Age,Patient Gender,View Position\n"
                           b"a.png,Mass|Effusion,058Y,f,pa\nsub/b.png,No Finding,,,\n")
    assert [(r.image_index, r.labels, r.age, r.sex, r.view) for r in rows] == [
        ("a.png", ("Effusion", "Mass"), 58, "F", "PA"), ("b.png", ("No Finding",), None, None, None)]
    for data, said in ((b"Image Index,Finding Labels\na.png,Mass\na.png,Mass\n", "line 3: the image is listed twice"),
                       (b"Image Index,Finding Labels\na.png,No Finding|Mass\n", "line 2: 'No Finding' together"),
                       (b"Image Index,Finding Labels,Patient Gender\na.png,Mass,X\n", "line 2: 'Patient Gender'"),
                       (b"Image Index,Finding Labels,Patient Age\na.png,Mass,200\n", "line 2: 'Patient Age' 200"),
                       (b"Image Index,Finding Labels\n", "no rows")):
        with pytest.raises(labelfile.LabelFileError, match=said):
            labelfile.parse(data)


def test_the_contract_names_exactly_the_service_labels():
    from typing import get_args

    from web.schemas import FindingName

    assert get_args(FindingName) == LABELS
