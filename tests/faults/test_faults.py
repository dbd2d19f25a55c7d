"""Faults caused for real: killed workers, a stopped and restarted Redis, a restarted Postgres, a job
that crashes its worker, double delivery, and a load run with a worker killed in the middle.
Every server here is the test's own (own Redis port, own database or Postgres cluster)."""
import hashlib
import os
import re
import signal
import subprocess
import time
import uuid

import numpy as np
import pytest
import sqlalchemy as sa

from shared.db.models import Job
from tests.helpers import ensure_user, png_bytes, real_xray_bytes, wait_until

pytestmark = pytest.mark.faults


def _images(count, seed=0, size=96):
    """Distinct small X-ray-like images (real fixtures, shifted), so each has its own content hash."""
    rng = np.random.default_rng(seed)
    base = [np.frombuffer(data, np.uint8) for _, data in real_xray_bytes(4)]
    import cv2

    greys = [cv2.resize(cv2.imdecode(b, cv2.IMREAD_GRAYSCALE), (size, size)) for b in base]
    out = []
    for i in range(count):
        noisy = np.clip(greys[i % 4].astype(int) + rng.integers(-3, 4, greys[0].shape), 0, 255).astype(np.uint8)
        out.append((f"img{i:04d}.png", png_bytes(noisy)))
    return out


OUTAGE_RETRY = re.compile(r"(record \d+ results|claim more): database unreachable \(\w+\); retrying")
# A worker held by a test hook must not be cut short by its own time limits while the test acts.
LONG_LIMITS = {"XRAY_TASK_SOFT_TIME_LIMIT": "60", "XRAY_TASK_TIME_LIMIT": "70", "XRAY_LEASE_SECONDS": "80"}


