"""process_job called directly on Postgres with the tiny model: results, failures and skips."""
import uuid

import numpy as np
import pytest

from shared.db.models import Job
from shared.imaging.images import decode_image
from shared.jobs import lifecycle
from shared.model.labels import LABELS
from shared.ops.config import load_settings
from tests.helpers import corrupt_png, ensure_user, quiet_cv2, real_xray_bytes
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
        uploads.append(lifecycle.NewJob(name, "0" * 64, len(data or b""), image_key=key))
    with ctx.db.session() as session:
        return [job.id for job in lifecycle.create_batch(session, ensure_user(session).id, uploads).jobs]


def _job(ctx, job_id) -> Job:
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        job.findings  # load while the session is open
        return job


def test_a_real_xray_gets_15_probabilities_and_every_class_map_as_data_and_no_pictures(ctx):
    from shared.imaging import maps

    name, data = real_xray_bytes(1)[0]
    (job_id,) = _queue(ctx, [(name, data)])
    assert _run(ctx, job_id) == "succeeded"
    job = _job(ctx, job_id)
    assert job.status == "succeeded" and job.model_version == ctx.manifest.version and job.attempts == 1
    assert len(job.findings) == 15 and all(0.0 <= f.probability <= 1.0 for f in job.findings)
    assert all(f.overlay_key is None for f in job.findings) and not (ctx.storage.root / "overlays").exists()
    stored = maps.decode(job.maps)
    assert list(stored) == list(LABELS) and all(m.shape == (8, 8) and m.dtype == np.uint8 for m in stored.values())
    assert len(job.maps) < 2000  # a few hundred bytes for all 15 maps
    # The maps are the engine's own, at feature resolution, quantised to 8 bits.
    expected = ctx.engine.analyse([decode_image(data, 10**6)])[0].heatmaps
    assert all(np.abs(stored[label].astype(int) - np.rint(expected[label] * 255)).max() <= 1 for label in LABELS)
    assert job.decode_ms >= 0 and job.inference_ms > 0


def _run(ctx, job_id):
    from worker.pipeline import process_job

    with quiet_cv2():
        return process_job(ctx, job_id)


def test_bad_images_in_a_batch_fail_alone_with_a_reason(ctx):
    corrupt, missing, good = _queue(ctx, [("cut.png", corrupt_png()), ("gone.png", None), real_xray_bytes(1)[0]])
    assert _run(ctx, corrupt) == "failed"  # claims the other two with it: one forward pass
    assert "the PNG file is truncated" in _job(ctx, corrupt).error
    assert _job(ctx, missing).status == "failed" and "missing" in _job(ctx, missing).error
    assert _job(ctx, good).status == "succeeded" and len(_job(ctx, good).findings) == 15
    assert _run(ctx, missing) == "skipped" and _run(ctx, good) == "skipped"  # their own messages, later


def test_a_job_that_is_not_queued_is_skipped_not_run_twice(ctx):
    (job_id,) = _queue(ctx, real_xray_bytes(1))
    assert _run(ctx, job_id) == "succeeded"
    assert _run(ctx, job_id) == "skipped"
    assert _run(ctx, uuid.uuid4()) == "skipped"
    assert len(_job(ctx, job_id).findings) == 15


def test_a_model_error_on_one_image_fails_only_that_job(ctx, monkeypatch):
    files = real_xray_bytes(2)
    good, bad = _queue(ctx, files)
    bad_input = ctx.engine.preprocess(decode_image(files[1][1], 10**6))
    original = ctx.engine.analyse_preprocessed

    def exploding(batch):
        if any(np.array_equal(x, bad_input) for x in batch):
            raise RuntimeError("simulated model failure")
        return original(batch)

    monkeypatch.setattr(ctx.engine, "analyse_preprocessed", exploding)
    assert _run(ctx, good) == "succeeded"  # the batch failed, then each image was tried alone
    assert _job(ctx, bad).status == "failed" and "simulated model failure" in _job(ctx, bad).error


