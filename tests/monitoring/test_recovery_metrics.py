"""The recovery loop's counters, and the queue as read from the database at scrape time (on Postgres and
on the embedded SQLite)."""
from __future__ import annotations

import datetime as dt

from prometheus_client import REGISTRY
from sqlalchemy import update

from shared.db.models import Job
from shared.jobs import lifecycle
from shared.jobs.queue import create_celery
from shared.ops.config import load_settings
from tests.helpers import ensure_user
from worker.queue_metrics import QueueCollector
from worker.recovery import recover_once


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def queued_batch(db, count: int) -> list:
    with db.session() as session:
        batch = lifecycle.create_batch(session, ensure_user(session).id,
                                       [lifecycle.NewJob(f"x{i}.png", f"{i:064x}", 10, image_key=f"k{i}")
                                        for i in range(count)])
        return [job.id for job in batch.jobs]


def queue_figures(db) -> dict[str, float]:
    return {family.name: family.samples[0].value for family in QueueCollector(db).collect()}


def test_the_queue_depth_and_the_oldest_jobs_age_come_from_the_database(db):
    assert queue_figures(db) == {"xray_queue_depth": 0, "xray_queue_oldest_age_seconds": 0}
    ids = queued_batch(db, 3)
    with db.session() as session:
        session.execute(update(Job).where(Job.id == ids[0])
                        .values(created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=12)))
        lifecycle.claim(session, ids[1], "w1", 60)  # running: no longer waiting
    figures = queue_figures(db)
    assert figures["xray_queue_depth"] == 2
    assert 12 * 60 <= figures["xray_queue_oldest_age_seconds"] < 13 * 60


def test_the_recovery_counters_follow_what_a_round_did(db, tmp_path):
    settings = load_settings(database_url=str(db.engine.url.render_as_string(hide_password=False)), var_dir=tmp_path,
                             broker_url="filesystem://localhost/", max_attempts=2)
    celery = create_celery(settings)
    before = {name: sample(name) for name in ("xray_recovery_relayed_total", "xray_recovery_requeued_total",
                                              "xray_recovery_failed_total")}
    first, second = queued_batch(db, 2)
    recover_once(db, celery, settings)  # both never sent: relayed
    with db.session() as session:
        lifecycle.claim(session, first, "dead-worker", -1)  # a lease that has already run out
    recover_once(db, celery, settings)
    with db.session() as session:
        lifecycle.claim(session, first, "dead-worker", -1)  # its second and last attempt
        lifecycle.claim(session, second, "dead-worker", -1)
    recover_once(db, celery, settings)
    gained = {name: sample(name) - value for name, value in before.items()}
    assert gained["xray_recovery_requeued_total"] == 2  # first (attempt 1), then second (attempt 1)
    assert gained["xray_recovery_failed_total"] == 1  # first, out of attempts
    assert gained["xray_recovery_relayed_total"] == 4  # both at first, then each again once returned
