"""Webhooks: a signed "batch finished" POST, retried by the recovery loop after a failure until exactly one
success, every attempt recorded and visible; and the callback URLs the service refuses to call."""
import hashlib
import hmac
import http.server
import json
import socket
import threading
import time

import pytest

from shared.db.engine import Database
from shared.jobs import webhooks
from shared.ops.config import load_settings
from tests.helpers import TokenClient, api_token, free_port, multipart, real_xray_bytes, wait_until
from tests.web.test_api import wait_for_batch
from web import create_app


class Receiver:
    """A test receiver on 127.0.0.1: answers 500 to the first delivery, 200 afterwards; keeps every request."""

    def __init__(self, failures: int = 1):
        self.requests, self.failures = [], failures
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body, time.time()))
                status = 500 if len(receiver.requests) <= receiver.failures else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()


@pytest.fixture()
def receiver():
    server = Receiver()
    yield server
    server.close()


def test_a_finished_batch_is_posted_signed_retried_after_a_500_and_succeeds_exactly_once(pg_app, pg_stack, pg_url, receiver):
    client = TokenClient(pg_app.test_client(), api_token(pg_url, "hooked"))
    settings = load_settings(**{k: v for k, v in pg_stack.items() if k != "secret_key"}, webhook_allow_private=True,
                             webhook_first_pause=0.5)
    refused = client.post("/api/v1/batches", data={**multipart(real_xray_bytes(1)), "callback_url": receiver.url},
                          content_type="multipart/form-data")
    assert refused.status_code == 400 and "non-public address" in refused.get_json()["error"]["message"]

    app = create_app({**pg_stack, "webhook_allow_private": True})
    client = TokenClient(app.test_client(), client.token)
    created = client.post("/api/v1/batches", data={**multipart(real_xray_bytes(2)), "callback_url": receiver.url},
                          content_type="multipart/form-data")
    assert created.status_code == 202
    batch = wait_for_batch(client, created.headers["Location"])
    db = Database(pg_url)

    def delivered():
        webhooks.deliver_due(db, settings)  # one round of the webhook loop
        return len(receiver.requests) >= 2

    wait_until(delivered, 30, interval=0.2, message="the webhook to be retried and delivered")
    for _ in range(5):  # later rounds send nothing more
        webhooks.deliver_due(db, settings)
        time.sleep(0.2)
    assert len(receiver.requests) == 2
    secret = client.get("/api/v1/account/webhook").get_json()["secret"]
    for headers, body, received in receiver.requests:
        expected = hmac.new(secret.encode(), headers["X-Xray-Timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Xray-Signature"], f"v1={expected}")
        assert abs(received - int(headers["X-Xray-Timestamp"])) < 30  # fresh: a receiver can refuse replays
    payload = json.loads(receiver.requests[1][1])
    assert payload["event"] == "batch.finished" and payload["batch_id"] == batch["id"] and payload["counts"]["succeeded"] == 2
    assert len({h["X-Xray-Delivery"] for h, _, _ in receiver.requests}) == 1  # one delivery, two attempts
    assert "png" not in receiver.requests[0][1].decode()  # no file names leave the service

    log = client.get(batch["webhooks_url"]).get_json()["deliveries"]
    assert len(log) == 1 and log[0]["state"] == "delivered" and log[0]["attempts"] == 2
    assert [a["status_code"] for a in log[0]["attempt_log"]] == [500, 200]
    db.engine.dispose()


def test_the_owner_default_callback_and_its_checks(pg_app, pg_url):
    client = TokenClient(pg_app.test_client(), api_token(pg_url, "defaults"))
    assert client.get("/api/v1/account/webhook").get_json()["url"] is None
    for bad, reason in (("ftp://example.org/x", "http:// or https://"), ("http://127.0.0.1:9/x", "non-public"),
                        ("http://10.1.2.3/x", "non-public"), ("http://[::1]/x", "non-public"),
                        ("https://user:pw@93.184.216.34/x", "user name"), ("http://169.254.169.254/latest", "non-public")):
        answer = client.open("/api/v1/account/webhook", method="PUT", json={"url": bad})
        assert answer.status_code == 400 and reason in answer.get_json()["error"]["message"], bad
    answer = client.open("/api/v1/account/webhook", method="PUT", json={"url": "https://93.184.216.34/hook"})
    assert answer.status_code == 200 and answer.get_json()["url"] == "https://93.184.216.34/hook"
    assert answer.get_json()["secret"].startswith("whsec_")
    assert client.open("/api/v1/account/webhook", method="PUT", json={"url": None}).get_json()["url"] is None


