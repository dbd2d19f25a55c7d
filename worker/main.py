"""The Celery worker entry point: ``celery -A worker.main worker``.

The parent process checks the model artifact before anything forks and refuses to start on a missing
or inconsistent one, and serves the pool's metrics (XRAY_METRICS_PORT, default 9102). Each pool process
loads the model once, right after the fork (TensorFlow must not be initialised in the parent), and the
task itself only passes the job id on.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import uuid

from celery.signals import (celeryd_after_setup, setup_logging, task_postrun, task_prerun, worker_init,
                            worker_process_init, worker_shutting_down)

from shared.jobs.queue import ANALYSE_TASK, VERIFY_TASK, VERSION_RESULT_TASK, create_celery
from shared.model.manifest import ArtifactError, read_manifest
from shared.ops import logs, metrics_http
from shared.ops.config import load_settings
from worker.backends import prepare_environment

prepare_environment()  # before worker.pipeline imports Keras and its backend
settings = load_settings()
logs.configure(settings, "worker", force=True)  # Celery configures it again with the --loglevel, later
metrics_http.use_multiprocess_dir(settings, "worker")  # before worker.pipeline makes the metrics
from worker import pipeline, runtime, telemetry, verify, version_results  # noqa: E402

log = logging.getLogger("worker")
app = create_celery(settings)
app.conf.update(
    # Loading TensorFlow and the model in a fresh pool process takes longer than Celery's 4 s default.
    worker_proc_alive_timeout=120,
    worker_concurrency=1,
)
if settings.uses_file_broker:
    # The file broker has no broadcast: remote control commands would only log errors.
    app.conf.worker_enable_remote_control = False


@setup_logging.connect
def configure_logging(loglevel=None, **_):
    logs.configure(settings, "worker", level=loglevel or logging.INFO, force=True)


@celeryd_after_setup.connect
def no_banner_in_json_logs(instance=None, **_):
    if settings.log_format == "json":
        instance.quiet = True  # the start-up banner is many lines of plain text on stdout


@worker_init.connect
def refuse_bad_model(**_):
    try:
        manifest = read_manifest(settings.model_dir)
    except ArtifactError as exc:
        log.critical("refusing to start: %s", exc)
        raise SystemExit(f"refusing to start: {exc}") from None
    if not manifest.trained:
        log.warning("serving an UNTRAINED model (%s): predictions are meaningless", manifest.version)
    metrics_http.serve(settings, "worker", metrics_http.registry("worker"))


@worker_shutting_down.connect
def stop_claiming(**_):
    """Warm shutdown: the pool processes finish the groups they hold and claim no more (a task would otherwise
    go on draining the queue for up to XRAY_DRAIN_SECONDS). Celery tells only this, the main process."""
    import billiard.process

    pipeline.stop_draining()  # the solo pool runs tasks in this process
    for child in billiard.process.active_children():
        with contextlib.suppress(OSError):
            os.kill(child.pid, signal.SIGUSR2)


@worker_process_init.connect
def load_model_in_child(**_):
    signal.signal(signal.SIGUSR2, lambda *_: pipeline.stop_draining())  # from stop_claiming, in the parent
    try:
        context = runtime.get_context(settings)
    except Exception as exc:
        # A model that loads but disagrees with its manifest: stop the whole worker rather than
        # acknowledge jobs it cannot run (Celery would only log a failing signal handler).
        log.critical("refusing to serve: %s; stopping the worker", exc)
        os.kill(os.getppid(), signal.SIGTERM)
        raise
    telemetry.pool_process_ready(context.engine.runtime, context.manifest.version)


@task_prerun.connect
def busy(**_):
    telemetry.clock.start()


@task_postrun.connect
def idle(**_):
    telemetry.clock.stop()


@app.task(name=ANALYSE_TASK)
def analyse_job(job_id: str) -> None:
    with logs.ids(job_id=job_id):
        pipeline.process_job(runtime.get_context(settings), uuid.UUID(job_id))


@app.task(name=VERSION_RESULT_TASK)
def run_version_result(result_id: str) -> None:
    """A job's image on another version (shadow traffic, a rerun); never the job's served answer."""
    with logs.ids(job_id=result_id):
        version_results.process(runtime.get_context(settings), uuid.UUID(result_id))


@app.task(name=VERIFY_TASK)
def verify_model(version: str) -> None:
    """The arrival check of a pushed version (worker/verify.py)."""
    verify.verify(runtime.get_context(settings), version)
