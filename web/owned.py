"""Batches and jobs as the current viewer may see them (their own; an admin's: anyone's, audited at
the call site), for the pages and the API alike. Not theirs or not there: 404, one message."""
from __future__ import annotations

from shared.jobs import deletion
from web import queries
from web.audit import audit
from web.ids import not_found, parse_id
from web.security import current_viewer
from web.services import services


def owned_batch(session, batch_id: str, readers: bool = False):
    batch = queries.get_batch(session, current_viewer(), parse_id(batch_id, "batch"), readers)
    if batch is None:
        raise not_found("batch", batch_id)
    return batch


def owned_job(session, job_id: str, readers: bool = False):
    job = queries.get_job(session, current_viewer(), parse_id(job_id, "job"), readers)
    if job is None:
        raise not_found("job", job_id)
    return job


def readable_batch(session, batch_id: str):
    """The batch for reading and labelling: its owner's, an admin's, or a granted reader's."""
    return owned_batch(session, batch_id, readers=True)


def readable_job(session, job_id: str):
    return owned_job(session, job_id, readers=True)


def delete_owned_batch(batch_id: str) -> deletion.Removed:
    """Rows (audited) in one transaction, then the files."""
    with services().db.session() as session:
        batch = owned_batch(session, batch_id)
        audit(session, "delete", "batch", batch.id, detail={"images": batch.job_count})
        removed = deletion.delete_batch(session, batch)
    deletion.remove_files(services().storage, removed)
    return removed


def delete_owned_job(job_id: str) -> deletion.Removed:
    """One image (its batch too when it was the last one): rows, audited, then the files."""
    with services().db.session() as session:
        job = owned_job(session, job_id)
        audit(session, "delete", "job", job.id)
        removed = deletion.delete_job(session, job)
    deletion.remove_files(services().storage, removed)
    return removed
