"""A real Prometheus scrapes a running stack: the web under gunicorn (2 processes), a Celery worker, the
recovery loop, each on its own metrics port, with JSON logs. Images go in through the HTTP API; the job
counter Prometheus sees rises by exactly their number; the dashboard's queries run; the worker stops
with jobs queued and the real alert rule fires."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import sqlalchemy as sa

from shared.db.models import Job
from shared.model.manifest import read_manifest
from shared.ops.metrics import SERVED_BY
from tests.conftest import _new_database
from tests.helpers import (REDIS_URL, REPO, TEST_SECRET_KEY, WorkerProcess, api_token, forget_queue, free_port,
                           post_images, real_xray_bytes, service_env, wait_until)
from tests.monitoring.prometheus import MONITORING, Prometheus, exposed_names, fast_rules, installed, names_in

pytestmark = [pytest.mark.skipif(not installed(), reason="Prometheus is not installed (Debian package prometheus; "
                                                          "tests/run.sh installs it)"),
              pytest.mark.slow]  # starts gunicorn, a worker, the recovery loop and Prometheus
sys.path.insert(0, str(MONITORING))
import dashboard  # noqa: E402

SUFFIXES = ("_total", "_bucket", "_sum", "_count")
NATIVE = ("WARNING: All log messages before absl::InitializeLog()", "I0000 ", "W0000 ", "To enable the following")


class Stack:
    def __init__(self, workdir, database_url: str, model_dir):
        self.workdir, self.database_url = workdir, database_url
        self.ports = {"web": free_port(), "xray-web": free_port(), "xray-worker": free_port(),
                      "xray-recovery": free_port()}
        self.env = service_env(
            DATABASE_URL=database_url, CELERY_BROKER_URL=REDIS_URL, XRAY_QUEUE=f"metrics-{workdir.name}",
            XRAY_VAR_DIR=str(workdir), XRAY_STORAGE_DIR=str(workdir / "storage"), XRAY_MODEL_DIR=str(model_dir),
            XRAY_SECRET_KEY=TEST_SECRET_KEY, XRAY_LOG_FORMAT="json", XRAY_RECOVERY_INTERVAL_SECONDS="0.5",
            XRAY_RATE_LIMIT_STORAGE="memory://")
        self.logs = {}
        self.worker = WorkerProcess({**self.env, "XRAY_METRICS_PORT": str(self.ports["xray-worker"])},
                                    workdir / "worker.log")
        self.recovery = self._start("recovery", [sys.executable, "-m", "worker.recovery"], "xray-recovery")
        self.web = self._start("web", [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind",
                                       f"127.0.0.1:{self.ports['web']}", "--workers", "2", "web:create_app()"],
                               "xray-web")
        self.url = f"http://127.0.0.1:{self.ports['web']}"
        self.engine = sa.create_engine(database_url)
        self.token = api_token(database_url, "metrics-tester")

    def _start(self, name, command, job):
        self.logs[name] = workdir_log = self.workdir / f"{name}.log"
        return subprocess.Popen(command, cwd=REPO, env={**self.env, "XRAY_METRICS_PORT": str(self.ports[job])},
                                stdout=open(workdir_log, "ab"), stderr=subprocess.STDOUT)

    def targets(self) -> dict[str, str]:
        return {job: f"127.0.0.1:{port}" for job, port in self.ports.items() if job.startswith("xray-")}

    def scrape(self, job: str) -> str:
        with urllib.request.urlopen(f"http://{self.targets()[job]}/metrics", timeout=5) as response:
            return response.read().decode()

    def log(self, name: str) -> str:
        return self.worker.log() if name == "worker" else self.logs[name].read_text(errors="replace")

    def finished(self, batch_id: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).where(Job.batch_id == batch_id,
                                                                  Job.status.in_(["succeeded", "failed"]))).scalar()

    def close(self):
        self.worker.stop()
        for process in (self.web, self.recovery):
            process.terminate()
            process.wait(30)
        self.engine.dispose()
        forget_queue(REDIS_URL, self.env["XRAY_QUEUE"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_model):
    database = _new_database()
    url = next(database)
    stack = Stack(tmp_path_factory.mktemp("monitored"), url, tiny_model)
    prometheus = None
    try:
        stack.worker.wait_ready()
        rules = fast_rules(MONITORING / "alerts.yml", stack.workdir / "alerts-fast.yml")
        prometheus = Prometheus(stack.workdir / "prometheus", stack.targets(), rules)
        # Every target up, and the worker's pool process has made its series.
        wait_until(lambda: prometheus.scalar('count(up == 1)') == 3 and prometheus.query("xray_jobs_total"), 90,
                   message=f"the three targets scraped\n{prometheus.query('up')}")
        yield stack, prometheus
    finally:
        if prometheus:
            prometheus.stop()
        stack.close()
        next(database, None)


def submit(stack: Stack, files) -> str:
    status, _, body = post_images(f"{stack.url}/api/v1/batches", files, token=stack.token)
    assert status == 202, body
    return body["id"]


def test_prometheus_sees_the_job_counter_rise_by_the_number_of_images(stack):
    stack, prometheus = stack
    files = [(f"{copy}-{name}", data) for copy in ("a", "b") for name, data in real_xray_bytes(4)]
    before = prometheus.scalar("sum(xray_jobs_total)")
    batch_id = submit(stack, files)
    wait_until(lambda: stack.finished(batch_id) == len(files), 90, message="the batch to finish")
    expected = before + len(files)
    wait_until(lambda: prometheus.scalar("sum(xray_jobs_total)") == expected, 30,
               message=f"Prometheus to see {expected} jobs (it sees {prometheus.query('xray_jobs_total')})")
    result = prometheus.query("xray_jobs_total")
    print(f"\nPrometheus query xray_jobs_total after {len(files)} images (was {before:g} in all):")
    for series in result:
        print(f"  {series['metric']} = {series['value'][1]}")
    assert prometheus.scalar('sum(xray_jobs_total{outcome="succeeded"})') == expected

    # The web under gunicorn: the upload counted once across its processes, by URL rule, with its bytes.
    upload = 'xray_http_requests_total{job="xray-web",route="/api/v1/batches",method="POST",status="202"}'
    # The web is another scrape target: its next scrape may come after the worker's (a race, not a count).
    sent = sum(len(data) for _, data in files)
    wait_until(lambda: prometheus.scalar(f"sum({upload})") == 1
               and prometheus.scalar("sum(xray_upload_bytes_total)") == sent, 30,
               message=f"Prometheus to see the upload ({prometheus.query(upload)})")
    manifest = read_manifest(stack.env["XRAY_MODEL_DIR"])
    info = prometheus.query("xray_worker_info")
    assert [(s["metric"]["runtime"], s["metric"]["model_version"]) for s in info] == [("tensorflow-float32", manifest.version)]
    assert prometheus.scalar("sum(xray_workers_alive)") == 1
    assert prometheus.scalar('sum(xray_stage_seconds_count{stage="model"})') == len(files)
    assert prometheus.scalar("sum(xray_batch_size_sum)") == len(files)
    wait_until(lambda: prometheus.scalar("max(xray_queue_depth)") == 0, 15, message="an empty queue")
    # The pool process worked for part of the last minute (it reports every second).
    busy = wait_until(lambda: prometheus.scalar("avg(xray_worker_busy_ratio)"), 15, message="a busy ratio above 0")
    assert 0 < busy <= 1
    assert prometheus.scalar("time() - max(xray_recovery_last_run_timestamp_seconds)") < 30

    # Metrics only on their own ports: the public port has no /metrics, and no label names a file or an id.
    with pytest.raises(urllib.error.HTTPError) as public:
        urllib.request.urlopen(f"{stack.url}/metrics", timeout=5)
    assert public.value.code == 404
    pages = {job: stack.scrape(job) for job in stack.targets()}
    for job, text in pages.items():
        assert batch_id not in text
        assert not any(name in text for name, _ in files)
        own = {name for name in exposed_names(text) if name.startswith("xray_")}
        assert {name.rsplit("_", 1)[0] if name.endswith(SUFFIXES) else name for name in own} <= \
            SERVED_BY[job.removeprefix("xray-")], f"{job} serves another process's metrics: {sorted(own)}"

    # The dashboard: every query names metrics these processes export, and Prometheus runs each one.
    exposed = set().union(*(exposed_names(text) for text in pages.values()))
    for expr in dashboard.expressions(dashboard.dashboard()):
        assert names_in(expr) <= exposed, f"{expr}: {names_in(expr) - exposed} not exported"
        answer = prometheus.api("query", query=expr)
        assert answer["status"] == "success", (expr, answer)

    # JSON logs: one object per line, the job and batch ids on each job's line, no file name anywhere.
    # Only TensorFlow's native library (not Python logging) writes plain lines to stderr.
    plain = [line for line in stack.log("worker").splitlines() if line.strip() and not line.startswith("{")]
    assert all(line.startswith(NATIVE) for line in plain), plain
    lines = [json.loads(line) for line in stack.log("worker").splitlines() if line.startswith("{")]
    finished = [line for line in lines if line.get("outcome") == "succeeded" and line.get("batch_id") == batch_id]
    assert len(finished) == len(files) and all(line["job_id"] for line in finished)
    in_tasks = [line for line in lines if "job_id" in line]
    assert all(line["process"] == "worker" and line["level"] and line["time"] for line in in_tasks)
    web_lines = [json.loads(line) for line in stack.log("web").splitlines() if line.startswith("{")]
    assert any(line.get("batch_id") == batch_id for line in web_lines)
    for name in ("worker", "web", "recovery"):
        assert not any(file_name in stack.log(name) for file_name, _ in files)


def test_the_no_worker_alert_fires_when_the_worker_stops_with_jobs_queued(stack):
    stack, prometheus = stack
    assert not [a for a in prometheus.alerts() if a["state"] == "firing"]
    stack.worker.stop()
    batch_id = submit(stack, real_xray_bytes(3))
    started = time.monotonic()

    def firing():
        return [a for a in prometheus.alerts() if a["labels"]["alertname"] == "XrayNoWorkerWhileJobsQueued"
                and a["state"] == "firing"]

    alerts = wait_until(firing, 60, message=f"the alert to fire (alerts now {prometheus.alerts()})")
    print(f"\nfiring {time.monotonic() - started:.1f} s after the worker stopped with 3 jobs queued: {alerts[0]}")
    assert prometheus.scalar("max(xray_queue_depth)") == 3
    assert stack.finished(batch_id) == 0
