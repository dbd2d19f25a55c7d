"""The nothing-lost guarantees across model versions (the registry, worker/models.py): a worker killed while
it loads a version loses no job, and promoting a new default in the middle of a 1,000-image run gives each
job exactly one result, on the version its batch resolved when it was submitted."""
import io
import time
import uuid

import pytest
import sqlalchemy as sa

from shared.db.models import Batch, Job
from shared.model.registry import pack
from tests.faults.test_faults import LONG_LIMITS, _hook_lines, _images, _kill_group
from tests.helpers import TokenClient, api_token, wait_until

pytestmark = pytest.mark.faults
# Registry mode: the workers' own folder is only the fallback; versions come from the registry. The load of a
# version happens inside the first task that needs it, so the time limits must leave room for it.
REGISTRY_MODE = {"XRAY_MODEL_PINNED": "0", **LONG_LIMITS}


def _model(tmp_path, name):
    from training.untrained import init_model

    init_model("small-cnn", 64, "none", tmp_path / name, name=name)
    return tmp_path / name


def _admin(stack) -> TokenClient:
    return TokenClient(stack.app.test_client(), api_token(stack.database_url, "fault-admin", role="admin"))


def _push_ready(stack, folder) -> str:
    admin = _admin(stack)
    answer = admin.post("/api/v1/models", data={"artifact": (io.BytesIO(pack(folder)), "artifact.tar.gz")},
                        content_type="multipart/form-data")
    assert answer.status_code == 202, answer.get_json()
    version = answer.get_json()["version"]
    status = wait_until(lambda: (lambda s: s if s != "verifying" else None)(
        admin.get(f"/api/v1/models/versions/{version}").get_json()["status"]), 180, message=f"the check of {version}")
    assert status == "ready"
    return version


def _move_default(stack, version) -> None:
    answer = _admin(stack).open("/api/v1/models/aliases/default", method="PUT", json={"version": version})
    assert answer.status_code == 200, answer.get_json()


def _jobs(stack) -> list:
    with stack.engine.connect() as conn:
        return conn.execute(sa.select(Job.id, Job.status, Job.attempts, Job.model_version, Batch.model_version,
                                      Batch.created_at).join(Batch, Batch.id == Job.batch_id)).all()


def test_9_a_worker_killed_while_it_loads_a_version_loses_no_job(make_stack, report, own_pg_url, own_redis, tmp_path):
    total = 40
    stack = make_stack(own_pg_url, own_redis.url, **REGISTRY_MODE)
    victim = stack.start_worker(XRAY_TEST_HOLD_LOAD="1")  # its load of any registry version never ends
    version = _push_ready(stack, _model(tmp_path, "pushed"))
    _move_default(stack, version)
    response, _ = stack.upload(_images(total, seed=9, size=64))
    assert response.status_code == 202
    wait_until(lambda: _hook_lines(victim, "loading"), 120, interval=0.05, message="the victim to start loading")
    _kill_group(victim)
    killed_at = time.monotonic()
    stack.start_worker(wait=False)  # the replacement loads the version for real
    stack.start_recovery()  # resends the jobs whose messages died with the victim
    counts = stack.wait_all_final(total, timeout=300)
    recovered = time.monotonic() - killed_at
    assert counts["succeeded"] == total, stack.logs()
    rows = _jobs(stack)
    assert {row.model_version for row in rows} == {version}
    assert all(row.attempts == 1 for row in rows)  # a job is claimed only once its version is loaded
    stack.assert_each_succeeded_job_has_one_result_set()
    report("worker killed while loading a model version", total, counts["succeeded"], 0,
           f"all done on the replacement {recovered:.1f} s after the kill (its own load included)")


def test_10_promoting_during_a_1000_image_run_keeps_each_batch_on_its_version(make_stack, report, own_pg_url,
                                                                             own_redis, tmp_path):
    total, per_batch = 1000, 100
    stack = make_stack(own_pg_url, own_redis.url, **REGISTRY_MODE)
    # Both workers hold their claimed groups at a gate until the promotion: a draining worker can otherwise
    # finish the first half before the second is uploaded (it did once, with both cores busy).
    gate = tmp_path / "gate"
    stack.start_worker(XRAY_TEST_GATE=str(gate))
    stack.start_worker(XRAY_TEST_GATE=str(gate))
    stack.start_recovery()
    before, after = _push_ready(stack, _model(tmp_path, "before")), _push_ready(stack, _model(tmp_path, "after"))
    _move_default(stack, before)
    images = _images(total, seed=10, size=64)
    started = time.monotonic()
    batches = []
    for i in range(0, total, per_batch):
        if i == total // 2:
            _move_default(stack, after)  # the promotion, while the first half is still running
            running_at_promotion = stack.statuses()
            gate.touch()
        response, _ = stack.upload(images[i:i + per_batch])
        assert response.status_code == 202
        batches.append(response.get_json())
    counts = stack.wait_all_final(total, timeout=900)
    elapsed = time.monotonic() - started
    assert counts["succeeded"] == total, stack.logs()
    stack.assert_each_succeeded_job_has_one_result_set()
    assert [b["model_version"] for b in batches] == [before] * 5 + [after] * 5
    rows = _jobs(stack)
    assert len(rows) == total and all(row.model_version == row[4] for row in rows), "a job ran on another version"
    by_batch = {uuid.UUID(b["id"]): b["model_version"] for b in batches}
    with stack.engine.connect() as conn:
        per_job_batch = dict(conn.execute(sa.select(Job.id, Job.batch_id)).all())
    assert all(row.model_version == by_batch[per_job_batch[row.id]] for row in rows)
    assert running_at_promotion["succeeded"] < total // 2, "the promotion came after the first half had finished"
    report(f"default promoted mid-run ({running_at_promotion['succeeded']} of the first {total // 2} done); "
           f"2 workers, {total / elapsed:.1f} jobs/s", total, counts["succeeded"], 0,
           "each batch on the version it resolved at submit")
