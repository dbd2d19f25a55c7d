"""The job status rules, on the databases the service runs on: Postgres and SQLite."""
import datetime as dt
import uuid

import pytest

from shared.db.models import Job, ModelVersion
from shared.jobs import lifecycle
from tests.helpers import ensure_user


def _batch(db, *errors):
    uploads = [
        lifecycle.NewJob(f"image{i}.png", "0" * 64, 10, image_key=None if error else f"uploads/{i}.png", error=error)
        for i, error in enumerate(errors)
    ]
    with db.session() as session:
        batch = lifecycle.create_batch(session, ensure_user(session).id, uploads)
        return batch.id, [job.id for job in batch.jobs]


def _job(db, job_id) -> Job:
    with db.session() as session:
        return session.get(Job, job_id)


def test_create_queues_good_files_and_fails_rejected_ones_at_once(db):
    _, (good, bad) = _batch(db, None, "the file is not a PNG or JPEG image")
    assert _job(db, good).status == "queued" and _job(db, good).attempts == 0
    rejected = _job(db, bad)
    assert rejected.status == "failed" and rejected.error == "the file is not a PNG or JPEG image"
    assert rejected.finished_at is not None


def test_only_one_of_two_claims_wins(db):
    _, (job_id,) = _batch(db, None)
    with db.session() as session:
        first = lifecycle.claim(session, job_id, "worker-a", 60)
    with db.session() as session:
        second = lifecycle.claim(session, job_id, "worker-b", 60)
    assert first is not None and first.status == "running" and first.attempts == 1
    assert second is None
    assert _job(db, job_id).worker == "worker-a"


def test_only_the_claiming_worker_can_record_a_result_and_only_once(db):
    _, (job_id,) = _batch(db, None)
    with db.session() as session:
        lifecycle.claim(session, job_id, "worker-a", 60)
    findings = [lifecycle.FindingResult("Mass", 0.7, 0.5, True, "overlays/x/Mass.png")]
    timings = lifecycle.Timings(1.0, 2.0, 3.0)
    with pytest.raises(lifecycle.InvalidTransition), db.session() as session:
        lifecycle.succeed(session, job_id, "worker-b", "v1", findings, timings)
    with db.session() as session:
        # Seen long ago, so it never poses as the model the workers serve now.
        long_ago = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
        session.merge(ModelVersion(version="v1", name="m", architecture="a", trained=False, manifest={},
                                   registered_at=long_ago, last_seen_at=long_ago))
    with db.session() as session:
        lifecycle.succeed(session, job_id, "worker-a", "v1", findings, timings)
    with pytest.raises(lifecycle.InvalidTransition), db.session() as session:
        lifecycle.succeed(session, job_id, "worker-a", "v1", findings, timings)
    with pytest.raises(lifecycle.InvalidTransition), db.session() as session:
        lifecycle.fail(session, job_id, "late failure")
    done = _job(db, job_id)
    assert done.status == "succeeded" and done.model_version == "v1" and done.inference_ms == 2.0
    with db.session() as session:
        assert len(session.get(Job, job_id).findings) == 1


def test_a_forward_batch_is_recorded_in_one_transaction_except_the_jobs_held_elsewhere(db):
    _, ids = _batch(db, None, None, None)
    with db.session() as session:
        for job_id in ids[:2]:
            lifecycle.claim(session, job_id, "worker-a", 60)
        lifecycle.claim(session, ids[2], "worker-b", 60)  # reassigned meanwhile
        long_ago = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
        session.merge(ModelVersion(version="v1", name="m", architecture="a", trained=False, manifest={},
                                   registered_at=long_ago, last_seen_at=long_ago))
    findings = [lifecycle.FindingResult(label, 0.25, 0.5, False) for label in ("Mass", "Nodule", "No Finding")]
    results = [lifecycle.Result(job_id, findings, lifecycle.Timings(1.0, 2.0), maps=b"m", input_check={"ok": True})
               for job_id in ids]
    with db.session() as session:
        recorded = lifecycle.succeed_many(session, "worker-a", "v1", results, runtime="openvino-bf16")
    assert recorded == set(ids[:2])
    for job_id in ids[:2]:
        job = _job(db, job_id)
        assert (job.status, job.runtime, job.maps, job.input_check) == ("succeeded", "openvino-bf16", b"m", {"ok": True})
        with db.session() as session:
            assert sorted(f.label for f in session.get(Job, job_id).findings) == ["Mass", "No Finding", "Nodule"]
    assert _job(db, ids[2]).status == "running" and _job(db, ids[2]).worker == "worker-b"
    with db.session() as session:
        assert session.get(Job, ids[2]).findings == []


def test_fail_from_queued_or_running_and_never_twice(db):
    _, (queued, running) = _batch(db, None, None)
    with db.session() as session:
        lifecycle.claim(session, running, "worker-a", 60)
    with db.session() as session:
        lifecycle.fail(session, queued, "gave up")
        lifecycle.fail(session, running, "decoder said no", worker="worker-a")
    assert _job(db, queued).error == "gave up" and _job(db, running).status == "failed"
    with pytest.raises(lifecycle.InvalidTransition), db.session() as session:
        lifecycle.fail(session, queued, "again")
    with db.session() as session:
        assert lifecycle.claim(session, queued, "worker-a", 60) is None