def test_signatures_change_with_the_secret_the_time_and_the_body():
    base = webhooks.sign("whsec_a", "1700000000", b"{}")
    assert base.startswith("v1=") and len(base) == 67
    assert {webhooks.sign("whsec_b", "1700000000", b"{}"), webhooks.sign("whsec_a", "1700000001", b"{}"),
            webhooks.sign("whsec_a", "1700000000", b"{ }")}.isdisjoint({base})


class Silent:
    """A receiver that takes the connection and never answers (a hung server): it only counts callers."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/hook"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.connections.append(self.socket.accept()[0])
            except OSError:
                return

    def close(self):
        self.socket.close()
        for connection in self.connections:
            connection.close()


def test_five_receivers_that_never_answer_do_not_delay_lease_recovery(pg_stack, pg_url):
    """Before, the recovery loop posted webhooks itself, one after another: five hung receivers held a round
    for five timeouts (about 50 s by default, 500 s at worst) and no lease came back meanwhile. Now webhooks
    have their own loop, sending several at once: the recovery rounds go on every interval, and a job whose
    worker died is dealt with at once, while all five receivers are still being waited for."""
    from sqlalchemy import create_engine, text

    from shared.ops import metrics
    from worker import recovery

    settings = load_settings(**{k: v for k, v in pg_stack.items() if k != "secret_key"}, webhook_allow_private=True,
                             webhook_timeout=10.0, recovery_interval_seconds=0.5, metrics_port=0, max_attempts=3)
    app = create_app({**pg_stack, "webhook_allow_private": True})
    client = TokenClient(app.test_client(), api_token(pg_url, "hung-receivers"))
    silent = [Silent() for _ in range(5)]
    stop = threading.Event()
    engine = create_engine(pg_url)
    try:
        for receiver in silent:
            created = client.post("/api/v1/batches", data={**multipart(real_xray_bytes(1)),
                                                           "callback_url": receiver.url},
                                  content_type="multipart/form-data")
            wait_for_batch(client, created.headers["Location"])
        plain = client.post("/api/v1/batches", data=multipart(real_xray_bytes(1)), content_type="multipart/form-data")
        job_id = wait_for_batch(client, plain.headers["Location"])["jobs"][0]["id"]
        with engine.begin() as connection:  # its worker "died" holding it, on its last attempt
            connection.execute(text("UPDATE jobs SET status = 'running', attempts = 3, "
                                    "lease_expires_at = now() - interval '1 minute' WHERE id = :id"), {"id": job_id})

        def status() -> str:
            with engine.connect() as connection:
                return connection.execute(text("SELECT status FROM jobs WHERE id = :id"), {"id": job_id}).scalar_one()

        rounds = []
        started = time.monotonic()
        threading.Thread(target=recovery.run, args=(settings, stop), daemon=True).start()
        wait_until(lambda: all(receiver.connections for receiver in silent), 5, interval=0.05,
                   message="all five receivers called at once")
        wait_until(lambda: status() == "failed", 5, interval=0.05, message="the dead worker's job dealt with")
        recovered = time.monotonic() - started

        def another_round() -> bool:
            rounds.append(metrics.RECOVERY_LAST_RUN._value.get())
            return len(set(rounds)) >= 4

        wait_until(another_round, 5, interval=0.1, message="recovery rounds going on")
        waited = time.monotonic() - started
        assert waited < settings.webhook_timeout  # all of it while the five receivers still hang
        print(f"5 receivers that never answer (timeout {settings.webhook_timeout:.0f} s): the expired lease dealt with "
              f"after {recovered:.2f} s, {len(set(rounds))} recovery rounds completed in {waited:.2f} s")
    finally:
        stop.set()
        for receiver in silent:
            receiver.close()
        engine.dispose()
