"""The process-wide objects a request needs, held on the app (no module globals)."""
from __future__ import annotations

import dataclasses

from celery import Celery
from flask import current_app

from shared.db.engine import Database
from shared.jobs.storage import LocalStorage
from shared.ops.config import Settings


@dataclasses.dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    storage: LocalStorage
    celery: Celery


def services() -> Services:
    return current_app.extensions["xray"]
