"""Errors as JSON for the API and as a page for people, always with a message a person understands."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

log = logging.getLogger(__name__)


class ApiError(HTTPException):
    """An HTTP error with a specific message and optional per-file details."""

    def __init__(self, code: int, message: str, details: list | None = None):
        super().__init__(description=message)
        self.code = code
        self.details = details


def human_size(size: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}".replace(".0 ", " ")
    return f"{size} bytes"


def _message(error: HTTPException) -> str:
    if isinstance(error, RequestEntityTooLarge):
        from web.services import services

        limit = human_size(services().settings.max_request_bytes)
        return f"the upload is too large: a request may carry at most {limit}; send the images in smaller batches"
    if isinstance(error, CSRFError):
        return f"the form expired or was not sent from this site ({error.description}); reload the page and try again"
    return error.description or error.name


def render_error(error: HTTPException):
    body = {"error": {"status": error.code, "message": _message(error)}}
    if getattr(error, "details", None):
        body["error"]["files"] = error.details
    if request.path.startswith("/api/"):
        return jsonify(body), error.code
    return render_template("error.html", status=error.code, message=body["error"]["message"],
                           details=body["error"].get("files")), error.code


def register(app: Flask) -> None:
    app.register_error_handler(HTTPException, render_error)

    @app.errorhandler(Exception)
    def unexpected(error):  # pragma: no cover - last line of defence
        log.exception("unhandled error on %s", request.path)
        return render_error(InternalServerError("an internal error occurred; it has been logged"))