def test_dispatch_is_recorded_for_queued_jobs_only(db):
    _, (job_id, rejected) = _batch(db, None, "bad")
    with db.session() as session:
        lifecycle.mark_dispatched(session, [job_id, rejected, uuid.uuid4()])
    assert _job(db, job_id).dispatched_at is not None
    assert _job(db, rejected).dispatched_at is None


def test_an_empty_batch_is_refused(db):
    with pytest.raises(ValueError), db.session() as session:
        lifecycle.create_batch(session, ensure_user(session).id, [])


def _expire_lease(db, job_id):
    with db.session() as session:
        session.get(Job, job_id).lease_expires_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)


def test_expired_leases_are_requeued_then_failed_after_the_attempt_limit(db):
    _, (job_id, healthy) = _batch(db, None, None)
    with db.session() as session:
        lifecycle.claim(session, job_id, "dead-worker", 60)
        lifecycle.claim(session, healthy, "live-worker", 60)
    _expire_lease(db, job_id)
    with db.session() as session:
        assert lifecycle.return_expired(session, max_attempts=2) == ([job_id], [])
    job = _job(db, job_id)
    assert job.status == "queued" and job.worker is None and job.dispatched_at is None
    assert _job(db, healthy).status == "running"  # a live lease is left alone

    with db.session() as session:
        assert lifecycle.claim(session, job_id, "second-worker", 60).attempts == 2
    _expire_lease(db, job_id)
    with db.session() as session:
        assert lifecycle.return_expired(session, max_attempts=2) == ([], [job_id])
    failed = _job(db, job_id)
    assert failed.status == "failed" and "2 time(s)" in failed.error
    with db.session() as session:
        assert lifecycle.return_expired(session, max_attempts=2) == ([], [])  # nothing twice


def test_relay_sends_undispatched_jobs_at_once_and_backs_off_on_resends(db):
    _, (never_sent, sent_recently) = _batch(db, None, None)
    with db.session() as session:
        lifecycle.mark_dispatched(session, [sent_recently])
    with db.session() as session:
        assert lifecycle.take_due_for_dispatch(session, relay_after=60) == [never_sent]
    with db.session() as session:
        assert lifecycle.take_due_for_dispatch(session, relay_after=60) == []  # both now sent recently
    def sent_ago(seconds):
        with db.session() as session:
            session.get(Job, sent_recently).dispatched_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)

    sent_ago(90)
    with db.session() as session:
        # sent once: resend after 60 s
        assert lifecycle.take_due_for_dispatch(session, relay_after=60) == [sent_recently]
    sent_ago(90)
    with db.session() as session:
        assert lifecycle.take_due_for_dispatch(session, relay_after=60) == []  # sent twice: waits 2 × 60 s
    sent_ago(130)
    with db.session() as session:
        assert lifecycle.take_due_for_dispatch(session, relay_after=60) == [sent_recently]
    assert _job(db, sent_recently).dispatch_count == 3
    with db.session() as session:
        lifecycle.mark_undispatched(session, [sent_recently])
    assert _job(db, sent_recently).dispatched_at is None and _job(db, sent_recently).dispatch_count == 2


def test_a_worker_can_give_back_only_a_job_it_holds(db):
    _, (job_id,) = _batch(db, None)
    with db.session() as session:
        lifecycle.claim(session, job_id, "worker-a", 60)
    with db.session() as session:
        assert not lifecycle.release(session, job_id, "worker-b")
        assert lifecycle.release(session, job_id, "worker-a")
    job = _job(db, job_id)
    assert job.status == "queued" and job.attempts == 1 and job.dispatched_at is None


def test_claims_take_owners_in_turn_so_a_backlog_cannot_starve_a_single_image(db):
    with db.session() as session:
        flood = lifecycle.create_batch(session, ensure_user(session, "flood").id,
                                       [lifecycle.NewJob(f"{i}.png", "0" * 64, 1, image_key=f"uploads/{i}.png")
                                        for i in range(40)])
        single = lifecycle.create_batch(session, ensure_user(session, "single").id,
                                        [lifecycle.NewJob("one.png", "0" * 64, 1, image_key="uploads/one.png")])
        flood_ids, single_id = [j.id for j in flood.jobs], single.jobs[0].id
    with db.session() as session:
        first = {j.id for j in lifecycle.claim_more(session, "w", 60, 4)}
    # Each owner's oldest first (the single image comes in the first group), then the flood's next ones.
    assert first == {flood_ids[0], single_id, flood_ids[1], flood_ids[2]}
    with db.session() as session:
        # oldest first within an owner
        assert [j.id for j in lifecycle.claim_more(session, "w", 60, 4)] == flood_ids[3:7]