def _pids_in_group(pgid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout.split()
    return {int(pid) for pid in out}


def _running_on(stack, pids: set[int]) -> set:
    with stack.engine.connect() as conn:
        rows = conn.execute(sa.select(Job.id, Job.worker).where(Job.status == "running")).all()
    return {job_id for job_id, worker in rows if worker and int(worker.rsplit(":", 1)[1]) in pids}


def _hook_lines(worker, phrase: str) -> list[list[str]]:
    marker = f"test hook: {phrase} "
    return [line.split(marker, 1)[1].split() for line in worker.log().splitlines() if marker in line]


def _hooked_jobs(worker, phrase: str, timeout: float = 60) -> set:
    """The job ids a test hook logged as held ('test hook: <phrase> id,id,...'), once it logged any."""
    wait_until(lambda: _hook_lines(worker, phrase), timeout, interval=0.05, message=f"the worker to log '{phrase}'")
    return {uuid.UUID(i) for words in _hook_lines(worker, phrase) for i in words[0].split(",")}


def _kill_group(worker) -> set[int]:
    """SIGKILL the worker's whole process group, wait until none of it is left; returns the pids."""
    group = _pids_in_group(worker.process.pid)
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait(10)
    wait_until(lambda: not _pids_in_group(worker.process.pid), 10, interval=0.01, message="the killed processes to go")
    return group


def _attempts(stack, job_id) -> int:
    with stack.engine.connect() as conn:
        return conn.execute(sa.select(Job.attempts).where(Job.id == job_id)).scalar_one()


def _orphans_of_killed(stack, victim) -> tuple[set, set[int]]:
    """Kill the victim; then decide from its log and the database which jobs it left unfinished: every
    job its hook held (they never finish there, whether or not their lease ran out before the kill) and
    whatever else the database still shows running on its processes. Returns (orphans, its pids)."""
    dead = _kill_group(victim)
    dead |= {int(words[2]) for words in _hook_lines(victim, "holding")}  # a pool process its hard limit replaced
    held = {uuid.UUID(i) for words in _hook_lines(victim, "holding") for i in words[0].split(",")}
    return held | _running_on(stack, dead), dead


def _assert_done_elsewhere(stack, orphans: set, dead: set[int]) -> None:
    """Each job the dead worker held finished once, on a later claim, by another process."""
    with stack.engine.connect() as conn:
        rows = conn.execute(sa.select(Job.status, Job.attempts, Job.worker).where(Job.id.in_(orphans))).all()
    assert len(rows) == len(orphans) and all(status == "succeeded" and attempts >= 2 for status, attempts, _ in rows), rows
    assert not {int(worker.rsplit(":", 1)[1]) for _, _, worker in rows} & dead


def test_1_worker_killed_mid_job_the_job_completes_once_elsewhere(make_stack, report, own_pg_url, own_redis):
    stack = make_stack(own_pg_url, own_redis.url)
    gate = stack.workdir / "gate"
    victim = stack.start_worker(XRAY_TEST_HOLD_AFTER="0")  # holds the first jobs it claims until killed
    survivor = stack.start_worker(XRAY_TEST_GATE=str(gate), **LONG_LIMITS)  # waits, claimed, until the kill
    stack.start_recovery()
    response, _ = stack.upload(_images(60))
    assert response.status_code == 202

    _hooked_jobs(victim, "holding")
    orphans, dead = _orphans_of_killed(stack, victim)
    killed_at = time.monotonic()
    _hooked_jobs(survivor, "at the gate with")  # it held its own jobs meanwhile, so the victim got some
    gate.touch()

    counts = stack.wait_all_final(60, timeout=90)
    assert counts["succeeded"] == 60, stack.logs()
    _assert_done_elsewhere(stack, orphans, dead)
    stack.assert_each_succeeded_job_has_one_result_set()
    report("kill -9 a worker mid-job", 60, counts["succeeded"], 0,
           f"{len(orphans)} held jobs done elsewhere {time.monotonic() - killed_at:.1f} s after the kill (lease 6 s)")


def test_2_uploads_answer_fast_while_redis_is_down_and_complete_after(make_stack, report, own_pg_url, own_redis):
    stack = make_stack(own_pg_url, own_redis.url)
    stack.start_worker()
    stack.start_recovery()
    own_redis.stop()
    images = _images(10, seed=2)
    for i in range(5):
        response, seconds = stack.upload(images[2 * i: 2 * i + 2])
        assert response.status_code == 202 and seconds < 2.0, f"upload {i}: {response.status_code} in {seconds:.2f}s"
    assert stack.statuses() == {"queued": 10}
    own_redis.start()
    restarted = time.monotonic()
    counts = stack.wait_all_final(10, timeout=90)
    assert counts["succeeded"] == 10
    stack.assert_each_succeeded_job_has_one_result_set()
    report("Redis stopped during uploads (5 uploads, each 202 in < 2 s)", 10, counts["succeeded"], 0,
           f"{time.monotonic() - restarted:.1f} s after Redis returned")


def test_3_relay_recovers_jobs_lost_by_a_redis_restart(make_stack, report, own_pg_url, own_redis):
    stack = make_stack(own_pg_url, own_redis.url)
    response, _ = stack.upload(_images(12, seed=3))  # no worker yet: messages wait in Redis
    assert response.status_code == 202
    with stack.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(Job.dispatched_at.is_not(None))).scalar() == 12
    own_redis.stop()
    own_redis.start()  # no persistence: the 12 messages are gone
    stack.start_worker()
    stack.start_recovery()
    started = time.monotonic()
    counts = stack.wait_all_final(12, timeout=90)
    assert counts["succeeded"] == 12
    with stack.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.min(Job.dispatch_count))).scalar() >= 2  # every one was resent
    stack.assert_each_succeeded_job_has_one_result_set()
    report("Redis restarted without persistence, jobs queued", 12, counts["succeeded"], 0,
           f"{time.monotonic() - started:.1f} s after the worker and relay started")


