"""Cancel and retry from the batch page go through the batch's owner: another user's batch, or a job of
another batch, is 404 and nothing changes; each action is audited. Real Postgres, Redis and worker."""
import uuid

import pytest
import sqlalchemy as sa

from shared.db.engine import Database
from shared.jobs import lifecycle
from tests.helpers import ensure_user
from tests.web.test_accounts import csrf_of, sign_in


@pytest.fixture()
def app(pg_stack):
    from web import create_app

    return create_app({**pg_stack, "RATELIMIT_KEY_PREFIX": f"t-{uuid.uuid4().hex}", "signin_rate_limit": "1000 per minute"})


def _status(pg_url, job_id) -> tuple[str, str | None]:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        row = conn.execute(sa.text("SELECT status, error FROM jobs WHERE id = :j"), {"j": str(job_id)}).one()
    engine.dispose()
    return row.status, row.error


def test_cancel_and_retry_answer_only_the_owner(app, pg_url):
    owner = sign_in(app, "batch-owner")
    stranger = sign_in(app, "batch-stranger")
    database = Database(pg_url)
    with database.session() as session:
        owner_id = ensure_user(session, "batch-owner").id
        batch = lifecycle.create_batch(session, owner_id, [lifecycle.NewJob("a.png", "0" * 64, 1, image_key="uploads/none.png")])
        batch_id, job_id = batch.id, batch.jobs[0].id
        lifecycle.mark_dispatched(session, [job_id])  # sent long ago: it waits in the queue
    database.engine.dispose()
    form = lambda client: {"csrf_token": csrf_of(client.get("/account").get_data(as_text=True))}

    assert stranger.post(f"/batches/{batch_id}/cancel", data=form(stranger)).status_code == 404
    assert stranger.post(f"/batches/{batch_id}/retry", data=form(stranger)).status_code == 404
    assert _status(pg_url, job_id)[0] == "queued"

    answer = owner.post(f"/batches/{batch_id}/cancel", data=form(owner))
    assert answer.status_code == 303 and answer.headers["Location"] == f"/batches/{batch_id}"
    assert _status(pg_url, job_id) == ("failed", lifecycle.CANCELLED)
    for wrong in ("not-a-uuid", str(uuid.uuid4())):  # a job that is not this batch's
        assert owner.post(f"/batches/{batch_id}/retry", data={**form(owner), "job": wrong}).status_code == 404
    assert _status(pg_url, job_id)[0] == "failed"
    assert owner.post(f"/batches/{batch_id}/retry", data={**form(owner), "job": str(job_id)}).status_code == 303
    assert _status(pg_url, job_id)[0] != "failed" or _status(pg_url, job_id)[1] != lifecycle.CANCELLED

    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        actions = conn.execute(sa.text("SELECT actor, action FROM audit_events WHERE target_id = :b AND action IN"
                                       " ('cancel', 'retry') ORDER BY id"), {"b": str(batch_id)}).all()
    engine.dispose()
    assert [tuple(a) for a in actions] == [("batch-owner", "cancel"), ("batch-owner", "retry")]
