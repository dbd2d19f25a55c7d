"""The Flask front end and HTTP API. Never imports TensorFlow or worker code: it meets the workers only
in Postgres and on the queue."""
from __future__ import annotations

import dataclasses
import logging

from flask import Flask

from shared.config import Settings, load_settings
from shared.db import Database
from shared.queue import create_celery
from shared.storage import LocalStorage
from web.services import Services


def create_app(test_config: dict | None = None) -> Flask:
    """Wiring only: defaults, then the environment (load_settings), then the test's overrides.

    Keys of ``test_config`` that name a Settings field (lower case) override that setting; the rest go
    into Flask's config (TESTING, WTF_CSRF_ENABLED, ...).
    """
    test_config = dict(test_config or {})
    setting_names = {field.name for field in dataclasses.fields(Settings)}
    settings = load_settings(**{k: test_config.pop(k) for k in list(test_config) if k in setting_names})

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        MAX_FORM_PARTS=settings.max_files_per_batch * 2 + 100,
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.config.update(test_config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    app.extensions["xray"] = Services(
        settings=settings,
        db=Database(settings.database_url),
        storage=LocalStorage(settings.storage_dir),
        celery=create_celery(settings),
    )

    from web import api, errors, pages, security

    security.csrf.init_app(app)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(api.blueprint, url_prefix="/api/v1")
    app.add_url_rule("/healthz", view_func=api.healthz)  # where load balancers look by convention
    security.csrf.exempt(api.blueprint)  # API clients send no browser cookies; tokens come with accounts
    errors.register(app)
    pages.register_template_globals(app)
    return app
