"""The per-process worker context: built once, after the fork, and reused for every job."""
from __future__ import annotations

import logging
import os
import socket

from shared.config import Settings
from shared.db import Database
from shared.model_manifest import register
from shared.storage import LocalStorage
from worker.pipeline import WorkerContext

log = logging.getLogger(__name__)
_context: WorkerContext | None = None


def build_context(settings: Settings, worker_name: str | None = None) -> WorkerContext:
    from worker.artifact import load_artifact  # imports TensorFlow: only where a model is served
    from worker.engine import InferenceEngine

    model, manifest = load_artifact(settings.model_dir)
    db = Database(settings.database_url)
    with db.session() as session:
        register(session, manifest)
    name = worker_name or f"{socket.gethostname()}:{os.getpid()}"
    log.info("worker %s serves %s %s%s", name, manifest.name, manifest.version,
             "" if manifest.trained else " (UNTRAINED: predictions are meaningless)")
    return WorkerContext(settings, db, LocalStorage(settings.storage_dir), InferenceEngine(model, manifest), manifest, name)


def get_context(settings: Settings) -> WorkerContext:
    global _context
    if _context is None:
        _context = build_context(settings)
    return _context
