"""The Celery app and its settings, in one place, so the web enqueues by task name without importing
worker code. Only job ids travel on the queue; Postgres holds every result (task_ignore_result)."""
from __future__ import annotations

import logging
import uuid
from typing import Iterable

from celery import Celery

from shared.ops.config import Settings

ANALYSE_TASK = "xray.analyse_job"
VERSION_RESULT_TASK = "xray.version_result"  # a job's image under another version: shadow traffic, reruns
VERIFY_TASK = "xray.verify_model"  # a pushed model version's arrival check
log = logging.getLogger(__name__)


def create_celery(settings: Settings) -> Celery:
    app = Celery("xray", broker=settings.broker_url, set_as_current=False)
    if settings.uses_file_broker:
        app.conf.broker_transport = "shared.jobs.file_broker:AtomicFilesystemTransport"
    transport_options: dict = {}
    if settings.uses_file_broker:
        folder = settings.broker_folder
        for sub in ("queue", "control", "staging"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        transport_options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
            "staging_folder": str(folder / "staging"),
            "store_processed": False,
            # kombu polls the folder once a second by default: far slower than the model.
            "polling_interval": settings.file_broker_polling_interval,
        }
    else:
        transport_options = {
            # A message not acknowledged within this time is delivered again; it must outlast the
            # hard time limit or long jobs would run twice.
            "visibility_timeout": settings.visibility_timeout,
            "socket_connect_timeout": settings.publish_timeout,
            "socket_timeout": settings.publish_timeout,
        }
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_memory_per_child=settings.worker_max_memory_mb * 1024,  # KiB
        task_soft_time_limit=settings.task_soft_time_limit,
        task_time_limit=settings.task_time_limit,
        worker_hijack_root_logger=False,
        task_default_queue=settings.queue_name,
        # Publishing must not hang an upload when the broker is down: jobs stay queued in the
        # database and are dispatched again later.
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
        # Task events (what `celery worker -E` turns on), so that Flower and `celery events` see every task
        # sent, started and finished; the embedded file broker cannot carry them (no fanout).
        worker_send_task_events=not settings.uses_file_broker,
        task_send_sent_event=not settings.uses_file_broker,
    )
    return app


def dispatch(app: Celery, job_ids: Iterable[uuid.UUID], queue: str | None = None,
             task: str = ANALYSE_TASK) -> list[uuid.UUID]:
    """Enqueue jobs by id (on ``queue``, default the settings' queue); returns those the broker accepted. The
    rest stay queued in the database."""
    sent = []
    try:
        with app.producer_or_acquire() as producer:
            for job_id in job_ids:
                app.send_task(task, args=[str(job_id)], producer=producer, **({"queue": queue} if queue else {}))
                sent.append(job_id)
    except Exception as exc:  # broker down or slow: never fail the upload for it
        log.warning("could not enqueue jobs (%s); they stay queued in the database", exc)
    return sent


def dispatch_by_version(app: Celery, settings: Settings, versions: dict[uuid.UUID, str | None],
                        task: str = ANALYSE_TASK) -> list[uuid.UUID]:
    """Enqueue each id on its version's queue (XRAY_VERSION_QUEUES: a pool of workers serves those versions)."""
    queues: dict[str, list[uuid.UUID]] = {}
    for item, version in versions.items():
        queues.setdefault(settings.queue_for(version), []).append(item)
    sent = []
    for queue, items in queues.items():
        sent += dispatch(app, items, queue=None if queue == settings.queue_name else queue, task=task)
    return sent


def verify_model(app: Celery, version: str) -> bool:
    """Ask a worker to check a pushed version; False when the broker is away (the recovery loop asks again)."""
    try:
        app.send_task(VERIFY_TASK, args=[version])
        return True
    except Exception as exc:
        log.warning("could not enqueue the check of model version %s (%s); the recovery loop will", version, exc)
        return False
