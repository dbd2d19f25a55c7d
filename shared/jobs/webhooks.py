"""Webhooks: when a batch is finished, POST a signed JSON summary to the URL the batch (or its owner) named.

- Signature: ``X-Xray-Signature: v1=<hex>``, HMAC-SHA256 with the owner's secret over
  ``"<X-Xray-Timestamp>.<body>"``; the timestamp is in the signed content, so a receiver can refuse
  replays (older than 5 minutes, say). ``X-Xray-Delivery`` names the delivery (the same on every retry).
- Delivery: by the recovery loop, once the batch's last job is final; retried with growing pauses
  (``XRAY_WEBHOOK_FIRST_PAUSE`` 10 s, then 30 s, 90 s, … up to an hour) until a 2xx or
  ``XRAY_WEBHOOK_MAX_ATTEMPTS``; every attempt is
  recorded (status or error, duration) and shown to the owner. A delivery is claimed by pushing its next
  attempt time forward in one conditional update, so several recovery loops never send it twice at once.
- Server-side request forgery: only http and https; the host must resolve to public addresses only
  (no loopback, private, link-local, multicast or reserved ranges) unless ``XRAY_WEBHOOK_ALLOW_PRIVATE``
  is set, checked when the URL is given and again before each attempt; redirects are not followed.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
from concurrent.futures import ThreadPoolExecutor
import logging
import secrets
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session, selectinload

from shared.db.engine import Database
from shared.db.models import Batch, Job, JobStatus, User, WebhookAttempt, WebhookDelivery, utcnow
from shared.model.labels import NO_FINDING

log = logging.getLogger(__name__)
GROWTH, LONGEST_PAUSE = 3.0, 3600.0
SENDING_LEASE = dt.timedelta(seconds=60)  # a claimed delivery is not tried by anyone else for this long


class WebhookError(ValueError):
    """A callback URL that may not be used; the message says why."""


def check_url(url: str, allow_private: bool = False) -> str:
    """The URL, if the service may call it; else WebhookError with the reason."""
    try:
        parts = urlsplit(url or "")
        parts.hostname, parts.port  # noqa: B018 - each raises ValueError on a malformed URL ("http://[")
    except ValueError as exc:
        raise WebhookError(f"the callback URL is malformed ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError("a callback URL must be http:// or https:// with a host name")
    if parts.username or parts.password:
        raise WebhookError("a callback URL must not carry a user name or password")
    if len(url) > 2000:
        raise WebhookError("a callback URL is at most 2000 characters")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)}
    except (OSError, ValueError) as exc:
        raise WebhookError(f"the callback host {parts.hostname!r} cannot be resolved ({exc})") from None
    if not allow_private:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%")[0])
            if not ip.is_global or ip.is_multicast:
                raise WebhookError(f"the callback host {parts.hostname!r} resolves to a non-public address ({ip}); "
                                   "the service only calls public addresses")
    return url


def secret_for(session: Session, user: User) -> str:
    if not user.webhook_secret:
        user.webhook_secret = "whsec_" + secrets.token_urlsafe(32)
    return user.webhook_secret


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def summary(batch: Batch) -> dict:
    """What the receiver learns: ids, counts and each image's findings above threshold (no file names)."""
    counts: dict[str, int] = {}
    for job in batch.jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    return {
        "event": "batch.finished",
        "batch_id": str(batch.id),
        "name": batch.name,
        "total": batch.job_count,
        "counts": {status.value: counts.get(status.value, 0) for status in JobStatus},
        "url": f"/api/v1/batches/{batch.id}",
        "jobs": [{"id": str(job.id), "position": job.position, "status": job.status,
                  "findings_above_threshold": sorted(f.label for f in job.findings if f.positive and f.label != NO_FINDING)}
                 for job in batch.jobs],
    }


