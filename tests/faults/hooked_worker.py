"""The real worker with fault hooks for the fault tests: ``celery -A tests.faults.hooked_worker worker``.

The hooks live here, not in production code. Each wraps ``worker.pipeline.process_group`` (the step
right after jobs are claimed) and is switched on by an environment variable of that worker process:

- ``XRAY_TEST_CRASH_SHA256``: a pool process that claims an image with this SHA-256 exits at once, as a
  crashing decoder would.
- ``XRAY_TEST_HOLD_WHEN=PATH``: the first group claimed once the file PATH exists is held: the process
  sleeps with the jobs claimed until it is killed, so they never finish there. The test creates the
  file when it is ready to act, and kills the worker as soon as it logs the hold.
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

from shared.models import Job
from worker import pipeline
from worker.main import app  # noqa: F401  (the Celery app this module stands in for)

log = logging.getLogger("worker.test-hooks")
_real_process_group = pipeline.process_group
_held = False


def _upload_hashes(ctx, group) -> set[str]:
    """The SHA-256 of each uploaded file of the group, as the web recorded it."""
    with ctx.db.session() as session:
        return set(session.scalars(sa.select(Job.content_sha256).where(Job.id.in_([w.job_id for w in group]))))


def _ids(group) -> str:
    return ",".join(str(work.job_id) for work in group)


def process_group(ctx, group):
    global _held
    crash = os.environ.get("XRAY_TEST_CRASH_SHA256")
    if crash and crash in _upload_hashes(ctx, group):
        log.critical("test hook: crashing on %s", _ids(group))
        os._exit(70)
    hold_when = os.environ.get("XRAY_TEST_HOLD_WHEN")
    if hold_when and not _held and Path(hold_when).exists():
        _held = True
        log.warning("test hook: holding %s until killed", _ids(group))
        while True:
            time.sleep(0.1)
    gate = os.environ.get("XRAY_TEST_GATE")
    if gate:
        log.warning("test hook: at the gate with %s", _ids(group))
        while not Path(gate).exists():
            time.sleep(0.02)
        log.warning("test hook: through the gate with %s", _ids(group))
    return _real_process_group(ctx, group)


pipeline.process_group = process_group
