"""The real worker with fault hooks for the fault tests: ``celery -A tests.faults.hooked_worker worker``.

The hooks live here, not in production code. Each wraps ``worker.pipeline.process_group`` (the step
right after jobs are claimed) and is switched on by an environment variable of that worker process:

- ``XRAY_TEST_CRASH_SHA256``: a pool process that claims an image with this SHA-256 exits at once, as a
  crashing decoder would.
- ``XRAY_TEST_HOLD_AFTER=N``: the first group a pool process claims once N jobs have succeeded is held:
  the process sleeps with the jobs claimed until it is killed (through its soft time limit; if the
  hard limit replaces the process, the new one holds its first group too), so held jobs never finish
  in this worker. N jobs done while more are certainly queued or still arriving means a hold is
  certain; the test kills the worker once it logs one.
- ``XRAY_TEST_HOLD_LOAD=1``: loading a registry version (not the worker's own folder) never ends: the pool
  process logs the version and sleeps until it is killed, as a worker killed while it loads a model.
- ``XRAY_TEST_GATE=PATH``: every group waits, claimed, until the file PATH exists, so a test can act
  (stop Postgres, send SIGTERM) while the worker certainly holds unfinished jobs.

Each hook logs one line with the held job ids (``test hook: ...``), which the tests wait for.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import sqlalchemy as sa
from celery.exceptions import SoftTimeLimitExceeded

from shared.db.models import Job, JobStatus

# isort: off
from worker.main import app  # noqa: F401  (first: it sets up the worker, metrics included, before the rest)
from worker import models, pipeline  # noqa: E402
# isort: on

log = logging.getLogger("worker.test-hooks")
_real_process_group = pipeline.process_group
_held = False


def _upload_hashes(ctx, group) -> set[str]:
    """The SHA-256 of each uploaded file of the group, as the web recorded it."""
    with ctx.db.session() as session:
        return set(session.scalars(sa.select(Job.content_sha256).where(Job.id.in_([w.job_id for w in group]))))


def _succeeded(ctx) -> int:
    with ctx.db.session() as session:
        return session.scalar(sa.select(sa.func.count()).where(Job.status == JobStatus.SUCCEEDED.value))


def _ids(group) -> str:
    return ",".join(str(work.job_id) for work in group)


def process_group(ctx, group, *args, **kwargs):
    global _held
    crash = os.environ.get("XRAY_TEST_CRASH_SHA256")
    if crash and crash in _upload_hashes(ctx, group):
        log.critical("test hook: crashing on %s", _ids(group))
        os._exit(70)
    hold_after = os.environ.get("XRAY_TEST_HOLD_AFTER")
    if hold_after is not None and not _held and _succeeded(ctx) >= int(hold_after):
        _held = True
        log.warning("test hook: holding %s in %d until killed", _ids(group), os.getpid())
        while True:
            try:
                time.sleep(0.1)
            except SoftTimeLimitExceeded:
                pass
    gate = os.environ.get("XRAY_TEST_GATE")
    if gate:
        log.warning("test hook: at the gate with %s", _ids(group))
        while not Path(gate).exists():
            time.sleep(0.02)
        log.warning("test hook: through the gate with %s", _ids(group))
    return _real_process_group(ctx, group, *args, **kwargs)


pipeline.process_group = process_group

_real_load = models.LoadedModels._load


def load(self, version):
    if os.environ.get("XRAY_TEST_HOLD_LOAD") and version != self.folder_version:
        log.warning("test hook: loading %s in %d until killed", version, os.getpid())
        while True:
            try:
                time.sleep(0.1)
            except SoftTimeLimitExceeded:
                pass
    return _real_load(self, version)


models.LoadedModels._load = load
