"""process_job called directly on Postgres with the tiny model: results, failures and skips."""
import uuid

import pytest

from shared import jobs
from shared.config import load_settings
from shared.images import decode_image
from shared.models import Job
from shared.storage import LocalStorage
from tests.helpers import corrupt_png, decode_png, quiet_cv2, real_xray_bytes
from worker.runtime import build_context


@pytest.fixture(scope="module")
def ctx(pg_url, tiny_model, tmp_path_factory):
    storage = tmp_path_factory.mktemp("pipeline-storage")
    settings = load_settings(database_url=pg_url, storage_dir=storage, model_dir=tiny_model)
    return build_context(settings, worker_name=f"pipeline-test-{uuid.uuid4().hex[:6]}")


def _queue(ctx, files):
    uploads = []
    for i, (name, data) in enumerate(files):
        key = f"uploads/{uuid.uuid4().hex}.png"
        if data is not None:
            ctx.storage.put(key, data)
        uploads.append(jobs.NewJob(name, "0" * 64, len(data or b""), image_key=key))
    with ctx.db.session() as session:
        return [job.id for job in jobs.create_batch(session, "local", uploads).jobs]


def _job(ctx, job_id) -> Job:
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        job.findings  # load while the session is open
        return job


def test_a_real_xray_gets_15_probabilities_and_overlays_for_shown_findings(ctx):
    name, data = real_xray_bytes(1)[0]
    (job_id,) = _queue(ctx, [(name, data)])
    assert _run(ctx, job_id) == "succeeded"
    job = _job(ctx, job_id)
    assert job.status == "succeeded" and job.model_version == ctx.manifest.version and job.attempts == 1
    assert len(job.findings) == 15 and all(0.0 <= f.probability <= 1.0 for f in job.findings)
    shown = [f for f in job.findings if f.overlay_key]
    assert shown, "at least the top finding is shown"
    above = [f for f in job.findings if f.positive]
    if above:
        assert {f.label for f in shown} == {f.label for f in above}
    else:
        assert [f.label for f in shown] == [max(job.findings, key=lambda f: f.probability).label]
    overlay = decode_png(ctx.storage.get(shown[0].overlay_key))
    assert overlay.shape == (*decode_image(data, 10**6).shape, 3)
    assert job.decode_ms >= 0 and job.inference_ms > 0 and job.overlay_ms >= 0


def _run(ctx, job_id):
    from worker.pipeline import process_job

    with quiet_cv2():
        return process_job(ctx, job_id)


def test_corrupt_and_missing_images_fail_their_job_with_a_reason(ctx):
    corrupt, missing = _queue(ctx, [("cut.png", corrupt_png()), ("gone.png", None)])
    assert _run(ctx, corrupt) == "failed"
    assert "damaged or truncated" in _job(ctx, corrupt).error
    assert _run(ctx, missing) == "failed"
    assert "missing" in _job(ctx, missing).error


def test_a_job_that_is_not_queued_is_skipped_not_run_twice(ctx):
    (job_id,) = _queue(ctx, real_xray_bytes(1))
    assert _run(ctx, job_id) == "succeeded"
    assert _run(ctx, job_id) == "skipped"
    assert _run(ctx, uuid.uuid4()) == "skipped"
    assert len(_job(ctx, job_id).findings) == 15


def test_model_errors_fail_only_that_job(ctx, monkeypatch):
    good, bad = _queue(ctx, real_xray_bytes(2))
    original = ctx.engine.analyze

    def exploding(images):
        raise RuntimeError("simulated model failure")

    monkeypatch.setattr(ctx.engine, "analyze", exploding)
    assert _run(ctx, bad) == "failed"
    assert "simulated model failure" in _job(ctx, bad).error
    monkeypatch.setattr(ctx.engine, "analyze", original)
    assert _run(ctx, good) == "succeeded"
