"""gunicorn settings for the web (``gunicorn -c deploy/gunicorn.conf.py "web:create_app()"``).

gunicorn answers some bad requests itself, before Flask sees them (a request line or headers over its
limits, a malformed request): with an HTML page. API clients get the API's JSON error shape instead,
with the same security headers as every other answer, and no response names the server software.
Both hooks patch gunicorn 27 (pinned in constraints.txt).

The access log names the path, never the query string or the referrer: pages take free text in their
queries (``/history?q=<a patient's name>``), and a referrer repeats another page's query. A one-time
sign-in link's secret is masked too.
"""
import json
import re

import gunicorn.glogging
import gunicorn.http.wsgi
import gunicorn.util

MESSAGES = {
    414: "the URL is too long (at most 4094 bytes in the request line)",
    431: "the request's headers are too large (at most 100 fields of 8190 bytes each)",
}


# What web/security.py sets on every answer of the app (flask-talisman), for the answers gunicorn writes itself.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _write_json_error(sock, status_int, reason, mesg):
    message = MESSAGES.get(status_int) or f"the request could not be read: {mesg or reason}"
    body = json.dumps({"error": {"status": status_int, "message": message}}).encode()
    headers = {"Connection": "close", "Content-Type": "application/json", "Content-Length": str(len(body)),
               **SECURITY_HEADERS}
    head = f"HTTP/1.1 {status_int} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


SIGN_IN_LINK = re.compile(r"^(/signin/link/)[^/]+")


def private_path(path: str | None) -> str:
    """The path as the access log may show it: no query (it is not part of PATH_INFO), no link secret."""
    return SIGN_IN_LINK.sub(r"\1[secret]", path or "-")


class PrivateAccessLogger(gunicorn.glogging.Logger):
    """gunicorn's logger with the request line rebuilt from the path alone, and no referrer."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        path = private_path(environ.get("PATH_INFO"))
        atoms.update({"r": f"{environ['REQUEST_METHOD']} {path} {environ['SERVER_PROTOCOL']}", "U": path, "q": "-",
                      "f": "-"})
        return {k: v for k, v in atoms.items() if not k.endswith(("}i", "}e"))}  # no request headers or environ


logger_class = PrivateAccessLogger
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'


_default_headers = gunicorn.http.wsgi.Response.default_headers


def _headers_without_server(self):
    return [line for line in _default_headers(self) if not line.lower().startswith("server:")]


gunicorn.util.write_error = _write_json_error
gunicorn.http.wsgi.Response.default_headers = _headers_without_server

# Metrics: the workers count requests into files of one folder; the master serves them all on the
# metrics port (XRAY_METRICS_PORT, default 9101), never on the public one. The folder is chosen here,
# before any worker imports prometheus_client (shared/ops/metrics_http.py).
from shared.ops import metrics_http  # noqa: E402
from shared.ops.config import load_settings  # noqa: E402

_settings = load_settings()
_metrics_dir = metrics_http.use_multiprocess_dir(_settings, "web")

if _settings.log_format == "json":
    # gunicorn's own lines (start-up, worker exits, the access log) as JSON objects too. The root logger
    # is left to the app (shared/ops/logs.py adds the ids of the request to its lines).
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": "INFO", "handlers": []},
        "formatters": {"json": {"()": "shared.ops.logs.formatter", "settings": _settings, "process": "web"}},
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
