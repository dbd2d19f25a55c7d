"""The recovery loop: return jobs whose lease ran out, (re)send jobs that sit queued in Postgres (and shadow
or rerun results, and pushed model versions still waiting for their check), evaluate labelled batches whose
labels changed (shared/truth/evaluate.py), delete batches past the retention limit
(``XRAY_RETENTION_DAYS``) with their files, and forget idempotency keys older than a day and browser
sessions that have ended. Beside it, in a thread of the same process, the webhook loop delivers "batch
finished" webhooks (shared/jobs/webhooks.py): a receiver that never answers holds only that loop (for
XRAY_WEBHOOK_TIMEOUT), never the return of a lease.

Redis only carries "please work on job X"; Postgres knows every job. So a job whose message was lost
(broker down at upload, broker restarted without persistence) or whose worker died is found again here.
Runs as its own process (``xray-recovery``); several copies can run at once: every step is a
conditional update or a SKIP LOCKED pick, so none does another's work. No TensorFlow here.
"""
from __future__ import annotations

import logging
import threading
import time

from celery import Celery

from shared.auth import audit, sessions
from shared.db.engine import Database
from shared.jobs import deletion, idempotency, lifecycle, version_results, webhooks
from shared.jobs.queue import VERSION_RESULT_TASK, create_celery, dispatch, dispatch_by_version, verify_model
from shared.model import registry
from shared.jobs.storage import LocalStorage
from shared.ops import metrics, metrics_http
from shared.ops.config import Settings
from shared.ops.loops import run_until_stopped
from shared.truth.evaluate import evaluate_due
from worker.queue_metrics import QueueCollector

log = logging.getLogger("recovery")


def recover_once(db: Database, celery: Celery, settings: Settings) -> dict[str, int]:
    with db.session() as session:
        requeued, failed = lifecycle.return_expired(session, settings.max_attempts)
    for job_id in failed:
        log.warning("job %s failed after %d attempts", job_id, settings.max_attempts, extra={"job_id": str(job_id)})
    with db.session() as session:
        due = lifecycle.take_due_for_dispatch(session, settings.relay_after_seconds)
        routes = lifecycle.versions_of(session, due) if due and settings.version_queues else {}
    sent = (dispatch_by_version(celery, settings, {job_id: routes.get(job_id) for job_id in due}) if routes
            else dispatch(celery, due) if due else [])
    unsent = [job_id for job_id in due if job_id not in set(sent)]
    if unsent:
        with db.session() as session:
            lifecycle.mark_undispatched(session, unsent)
    counts = {"requeued": len(requeued), "failed": len(failed), "dispatched": len(sent), "unsent": len(unsent)}
    metrics.RECOVERY_REQUEUED.inc(len(requeued))
    metrics.RECOVERY_FAILED.inc(len(failed))
    metrics.RECOVERY_RELAYED.inc(len(sent))
    with db.session() as session:
        results = version_results.recover(session, settings.relay_after_seconds, settings.max_attempts)
    if results:
        counts["version results sent"] = len(dispatch_by_version(celery, settings, results, task=VERSION_RESULT_TASK))
    with db.session() as session:
        waiting = registry.awaiting_check(session, settings.relay_after_seconds)
    for version in waiting:  # pushed while the broker was away, or the worker checking it died
        verify_model(celery, version)
    # Labelled batches left due (labels added after the last job, or a worker that could not evaluate).
    counts["evaluated"] = len(evaluate_due(db))
    if any(counts.values()):
        log.info("recovery: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts


def purge_expired(db: Database, storage: LocalStorage, settings: Settings) -> deletion.Removed:
    """Batches older than the retention limit, all of whose jobs are final: rows, then files."""
    total = deletion.Removed()
    if settings.retention_days <= 0:
        return total
    while True:
        with db.session() as session:
            removed = deletion.Removed()
            for batch in deletion.expired_batches(session, settings.retention_days):
                removed.add(deletion.delete_batch(session, batch))
            if removed.batches:
                audit.record(session, "retention_purge", actor="recovery", detail={
                    "batches": removed.batches, "jobs": removed.jobs, "older_than_days": settings.retention_days})
        if not removed.batches:
            return total
        deletion.remove_files(storage, removed)
        total.add(removed)
        log.info("retention: deleted %d batches (%d images) older than %g days", removed.batches, removed.jobs,
                 settings.retention_days)


RETENTION_EVERY_SECONDS = 60.0


def deliver_webhooks(db: Database, settings: Settings, stop: threading.Event) -> None:
    """The webhook loop, every recovery interval: its own thread, so its waits are its own."""
    while not stop.is_set():
        try:
            counts = webhooks.deliver_due(db, settings)
            if any(n for state, n in counts.items()):
                log.info("webhooks: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
        except Exception as exc:  # Postgres away: try again next round
            log.warning("webhook round failed (%s: %s); retrying", type(exc).__name__, exc)
        stop.wait(settings.recovery_interval_seconds)


def run(settings: Settings, stop: threading.Event) -> None:
    db, celery, storage = Database(settings.database_url), create_celery(settings), LocalStorage(settings.storage_dir)
    log.info("recovery loop every %.1f s (lease %d s, resend after %.0f s, %d attempts, retention %g days)",
             settings.recovery_interval_seconds, settings.lease, settings.relay_after_seconds, settings.max_attempts,
             settings.retention_days)
    last_purge = -RETENTION_EVERY_SECONDS
    metrics_http.serve(settings, "recovery", metrics_http.registry("recovery", QueueCollector(db)))
    threading.Thread(target=deliver_webhooks, args=(db, settings, stop), name="webhooks", daemon=True).start()
    while not stop.is_set():
        try:
            recover_once(db, celery, settings)
            if time.monotonic() - last_purge >= RETENTION_EVERY_SECONDS:
                purge_expired(db, storage, settings)
                with db.session() as session:
                    idempotency.purge_expired(session)
                    sessions.purge(session, settings.session_idle, settings.session_lifetime)
                last_purge = time.monotonic()
            metrics.RECOVERY_LAST_RUN.set_to_current_time()
        except Exception as exc:  # Postgres or Redis away: try again next round
            log.warning("recovery round failed (%s: %s); retrying", type(exc).__name__, exc)
        stop.wait(settings.recovery_interval_seconds)


def main() -> None:
    run_until_stopped(run, "recovery")


if __name__ == "__main__":
    main()
