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
