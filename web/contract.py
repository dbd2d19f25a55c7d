"""The API contract: OpenAPI 3.1, generated from the routes and the pydantic models they name.

spectree, because its pydantic models produce JSON Schema 2020-12, which is exactly OpenAPI 3.1's
schema dialect (nullable fields come out as ``anyOf … null``, not the 3.0 ``nullable`` that apispec's
marshmallow path emits under a 3.1 header); and because it decorates our plain Flask views without
replacing the app or its error handling (apiflask would). The routes keep validating their own input,
so the decorators here document only (``skip_validation``); the schemathesis test holds the service to
the contract. Served at ``/api/v1/openapi.json``; ``/api/v1/docs`` renders it as a page of this site
(no CDN, no script).
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template
from spectree import Response, SpecTree
from spectree.models import SecurityScheme, SecuritySchemeData

from web import schemas

ERRORS = {400: "bad request", 401: "no or a bad token", 403: "refused (a browser session without this site's "
          "CSRF header)", 404: "no such item, or not yours", 409: "an upload with this Idempotency-Key is still being "
          "processed: retry", 413: "too large or over quota", 415: "no file is an image",
          422: "an Idempotency-Key reused for another request", 429: "too many requests, or too many waiting: see Retry-After",
          414: "the URL is too long (answered by the server before the app)",
          431: "the request's headers are too large (answered by the server before the app)"}
# Any route can meet these: gunicorn answers them itself, in the same Error shape (deploy/gunicorn.conf.py).
SERVER_ERRORS = (414, 431)

spec = SpecTree(
    "flask",
    title="Chest X-ray analysis API",
    version="1",
    description="Upload chest X-rays, follow their analysis, fetch findings and class activation maps. Research "
                "and education only: not a medical device, not for diagnosis.",
    path="api/v1/docs",
    mode="strict",
    annotations=False,
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    validation_error_status=422,
    validation_error_model=schemas.Error,
    security_schemes=[
        SecurityScheme(name="bearer", data=SecuritySchemeData(
            type="http", scheme="bearer", description="An API token (xrt_…) from /account or `xray-admin create-token`")),
        SecurityScheme(name="session", data=SecuritySchemeData(
            type="apiKey", field_in="cookie", name="session",
            description="A signed-in browser; changes also need this site's Origin and an X-CSRFToken header")),
    ],
    security=[{"bearer": []}, {"session": []}],
)


def route(*ok: tuple[int, type | None], errors: tuple[int, ...] = (401, 404, 429), public: bool = False, **kwargs):
    """Document a route: its successful answers and the errors it can give (all in the Error shape)."""
    codes = {f"HTTP_{status}": model for status, model in ok}
    codes.update({f"HTTP_{status}": (schemas.Error, ERRORS[status]) for status in (*errors, *SERVER_ERRORS)})
    return spec.validate(resp=Response(**codes), skip_validation=True, security={} if public else None, **kwargs)


blueprint = Blueprint("contract", __name__)


@blueprint.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document of /api/v1."""
    document = dict(spec.spec)
    document["servers"] = [{"url": "/"}]
    return jsonify(document)


@blueprint.get("/docs")
def docs():
    """The contract as a page: every route, parameter, body, answer and schema."""
    document = spec.spec
    return render_template("api_docs.html", spec=document, schemas=document["components"]["schemas"],
                           app_name=current_app.name)
