"""Errors as JSON for the API and as a page for people, always with a message a person understands."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge, TooManyRequests

log = logging.getLogger(__name__)


class ApiError(HTTPException):
    """An HTTP error with a specific message and optional per-file details."""

    def __init__(self, code: int, message: str, details: list | None = None, headers: dict | None = None):
        super().__init__(description=message)
        self.code = code
        self.details = details
        self.extra_headers = headers or {}

    def get_headers(self, environ=None, scope=None):
        return [*super().get_headers(environ, scope), *self.extra_headers.items()]


def human_size(size: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}".replace(".0 ", " ")
    return f"{size} bytes"


def _message(error: HTTPException) -> str:
    if isinstance(error, RequestEntityTooLarge):
        from web.services import services

        settings = services().settings
        if (request.content_length or 0) <= settings.max_request_bytes:
            # Werkzeug raises the same error for too many form parts as for too many bytes.
            return (f"the request has too many form fields or files: a batch may hold at most "
                    f"{settings.max_files_per_batch} files; send the images in smaller batches")
        limit = human_size(settings.max_request_bytes)
        return f"the upload is too large: a request may carry at most {limit}; send the images in smaller batches"
    if isinstance(error, TooManyRequests):
        return f"too many requests ({error.description}); wait a little and try again"
    if isinstance(error, CSRFError):
        return f"the form expired or was not sent from this site ({error.description}); reload the page and try again"
    return error.description or error.name


def render_error(error: HTTPException):
    body = {"error": {"status": error.code, "message": _message(error)}}
    if getattr(error, "details", None):
        body["error"]["files"] = error.details
    # Headers the error carries (WWW-Authenticate, Retry-After, Allow), never its HTML content type.
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    if request.path.startswith(("/api/", "/dicomweb/")):
        return jsonify(body), error.code, headers
    return render_template("error.html", status=error.code, message=body["error"]["message"],
                           details=body["error"].get("files")), error.code, headers


def register(app: Flask) -> None:
    app.register_error_handler(HTTPException, render_error)

    @app.errorhandler(Exception)
    def unexpected(error):  # pragma: no cover - last line of defence
        log.exception("unhandled error on %s", request.path)
        return render_error(InternalServerError("an internal error occurred; it has been logged"))
