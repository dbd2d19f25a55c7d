"""Fairness across owners: one owner's 1,000-image backlog delays another owner's single image by at most
about two forward batches (the worker takes owners in turn), measured with a real worker."""
import time

import pytest
import sqlalchemy as sa

from shared.db.models import Batch, Job, User
from tests.faults.test_faults import LONG_LIMITS, _hooked_jobs, _images
from tests.helpers import TokenClient, api_token, multipart, wait_until

pytestmark = pytest.mark.slow
BATCH = 16


def _finished(stack, username: str) -> list[tuple]:
    with stack.engine.connect() as conn:
        return conn.execute(sa.select(Job.id, Job.finished_at).join(Batch).join(User, User.id == Batch.owner_id)
                            .where(User.username == username, Job.status == "succeeded")).all()


def test_a_single_image_waits_about_two_batches_behind_another_owners_backlog(make_stack, report, own_pg_url, own_redis):
    stack = make_stack(own_pg_url, own_redis.url, XRAY_BATCH_SIZE=str(BATCH), **LONG_LIMITS)
    gate = stack.workdir / "gate"
    worker = stack.start_worker(XRAY_TEST_GATE=str(gate))  # holds its first group until both owners have sent
    flood = stack.client  # the stack's own user
    images = _images(1000, seed=11, size=64)
    for i in range(0, 1000, 100):
        assert flood.post("/api/v1/batches", data=multipart(images[i:i + 100]), content_type="multipart/form-data").status_code == 202
    _hooked_jobs(worker, "at the gate with")
    single = TokenClient(stack.client.client, api_token(own_pg_url, "single"))
    assert single.post("/api/v1/batches", data=multipart(_images(1, seed=12)), content_type="multipart/form-data").status_code == 202
    opened = time.monotonic()
    gate.touch()
    wait_until(lambda: _finished(stack, "single"), 60, interval=0.05, message="the single image")
    waited = time.monotonic() - opened
    (_, single_done), = _finished(stack, "single")
    ahead = sum(1 for _, done in _finished(stack, "fault-tester") if done <= single_done)
    queued_behind = 1000 - ahead
    assert ahead <= 2 * BATCH, f"{ahead} of the backlog's images finished before the single image"
    assert queued_behind >= 900  # it did not wait for the backlog
    counts = stack.wait_all_final(1001, timeout=300)
    assert counts["succeeded"] == 1001
    report("one owner's 1,000-image backlog, another owner's single image (1 worker, batch 16)", 1001,
           counts["succeeded"], 0, f"single image done {waited:.2f} s after work began, behind {ahead} of the backlog "
           f"({ahead / BATCH:.1f} batches; first come, first served: {1000})")
