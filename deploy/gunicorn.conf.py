"""gunicorn settings for the web (``gunicorn -c deploy/gunicorn.conf.py "web:create_app()"``).

gunicorn answers some bad requests itself, before Flask sees them (a request line or headers over its
limits, a malformed request): with an HTML page. API clients get the API's JSON error shape instead,
and no response names the server software. Both hooks patch gunicorn 27 (pinned in constraints.txt).
"""
import json

import gunicorn.http.wsgi
import gunicorn.util

MESSAGES = {
    414: "the URL is too long (at most 4094 bytes in the request line)",
    431: "the request's headers are too large (at most 100 fields of 8190 bytes each)",
}


def _write_json_error(sock, status_int, reason, mesg):
    message = MESSAGES.get(status_int) or f"the request could not be read: {mesg or reason}"
    body = json.dumps({"error": {"status": status_int, "message": message}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-Content-Type-Options: nosniff\r\n\r\n").encode("latin-1")
    gunicorn.util.write_nonblock(sock, head + body)


_default_headers = gunicorn.http.wsgi.Response.default_headers


def _headers_without_server(self):
    return [line for line in _default_headers(self) if not line.lower().startswith("server:")]


gunicorn.util.write_error = _write_json_error
gunicorn.http.wsgi.Response.default_headers = _headers_without_server

# Metrics: the workers count requests into files of one folder; the master serves them all on the
# metrics port (XRAY_METRICS_PORT, default 9101), never on the public one. The folder is chosen here,
# before any worker imports prometheus_client (shared/metrics_http.py).
from shared import metrics_http  # noqa: E402
from shared.config import load_settings  # noqa: E402

_settings = load_settings()
_metrics_dir = metrics_http.use_multiprocess_dir(_settings, "web")

if _settings.log_format == "json":
    # gunicorn's own lines (start-up, worker exits, the access log) as JSON objects too. The root logger
    # is left to the app (shared/logs.py adds the ids of the request to its lines).
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": "INFO", "handlers": []},
        "formatters": {"json": {"()": "shared.logs.formatter", "settings": _settings, "process": "web"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "loggers": {name: {"handlers": ["stderr"], "level": "INFO", "propagate": False}
                    for name in ("gunicorn.error", "gunicorn.access")},
    }


def when_ready(server):
    if metrics_http.serve(_settings, "web", metrics_http.registry("web")) is not None:
        server.log.info("metrics on http://%s:%d/metrics", _settings.metrics_host, metrics_http.port(_settings, "web"))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(_metrics_dir))
