"""Request metrics, and the ids a request's log lines carry. Metrics: count and time every request by its URL rule (``/api/v1/jobs/<uuid:job_id>``, never
the path with its ids), method and status. Served by gunicorn's master on the metrics port
(deploy/gunicorn.conf.py), never by the app on the public port."""
from __future__ import annotations

import time

from flask import Flask, g, has_request_context, request

from shared.ops import metrics
from shared.ops.logs import IDS

METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def _route() -> str:
    return request.url_rule.rule if request.url_rule is not None else "unmatched"


def init_app(app: Flask) -> None:
    for reason in metrics.REJECT_REASONS:  # every reason's series exists from the start, at 0
        metrics.UPLOADS_REJECTED.labels(reason)

    @app.before_request
    def _start_clock():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response):
        started = g.pop("metrics_started", None)
        route = _route()
        method = request.method if request.method in METHODS else "OTHER"
        metrics.HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
        if started is not None:
            metrics.HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)
        return response


def rejected(reason: str, count: int = 1) -> None:
    """A refused upload (the whole request) or refused files of one, by a reason of metrics.REJECT_REASONS."""
    metrics.UPLOADS_REJECTED.labels(reason).inc(count)


def request_ids() -> dict[str, str]:
    """The job and batch ids of the URL being answered, for the log lines written meanwhile."""
    if not has_request_context() or not request.view_args:
        return {}
    return {key: str(request.view_args[key]) for key in IDS if key in request.view_args}
