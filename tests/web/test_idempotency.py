"""Safe retries: an upload whose answer was lost, retried with the same Idempotency-Key, makes one batch."""
import datetime as dt
import json
import socket
import urllib.request
import uuid

import pytest
import sqlalchemy as sa

from shared.db.models import Batch, IdempotencyKey, User
from shared.jobs import idempotency
from tests.helpers import api_token, ensure_user, real_xray_bytes, wait_until

BOUNDARY = "idempotency-test"


def _multipart(files, name=None) -> bytes:
    parts = [(f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{n}\"\r\n"
              "Content-Type: image/png\r\n\r\n").encode() + data + b"\r\n" for n, data in files]
    if name:
        parts.append(f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n".encode())
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def _post(base: str, token: str, body: bytes, key: str):
    request = urllib.request.Request(base + "/api/v1/batches", data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Authorization": f"Bearer {token}",
        "Idempotency-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), json.load(answer)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.load(exc)


def _batches_of(pg_url: str, username: str) -> int:
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(Batch).join(User, User.id == Batch.owner_id)
                             .where(User.username == username)).scalar()
    engine.dispose()
    return count


def _answer_kept(pg_url: str, key: str) -> bool:
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        kept = conn.execute(sa.select(IdempotencyKey.response).where(IdempotencyKey.key == key)).scalar()
    engine.dispose()
    return kept is not None


def test_a_retry_after_a_lost_answer_finds_the_first_batch_and_no_second(live_server, pg_url):
    username = f"retry-{uuid.uuid4().hex[:6]}"
    token = api_token(pg_url, username)
    body, key = _multipart(real_xray_bytes(2), name="retried"), str(uuid.uuid4())
    host, port = live_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:  # send the upload, never read the answer
        sock.sendall((f"POST /api/v1/batches HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                      f"Idempotency-Key: {key}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                      f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
    # Its answer is kept with the key once the batch is recorded (and then lost on the closed socket).
    wait_until(lambda: _answer_kept(pg_url, key), 30, message="the first upload's answer to be kept with its key")
    assert _batches_of(pg_url, username) == 1

    status, headers, first = _post(live_server, token, body, key)
    assert status == 200 and headers["Idempotent-Replayed"] == "true"
    status, _, again = _post(live_server, token, body, key)
    assert status == 200 and again == first and headers["Location"] == f"/api/v1/batches/{first['id']}"
    assert _batches_of(pg_url, username) == 1

    other = _multipart(real_xray_bytes(3), name="retried")
    status, _, error = _post(live_server, token, other, key)  # the same key, other files
    assert status == 422 and "different upload" in error["error"]["message"]
    status, _, fresh = _post(live_server, token, body, str(uuid.uuid4()))  # a new key: a new batch
    assert status == 202 and fresh["id"] != first["id"] and _batches_of(pg_url, username) == 2


def test_keys_are_per_owner_busy_while_processing_and_forgotten_after_a_day(db):
    with db.session() as session:
        alice, bob = ensure_user(session, "alice").id, ensure_user(session, "bob").id
    assert idempotency.reserve(db, alice, "k-1", "a" * 64) is None
    with pytest.raises(idempotency.IdempotencyError) as busy:
        idempotency.reserve(db, alice, "k-1", "a" * 64)  # the first request is still running
    assert busy.value.status == 409
    assert idempotency.reserve(db, bob, "k-1", "b" * 64) is None  # another owner's key space
    with db.session() as session:
        batch_id = uuid.uuid4()
        session.add(Batch(id=batch_id, owner_id=alice, job_count=0))
        session.flush()
        idempotency.complete(session, alice, "k-1", batch_id, {"id": str(batch_id)})
    replay = idempotency.reserve(db, alice, "k-1", "a" * 64)
    assert replay.batch_id == batch_id and replay.response == {"id": str(batch_id)}
    for bad in ("", "x" * 201, "spaces are not allowed", "ключ"):
        with pytest.raises(idempotency.IdempotencyError) as refused:
            idempotency.reserve(db, alice, bad, "a" * 64)
        assert refused.value.status == 400
    with db.session() as session:
        session.execute(sa.update(IdempotencyKey).values(created_at=IdempotencyKey.created_at - dt.timedelta(hours=25)))
    assert idempotency.reserve(db, alice, "k-1", "c" * 64) is None  # a day later the key is new again
    with db.session() as session:
        idempotency.release(session, alice, "k-1")
        assert idempotency.purge_expired(session) == 1  # bob's, now a day old
