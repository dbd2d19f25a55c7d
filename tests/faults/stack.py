"""A whole service stack for fault tests: own Redis, a database, workers, the recovery loop, the web app."""
from __future__ import annotations

import collections
import subprocess
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from shared.db.models import Finding, Job
from tests.helpers import (REPO, TEST_SECRET_KEY, TokenClient, WorkerProcess, api_token, multipart, service_env,
                           wait_until)

# Short limits so a dead worker's job comes back within seconds (the tiny model needs milliseconds).
FAST_RECOVERY = {
    "XRAY_TASK_SOFT_TIME_LIMIT": "4",
    "XRAY_TASK_TIME_LIMIT": "5",
    "XRAY_LEASE_SECONDS": "6",
    "XRAY_RELAY_AFTER_SECONDS": "2",
    "XRAY_RECOVERY_INTERVAL_SECONDS": "0.5",
    "XRAY_DB_RETRY_SECONDS": "60",
    "XRAY_PUBLISH_TIMEOUT": "1",
}


class Stack:
    def __init__(self, workdir: Path, database_url: str, broker_url: str, model_dir: Path, **extra_env: str):
        self.workdir = workdir
        self.database_url = database_url
        self.broker_url = broker_url
        self.queue = f"fault-{uuid.uuid4().hex[:8]}"
        self.storage = workdir / "storage"
        self.env = service_env(
            DATABASE_URL=database_url, CELERY_BROKER_URL=broker_url, XRAY_QUEUE=self.queue, XRAY_VAR_DIR=str(workdir),
            XRAY_STORAGE_DIR=str(self.storage), XRAY_MODEL_DIR=str(model_dir), **{**FAST_RECOVERY, **extra_env},
        )
        self.workers: list[WorkerProcess] = []
        self.recovery: subprocess.Popen | None = None
        self.engine = sa.create_engine(database_url, pool_pre_ping=True)
        from web import create_app

        self.app = create_app({
            "database_url": database_url, "broker_url": broker_url, "queue_name": self.queue,
            "var_dir": workdir, "storage_dir": self.storage, "model_dir": model_dir, "publish_timeout": 1.0,
            "secret_key": TEST_SECRET_KEY, "upload_rate_limit": "10000 per minute",
        })
        self.client = TokenClient(self.app.test_client(), api_token(database_url, "fault-tester"))

    def start_worker(self, wait: bool = True, **hooks: str) -> WorkerProcess:
        """A real worker process with the test hooks of tests/faults/hooked_worker.py (env ``hooks``)."""
        worker = WorkerProcess({**self.env, **hooks}, self.workdir / f"worker{len(self.workers)}.log",
                               app="tests.faults.hooked_worker")
        self.workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    def start_recovery(self) -> None:
        self._recovery_log = open(self.workdir / "recovery.log", "ab")
        self.recovery = subprocess.Popen([sys.executable, "-m", "worker.recovery"], cwd=REPO, env=self.env,
                                         stdout=self._recovery_log, stderr=subprocess.STDOUT)

    def upload(self, files: list[tuple[str, bytes]]):
        started = time.monotonic()
        response = self.client.post("/api/v1/batches", data=multipart(files), content_type="multipart/form-data")
        return response, time.monotonic() - started

    def statuses(self) -> collections.Counter:
        with self.engine.connect() as conn:
            return collections.Counter(dict(conn.execute(sa.select(Job.status, sa.func.count()).group_by(Job.status)).all()))

    def wait_all_final(self, total: int, timeout: float) -> collections.Counter:
        def done():
            counts = self.statuses()
            return counts if counts["succeeded"] + counts["failed"] == total else None

        try:
            return wait_until(done, timeout, interval=0.25, message=f"{total} jobs to finish")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; statuses now {dict(self.statuses())}\n{self.logs()}") from None

    def findings_per_job(self) -> dict:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(Job.id, sa.func.count(Finding.id)).outerjoin(Finding).group_by(Job.id)).all()
        return dict(rows)

    def assert_each_succeeded_job_has_one_result_set(self) -> None:
        per_job = self.findings_per_job()
        with self.engine.connect() as conn:
            succeeded = conn.execute(sa.select(Job.id).where(Job.status == "succeeded")).scalars().all()
            without_maps = conn.execute(sa.select(sa.func.count()).where(Job.status == "succeeded", Job.maps.is_(None))).scalar()
        assert all(per_job[job_id] == 15 for job_id in succeeded), "a job has more or fewer than 15 findings"
        assert without_maps == 0, f"{without_maps} succeeded jobs have no heatmaps"
        assert not (self.storage / "overlays").exists()  # workers write no pictures

    def logs(self) -> str:
        parts = [f"--- {w.log_path.name}\n{w.log()[-3000:]}" for w in self.workers]
        if self.recovery:
            parts.append(f"--- recovery.log\n{(self.workdir / 'recovery.log').read_text()[-2000:]}")
        return "\n".join(parts)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.recovery and self.recovery.poll() is None:
            self.recovery.terminate()
            self.recovery.wait(10)
        self.engine.dispose()
