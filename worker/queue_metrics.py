"""The queue as Postgres sees it, read at scrape time: how many jobs wait and how long the oldest has
waited since its upload. The recovery process serves these (one query per scrape); with several
recovery replicas every one reports the same numbers, so dashboards and alerts take their max().

Postgres, not Redis: Redis may have lost messages, and a job waits until a worker claims it whatever
the broker holds (the KEDA trigger reads the Redis list; this is what a user feels)."""
from __future__ import annotations

import logging

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from shared.db.engine import Database
from shared.db.models import Job, JobStatus, as_utc, utcnow

log = logging.getLogger(__name__)


class QueueCollector:
    def __init__(self, db: Database):
        self.db = db

    def collect(self):
        try:
            with self.db.session() as session:
                depth, oldest = session.execute(select(func.count(), func.min(Job.created_at))
                                                .where(Job.status == JobStatus.QUEUED.value)).one()
        except Exception as exc:  # the database away: this scrape has no queue figures (the alerts see them absent)
            log.warning("metrics: cannot read the queue from the database (%s: %s)", type(exc).__name__, exc)
            return
        age = (utcnow() - as_utc(oldest)).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily("xray_queue_depth", "Jobs queued in the database, not yet claimed by a worker",
                                value=depth)
        yield GaugeMetricFamily("xray_queue_oldest_age_seconds",
                                "Seconds since the oldest queued job was uploaded (0 when none waits)",
                                value=max(0.0, age))
