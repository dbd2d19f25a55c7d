"""API routes for webhooks: a batch's deliveries with every attempt, and the owner's default callback
and signing secret. On the API's blueprint (web/api.make_blueprint), with its authentication."""
from __future__ import annotations

from flask import jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from shared.db.models import User, WebhookDelivery
from shared.jobs import webhooks
from web import schemas
from web.audit import audit
from web.contract import route
from web.errors import ApiError
from web.owned import owned_batch
from web.security import current_viewer
from web.serializers import delivery_json
from web.routes import Routes
from web.services import services

routes = Routes()


@routes.get("/batches/<batch_id>/webhooks")
@route((200, schemas.WebhookDeliveries), tags=["webhooks"])
def batch_webhooks(batch_id: str):
    """The batch's "finished" notification: where it went, its state, and every attempt."""
    with services().db.session() as session:
        batch = owned_batch(session, batch_id)
        rows = session.scalars(select(WebhookDelivery).where(WebhookDelivery.batch_id == batch.id)
                               .options(selectinload(WebhookDelivery.attempt_log))).all()
        return jsonify({"batch_id": str(batch.id), "deliveries": [delivery_json(d) for d in rows]})


@routes.get("/account/webhook")
@route((200, schemas.WebhookSettings), errors=(401, 429), tags=["webhooks"])
def get_webhook_settings():
    """Your default callback URL and the secret that signs every delivery."""
    with services().db.session() as session:
        user = session.get(User, current_viewer().user_id)
        return jsonify({"url": user.webhook_url, "secret": webhooks.secret_for(session, user)})


@routes.put("/account/webhook")
@route((200, schemas.WebhookSettings), errors=(400, 401, 403, 429), json=schemas.WebhookSettingsIn, tags=["webhooks"])
def put_webhook_settings():
    """Set (or, with null, remove) your default callback URL."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not (body.get("url") is None or isinstance(body.get("url"), str)):
        raise ApiError(400, 'send JSON like {"url": "https://example.org/hook"} (or {"url": null})')
    url = body.get("url") or None
    if url:
        try:
            webhooks.check_url(url, services().settings.webhook_allow_private)
        except webhooks.WebhookError as exc:
            raise ApiError(400, str(exc)) from None
    with services().db.session() as session:
        user = session.get(User, current_viewer().user_id)
        user.webhook_url = url
        audit(session, "webhook_change", "user", user.id)
        return jsonify({"url": user.webhook_url, "secret": webhooks.secret_for(session, user)})
