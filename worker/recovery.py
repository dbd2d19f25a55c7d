"""The recovery loop: return jobs whose lease ran out, and (re)send jobs that sit queued in Postgres.

Redis only carries "please work on job X"; Postgres knows every job. So a job whose message was lost
(broker down at upload, broker restarted without persistence) or whose worker died is found again here.
Runs as its own process (``xray-recovery``); several copies can run at once: every step is a
conditional update or a SKIP LOCKED pick, so none does another's work. No TensorFlow here.
"""
from __future__ import annotations

import logging
import signal
import threading

from celery import Celery

from shared import jobs
from shared.config import Settings, load_settings
from shared.db import Database
from shared.queue import create_celery, dispatch

log = logging.getLogger("recovery")


def recover_once(db: Database, celery: Celery, settings: Settings) -> dict[str, int]:
    with db.session() as session:
        requeued, failed = jobs.return_expired(session, settings.max_attempts)
    for job_id in failed:
        log.warning("job %s failed after %d attempts", job_id, settings.max_attempts)
    with db.session() as session:
        due = jobs.take_due_for_dispatch(session, settings.relay_after_seconds)
    sent = dispatch(celery, due) if due else []
    unsent = [job_id for job_id in due if job_id not in set(sent)]
    if unsent:
        with db.session() as session:
            jobs.mark_undispatched(session, unsent)
    counts = {"requeued": len(requeued), "failed": len(failed), "dispatched": len(sent), "unsent": len(unsent)}
    if any(counts.values()):
        log.info("recovery: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts


def run(settings: Settings, stop: threading.Event) -> None:
    db, celery = Database(settings.database_url), create_celery(settings)
    log.info("recovery loop every %.1f s (lease %d s, resend after %.0f s, %d attempts)",
             settings.recovery_interval_seconds, settings.lease, settings.relay_after_seconds, settings.max_attempts)
    while not stop.is_set():
        try:
            recover_once(db, celery, settings)
        except Exception as exc:  # Postgres or Redis away: try again next round
            log.warning("recovery round failed (%s: %s); retrying", type(exc).__name__, exc)
        stop.wait(settings.recovery_interval_seconds)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run(load_settings(), stop)


if __name__ == "__main__":
    main()
