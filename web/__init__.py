"""The Flask front end and HTTP API. Never imports TensorFlow or worker code: it meets the workers only
in Postgres and on the queue."""
from __future__ import annotations

import dataclasses
import mimetypes

from flask import Flask, redirect

from shared.db.engine import Database
from shared.jobs.queue import create_celery
from shared.jobs.storage import LocalStorage
from shared.ops import logs
from shared.ops.config import Settings, load_settings, web_secret_key
from web.services import Services


def create_app(test_config: dict | None = None) -> Flask:
    """Wiring only: defaults, then the environment (load_settings), then the test's overrides.

    Keys of ``test_config`` that name a Settings field (lower case) override that setting; the rest go
    into Flask's config (TESTING, WTF_CSRF_ENABLED, ...). Refuses to start without a safe secret key
    outside the embedded run (shared.ops.config.web_secret_key says what to set).
    """
    test_config = dict(test_config or {})
    setting_names = {field.name for field in dataclasses.fields(Settings)}
    settings = load_settings(**{k: test_config.pop(k) for k in list(test_config) if k in setting_names})

    mimetypes.add_type("application/manifest+json", ".webmanifest")
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=web_secret_key(settings),
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        MAX_FORM_PARTS=settings.max_files_per_batch * 2 + 100,
    )
    from web.metrics import request_ids

    logs.configure(settings, "web", lookup=request_ids)

    app.extensions["xray"] = Services(
        settings=settings,
        db=Database(settings.database_url),
        storage=LocalStorage(settings.storage_dir),
        celery=create_celery(settings),
    )

    from web import (admin, admin_models, api, api_dicom, api_files, api_labels, api_models, api_webhooks, auth,
                     contract, dicomweb, errors, metrics, multipart, pages, pages_evaluation, security)

    multipart.install()  # one bad byte in one file name must not empty the whole form (web/multipart.py)

    metrics.init_app(app)  # first: its clock starts before the other hooks run
    security.init_app(app, settings)
    app.config.update(test_config)
    auth.init_app(app)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(admin_models.blueprint)
    app.register_blueprint(pages_evaluation.blueprint)
    api_blueprint = api.make_blueprint(api_files.routes, api_dicom.routes, api_webhooks.routes, api_models.routes,
                                       api_labels.routes)
    app.register_blueprint(api_blueprint, url_prefix="/api/v1")
    app.register_blueprint(contract.blueprint, url_prefix="/api/v1")
    app.register_blueprint(dicomweb.blueprint, url_prefix="/dicomweb")  # STOW-RS: tokens only (web/dicomweb.py)
    app.add_url_rule("/healthz", view_func=api.healthz)  # where load balancers look by convention
    # Where people guess the API's documentation is.
    app.add_url_rule("/docs", endpoint="docs_redirect", view_func=lambda: redirect("/api/v1/docs", code=301))
    # The API authenticates every request itself (tokens, or a session with an Origin check and a CSRF
    # header: web/security.py), so the form CSRF check, which wants a form field, stays off it.
    security.csrf.exempt(api_blueprint)
    security.csrf.exempt(dicomweb.blueprint)
    app.extensions["xray_limiter"] = security.init_limits(app, settings)
    errors.register(app)
    pages.register_template_globals(app)
    return app