def test_4_postgres_restarted_while_jobs_run(make_stack, report, own_postgres, own_redis):
    stack = make_stack(own_postgres.url, own_redis.url, **LONG_LIMITS)
    gate = stack.workdir / "gate"
    first, second = stack.start_worker(XRAY_TEST_GATE=str(gate)), stack.start_worker(XRAY_TEST_GATE=str(gate))
    stack.start_recovery()
    response, _ = stack.upload(_images(80, seed=4))
    assert response.status_code == 202
    # Both workers hold claimed jobs; they go on only once Postgres is down, so each must write its
    # results into the outage and wait it out.
    held = _hooked_jobs(first, "at the gate with") | _hooked_jobs(second, "at the gate with")
    started = time.monotonic()
    own_postgres.stop("fast")
    gate.touch()
    # Down until each worker has tried to record a result into the outage (and so must wait it out).
    wait_until(lambda: all(OUTAGE_RETRY.search(worker.log()) for worker in (first, second)), 60, interval=0.1,
               message="both workers to meet the outage")
    own_postgres.start()
    downtime = time.monotonic() - started
    restarted = time.monotonic()
    counts = stack.wait_all_final(80, timeout=120)
    assert counts["succeeded"] == 80, stack.logs()
    with stack.engine.connect() as conn:
        attempts = conn.execute(sa.select(Job.attempts).where(Job.id.in_(held))).scalars().all()
    assert attempts == [1] * len(held)  # the workers waited the outage out: nothing was handed back
    stack.assert_each_succeeded_job_has_one_result_set()
    report(f"Postgres down {downtime:.1f} s while jobs run", 80, counts["succeeded"], 0,
           f"{time.monotonic() - restarted:.1f} s after it returned; {len(held)} jobs held across it")


def test_5_a_poison_job_fails_after_the_attempt_limit_and_the_worker_serves_on(make_stack, report, own_pg_url, own_redis):
    images = _images(6, seed=5)
    poison = hashlib.sha256(images[0][1]).hexdigest()
    stack = make_stack(own_pg_url, own_redis.url, XRAY_MAX_ATTEMPTS="2")
    worker = stack.start_worker(XRAY_TEST_CRASH_SHA256=poison)
    stack.start_recovery()
    started = time.monotonic()
    response, _ = stack.upload(images)
    assert response.status_code == 202
    counts = stack.wait_all_final(6, timeout=120)
    assert counts == {"succeeded": 5, "failed": 1}, stack.logs()
    with stack.engine.connect() as conn:
        error, attempts = conn.execute(sa.select(Job.error, Job.attempts).where(Job.status == "failed")).one()
    assert attempts == 2 and "stopped or hung 2 time(s)" in error
    assert worker.process.poll() is None  # the worker itself is still serving
    after, _ = stack.upload(_images(2, seed=55))
    assert stack.wait_all_final(8, timeout=60)["succeeded"] == 7
    report("poison job crashing its worker every time (2 attempts)", 6, "5 + 1 failed with reason", 0,
           f"{time.monotonic() - started:.1f} s until all final")


def test_6_the_same_job_delivered_twice_at_once_gets_one_result_set(make_stack, report, own_pg_url, own_redis):
    from shared.db.engine import Database
    from shared.jobs import lifecycle
    from shared.jobs.queue import ANALYSE_TASK, create_celery
    from shared.jobs.storage import LocalStorage, upload_key
    from shared.ops.config import load_settings

    stack = make_stack(own_pg_url, own_redis.url)
    stack.start_worker()
    stack.start_worker()
    name, data = _images(1, seed=6)[0]
    key = upload_key("png")
    LocalStorage(stack.storage).put(key, data)
    database = Database(own_pg_url)
    with database.session() as session:  # recorded, never sent
        owner = ensure_user(session).id
        new = lifecycle.NewJob(name, "0" * 64, len(data), image_key=key)
        job_id = lifecycle.create_batch(session, owner, [new]).jobs[0].id
    database.engine.dispose()
    celery = create_celery(load_settings(broker_url=own_redis.url, queue_name=stack.queue))
    with celery.producer_or_acquire() as producer:
        for _ in range(2):
            celery.send_task(ANALYSE_TASK, args=[str(job_id)], producer=producer)
    assert stack.wait_all_final(1, timeout=60) == {"succeeded": 1}
    wait_until(lambda: f"job {job_id} is not queued" in stack.logs(), 30, message="the second delivery")
    assert stack.logs().count(f"job {job_id} is not queued") == 1
    assert _attempts(stack, job_id) == 1
    stack.assert_each_succeeded_job_has_one_result_set()
    report("same job delivered twice at once (2 workers)", 1, 1, 0, "-")