def test_jobs_that_arrive_together_share_a_forward_pass_up_to_the_batch_size(ctx, monkeypatch):
    ids = _queue(ctx, [(f"{i}.png", data) for i, (_, data) in enumerate(real_xray_bytes(4) * 5)])  # 20 jobs
    shapes = []
    original = ctx.engine.forward
    monkeypatch.setattr(ctx.engine, "forward", lambda batch: shapes.append(len(batch)) or original(batch))
    # The claim size comes from timings taken at start, which a busy machine can tilt towards 8: this test is
    # about claiming together, so the largest shape is made the fastest per image (worker/batching.py).
    monkeypatch.setattr(ctx.engine, "bucket_seconds", {shape: 0.01 + shape * 0.001 for shape in ctx.engine.bucket_seconds})
    running_at_each_pass = []
    monkeypatch.setattr(ctx.engine, "forward", lambda batch: shapes.append(len(batch)) or running_at_each_pass.append(
        sum(_job(ctx, i).status == "running" for i in ids)) or original(batch))
    assert _run(ctx, ids[0]) == "succeeded"
    # batch_size 16: one pass for the first 16; the same task claimed the 4 left (and began decoding them) before
    # that pass, then ran them: the next group is ready when the forward pass is free.
    assert shapes == [16, 4] and running_at_each_pass == [20, 4]
    assert all(_run(ctx, job_id) == "skipped" for job_id in ids[1:]) and shapes == [16, 4]  # their own messages
    assert all(_job(ctx, i).status == "succeeded" and _job(ctx, i).attempts == 1 for i in ids)


@pytest.mark.parametrize("why", ["drain off", "asked to stop"])
def test_without_draining_a_task_runs_one_group_and_the_next_message_takes_the_rest(ctx, monkeypatch, why):
    import dataclasses

    from worker import pipeline

    ids = _queue(ctx, [(f"{i}.png", data) for i, (_, data) in enumerate(real_xray_bytes(4) * 5)])  # 20 jobs
    if why == "drain off":
        ctx = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, drain_seconds=0))
    else:
        pipeline.stop_draining()  # what SIGTERM leads to (worker/main.py)
        monkeypatch.setattr(pipeline, "_stopping", pipeline._stopping)  # cleared below
    shapes = []
    original = ctx.engine.forward
    monkeypatch.setattr(ctx.engine, "forward", lambda batch: shapes.append(len(batch)) or original(batch))
    monkeypatch.setattr(ctx.engine, "bucket_seconds", {shape: 0.01 + shape * 0.001 for shape in ctx.engine.bucket_seconds})
    try:
        assert _run(ctx, ids[0]) == "succeeded" and shapes == [16]
        assert sum(_job(ctx, i).status == "queued" for i in ids) == 4  # nothing claimed that this task did not run
        # The next message names a job already done; its worker takes the 4 still queued instead of idling.
        assert _run(ctx, ids[1]) == "skipped" and shapes == [16, 4]
    finally:
        pipeline._stopping.clear()
    assert all(_job(ctx, i).status == "succeeded" and _job(ctx, i).attempts == 1 for i in ids)


def test_a_job_deleted_while_it_runs_leaves_no_files_behind(ctx, monkeypatch):
    from shared.jobs import deletion
    from worker import pipeline

    (job_id,) = _queue(ctx, real_xray_bytes(1))
    original = pipeline._findings

    def owner_deletes_meanwhile(ctx_, analysis):
        with ctx.db.session() as session:  # the owner deletes the image while the model runs
            deletion.delete_job(session, session.get(Job, job_id))
        return original(ctx_, analysis)

    monkeypatch.setattr(pipeline, "_findings", owner_deletes_meanwhile)
    assert _run(ctx, job_id) == "deleted"
    with ctx.db.session() as session:
        assert session.get(Job, job_id) is None


def _colour_noise() -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", np.random.default_rng(2).integers(0, 256, (128, 128, 3), dtype=np.uint8))
    return data.tobytes()


def test_the_input_gate_flags_or_refuses_what_is_not_a_chest_xray_and_no_finding_is_derived(ctx):
    import dataclasses

    from shared.model.labels import NO_FINDING

    xray, noise = real_xray_bytes(1)[0], ("noise.png", _colour_noise())
    xray_id, noise_id = _queue(ctx, [xray, noise])
    assert _run(ctx, xray_id) == "succeeded" and _run(ctx, noise_id) in ("succeeded", "skipped")
    passed, flagged = _job(ctx, xray_id), _job(ctx, noise_id)
    assert passed.input_check["result"] == "ok" and flagged.status == "succeeded"
    assert flagged.input_check["result"] == "not_a_radiograph" and "colour" in flagged.input_check["reason"]
    assert len(flagged.findings) == 15  # flag: analysed, the findings kept (the pages hide them)
    for job in (passed, flagged):  # "No Finding" is yes exactly when no finding is above its threshold
        above = [f.positive for f in job.findings if f.label != NO_FINDING]
        assert next(f.positive for f in job.findings if f.label == NO_FINDING) == (not any(above))

    refusing = dataclasses.replace(ctx, settings=ctx.settings.replace(input_gate="refuse"))
    (refused_id,) = _queue(refusing, [noise])
    assert _run(refusing, refused_id) == "failed"
    refused = _job(refusing, refused_id)
    assert refused.error.startswith("not analysed: ") and "input check: not_a_radiograph" in refused.error
    assert refused.input_check["result"] == "not_a_radiograph" and refused.findings == [] and refused.maps is None
