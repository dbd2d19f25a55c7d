"""The process-wide objects a request needs, held on the app (no module globals)."""
from __future__ import annotations

import dataclasses

from celery import Celery
from flask import current_app

from shared.config import Settings
from shared.db import Database
from shared.storage import LocalStorage


@dataclasses.dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    storage: LocalStorage
    celery: Celery


def services() -> Services:
    return current_app.extensions["xray"]