def test_7_load_with_a_worker_killed_and_restarted(make_stack, report, own_pg_url, own_redis):
    total = 1000
    stack = make_stack(own_pg_url, own_redis.url)
    victim = stack.start_worker(XRAY_TEST_HOLD_AFTER="200")  # holds the first jobs it claims after 200 are done
    stack.start_worker()
    stack.start_recovery()
    images = _images(total, seed=7, size=64)
    started = time.monotonic()
    for i in range(0, total, 100):
        response, _ = stack.upload(images[i:i + 100])
        assert response.status_code == 202
    _hooked_jobs(victim, "holding", timeout=180)
    orphans, dead = _orphans_of_killed(stack, victim)
    killed_at = time.monotonic()
    done_at_kill = stack.statuses()["succeeded"]
    stack.start_worker(wait=False)  # the replacement, as soon as the victim is gone (as an orchestrator would)

    def orphan_statuses():
        with stack.engine.connect() as conn:
            return set(conn.execute(sa.select(Job.status).where(Job.id.in_(orphans))).scalars())

    wait_until(lambda: "running" not in orphan_statuses(), 60, interval=0.05, message="the killed worker's jobs to return")
    requeued = time.monotonic() - killed_at
    wait_until(lambda: orphan_statuses() == {"succeeded"}, 120, interval=0.1, message="the killed worker's jobs")
    recovered = time.monotonic() - killed_at
    counts = stack.wait_all_final(total, timeout=600)
    finished = time.monotonic()
    assert counts["succeeded"] == total, stack.logs()
    _assert_done_elsewhere(stack, orphans, dead)
    stack.assert_each_succeeded_job_has_one_result_set()
    report(f"load, 2 workers, one killed after {done_at_kill} and restarted; {total / (finished - started):.1f} jobs/s "
           f"end to end ({finished - started:.1f} s)", total, counts["succeeded"], 0,
           f"{len(orphans)} held jobs back in queue {requeued:.1f} s after the kill, done after {recovered:.1f} s "
           "(behind the backlog)")


def test_8_a_worker_asked_to_stop_finishes_or_hands_back_its_work(make_stack, report, own_pg_url, own_redis):
    stack = make_stack(own_pg_url, own_redis.url)
    gate = stack.workdir / "gate"
    leaving = stack.start_worker(XRAY_TEST_GATE=str(gate), **LONG_LIMITS)
    response, _ = stack.upload(_images(80, seed=8))  # no recovery loop: nothing may rely on leases here
    assert response.status_code == 202
    held = _hooked_jobs(leaving, "at the gate with")  # the only worker: it certainly has jobs in hand
    staying = stack.start_worker()
    leaving_pids = _pids_in_group(leaving.process.pid)
    leaving.process.send_signal(signal.SIGTERM)  # what docker stop and Kubernetes send to the main process
    wait_until(lambda: "Warm shutdown" in leaving.log(), 30, interval=0.05, message="the worker to begin stopping")
    gate.touch()
    leaving.process.wait(60)
    counts = stack.wait_all_final(80, timeout=120)
    assert counts["succeeded"] == 80
    with stack.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.max(Job.attempts))).scalar() == 1  # nothing abandoned mid-job
        finishers = set(conn.execute(sa.select(Job.worker).where(Job.id.in_(held))).scalars())
    assert len(finishers) == 1 and int(finishers.pop().rsplit(":", 1)[1]) in leaving_pids
    assert staying.process.poll() is None
    stack.assert_each_succeeded_job_has_one_result_set()
    report("graceful stop (SIGTERM) of one of two workers", 80, counts["succeeded"], 0,
           f"the {len(held)} jobs in hand when asked to stop finished there; none needed a 2nd attempt")