def enqueue_finished(session: Session, limit: int = 200) -> int:
    """A pending delivery for every finished batch that has a callback (its own or its owner's) and none yet."""
    unfinished = exists().where(Job.batch_id == Batch.id, Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))
    delivered = exists().where(WebhookDelivery.batch_id == Batch.id)
    rows = session.execute(
        select(Batch.id, Batch.owner_id, Batch.callback_url, User.webhook_url).join(User, User.id == Batch.owner_id)
        .where(~unfinished, ~delivered, (Batch.callback_url.is_not(None)) | (User.webhook_url.is_not(None)))
        .limit(limit)).all()
    now = utcnow()
    for batch_id, owner_id, own, default in rows:
        session.add(WebhookDelivery(batch_id=batch_id, owner_id=owner_id, url=own or default, state="pending",
                                    attempts=0, next_attempt_at=now, created_at=now))
    return len(rows)


def _claim_due(session: Session, limit: int) -> list:
    now = utcnow()
    due = session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.state == "pending",
                                                            WebhookDelivery.next_attempt_at <= now).limit(limit)).all()
    claimed = []
    for delivery_id in due:
        result = session.execute(update(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now)
            .values(next_attempt_at=now + SENDING_LEASE))
        if result.rowcount == 1:
            claimed.append(delivery_id)
    return claimed


def _post(url: str, body: bytes, headers: dict, timeout: float) -> int:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None  # a redirect is an answer, not an instruction: it could point inside the network

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def attempt(db: Database, delivery_id, settings) -> str:
    """One try of one claimed delivery; returns its state afterwards."""
    with db.session() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        batch = session.scalars(select(Batch).where(Batch.id == delivery.batch_id)
                                .options(selectinload(Batch.jobs).selectinload(Job.findings))).one()
        secret = secret_for(session, session.get(User, delivery.owner_id))
        body = json.dumps({**summary(batch), "delivery_id": str(delivery.id)}, separators=(",", ":")).encode()
        url = delivery.url
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": "xray-service-webhook/1",
               "X-Xray-Delivery": str(delivery_id), "X-Xray-Timestamp": timestamp,
               "X-Xray-Signature": sign(secret, timestamp, body)}
    started = time.monotonic()
    status, error = None, None
    try:
        check_url(url, settings.webhook_allow_private)
        status = _post(url, body, headers, settings.webhook_timeout)
    except WebhookError as exc:
        error = str(exc)
    except (OSError, ValueError) as exc:  # refused, reset, timed out, bad URL
        error = f"{type(exc).__name__}: {exc}"
    duration = (time.monotonic() - started) * 1000
    with db.session() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        delivery.attempts += 1
        session.add(WebhookAttempt(delivery_id=delivery_id, at=utcnow(), status_code=status, error=error,
                                   duration_ms=duration))
        if status is not None and 200 <= status < 300:
            delivery.state, delivery.delivered_at = "delivered", utcnow()
        elif delivery.attempts >= settings.webhook_max_attempts:
            delivery.state = "failed"
        else:
            pause = min(LONGEST_PAUSE, settings.webhook_first_pause * GROWTH ** (delivery.attempts - 1))
            delivery.next_attempt_at = utcnow() + dt.timedelta(seconds=pause)
        return delivery.state


SENDERS = 8  # deliveries in flight at once: receivers that never answer hold one sender each, for the timeout


def deliver_due(db: Database, settings, limit: int = 50) -> dict[str, int]:
    """One round of the webhook loop: queue finished batches' deliveries, try those that are due, several at
    once, so that a round takes about one timeout however many receivers hang."""
    with db.session() as session:
        queued = enqueue_finished(session)
    with db.session() as session:
        claimed = _claim_due(session, limit)
    outcomes: dict[str, int] = {"queued": queued}
    if claimed:
        with ThreadPoolExecutor(max_workers=min(SENDERS, len(claimed)), thread_name_prefix="webhook") as senders:
            for state in senders.map(lambda delivery_id: attempt(db, delivery_id, settings), claimed):
                outcomes[state] = outcomes.get(state, 0) + 1
    return outcomes
