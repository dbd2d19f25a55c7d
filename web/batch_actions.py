"""What an owner can do to a batch in flight: cancel it (queued jobs stop, running ones finish, nothing is
deleted) and retry failed images (they are queued again from their stored image). Both audited; both
through the owner (another owner's batch is 404)."""
from __future__ import annotations

from shared.db.models import JobStatus
from shared.jobs import lifecycle
from shared.jobs.queue import dispatch
from web import queries
from web.audit import audit
from web.errors import ApiError
from web.ids import not_found, parse_id
from web.owned import owned_batch
from web.services import services


def cancel(batch_id: str) -> int:
    """How many queued images were stopped."""
    with services().db.session() as session:
        batch = owned_batch(session, batch_id)
        stopped = lifecycle.cancel_queued(session, batch.id)
        audit(session, "cancel", "batch", batch.id, detail={"stopped": len(stopped)})
    return len(stopped)


def retry(batch_id: str, job_id: str | None = None) -> int:
    """Queue the batch's failed images (or one of them) again; how many were queued."""
    with services().db.session() as session:
        batch = owned_batch(session, batch_id)
        failed = [j for j in batch.jobs if j.status == JobStatus.FAILED.value and j.image_key]
        if job_id:
            wanted = parse_id(job_id, "job")
            failed = [j for j in failed if j.id == wanted]
            if not failed and not any(j.id == wanted for j in batch.jobs):
                raise not_found("job", job_id)
        waiting, _ = queries.owner_usage(session, batch.owner_id)
        limit = services().settings.quota_queued_jobs
        if failed and waiting + len(failed) > limit:
            raise ApiError(429, f"you have {waiting} images waiting or running; at most {limit} may wait at once: "
                                "retry these when some have finished", headers={"Retry-After": "60"})
        queued = lifecycle.retry_failed(session, [j.id for j in failed])
        audit(session, "retry", "batch", batch.id, detail={"images": len(queued)})
    sent = dispatch(services().celery, queued)
    with services().db.session() as session:
        lifecycle.mark_dispatched(session, sent)
    return len(queued)
