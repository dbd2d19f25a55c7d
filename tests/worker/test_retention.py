"""The retention limit, enforced by the recovery loop: old batches go with every row and file they had."""
import datetime as dt
import uuid

import sqlalchemy as sa

from shared.db.engine import Database
from shared.db.models import AuditEvent, Batch, Finding, Job, utcnow
from shared.jobs import lifecycle
from shared.jobs.storage import LocalStorage, overlay_key, upload_key
from shared.ops.config import load_settings
from tests.helpers import ensure_user
from worker.recovery import purge_expired


def _batch(db, storage, owner, age_days: float, status: str = "succeeded") -> tuple[uuid.UUID, list[str]]:
    key = upload_key("png")
    storage.put(key, b"pixels")
    with db.session() as session:
        new = lifecycle.NewJob("a.png", "0" * 64, 6, image_key=key, stored_bytes=6)
        batch = lifecycle.create_batch(session, owner, [new])
        job = batch.jobs[0]
        batch.created_at = utcnow() - dt.timedelta(days=age_days)
        job.status = status
        session.add(Finding(job_id=job.id, label="Mass", probability=0.5, threshold=0.5, positive=True,
                            overlay_key=overlay_key(job.id, "Mass")))
        batch_id, job_id = batch.id, job.id
    storage.put(overlay_key(job_id, "Mass"), b"overlay")
    return batch_id, [key, overlay_key(job_id, "Mass")]


def test_batches_past_the_limit_are_deleted_with_their_files_and_the_rest_stay(own_pg_url, tmp_path):
    db, storage = Database(own_pg_url), LocalStorage(tmp_path / "storage")
    settings = load_settings(database_url=own_pg_url, storage_dir=tmp_path / "storage", retention_days=30)
    with db.session() as session:
        owner = ensure_user(session).id
    old, old_files = _batch(db, storage, owner, 31)
    recent, recent_files = _batch(db, storage, owner, 29)
    old_but_running, running_files = _batch(db, storage, owner, 40, status="running")

    removed = purge_expired(db, storage, settings)

    assert (removed.batches, removed.jobs) == (1, 1)
    with db.session() as session:
        assert session.get(Batch, old) is None
        assert session.scalar(sa.select(sa.func.count()).select_from(Job).where(Job.batch_id == old)) == 0
        assert session.get(Batch, recent) is not None and session.get(Batch, old_but_running) is not None
        event = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "retention_purge")).one()
        assert event.detail == {"batches": 1, "jobs": 1, "older_than_days": 30}
    assert not any(storage.exists(k) for k in old_files)
    assert not (tmp_path / "storage" / "overlays" / old_files[1].split("/")[1]).exists()
    assert all(storage.exists(k) for k in recent_files + running_files)
    assert purge_expired(db, storage, settings.replace(retention_days=0)).batches == 0  # 0 keeps everything
    db.engine.dispose()
