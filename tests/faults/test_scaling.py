"""Horizontal scaling: two worker processes on one queue share a batch; every job gets exactly one result."""
import pytest
import sqlalchemy as sa

from shared.db.models import Job
from tests.faults.test_faults import _images

pytestmark = pytest.mark.slow  # two real worker processes and their own Redis: ~18 s


def test_two_workers_share_one_batch_and_each_job_has_exactly_one_result(make_stack, own_pg_url, own_redis):
    stack = make_stack(own_pg_url, own_redis.url, XRAY_BATCH_SIZE="4", XRAY_TF_THREADS="1")
    stack.start_worker()
    stack.start_worker()
    response, _ = stack.upload(_images(60, seed=9))
    assert response.status_code == 202
    counts = stack.wait_all_final(60, timeout=120)
    assert counts == {"succeeded": 60}
    stack.assert_each_succeeded_job_has_one_result_set()
    with stack.engine.connect() as conn:
        workers = conn.execute(sa.select(Job.worker, sa.func.count()).group_by(Job.worker)).all()
        attempts = conn.execute(sa.select(sa.func.max(Job.attempts))).scalar()
    assert len(workers) == 2, f"both processes should have taken part: {workers}"
    assert attempts == 1  # nothing ran twice
