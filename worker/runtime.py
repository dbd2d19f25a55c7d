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
    from worker import backends

    backends.prepare_environment()
    from worker.artifact import load_artifact  # imports Keras and its backend: only where a model is served
    from worker.engine import InferenceEngine

    backends.configure(settings.tf_threads)
    model, manifest = load_artifact(settings.model_dir, mixed_precision=settings.mixed_precision)
    db = Database(settings.database_url)
    with db.session() as session:
        register(session, manifest)
    name = worker_name or f"{socket.gethostname()}:{os.getpid()}"
    log.info("worker %s serves %s %s on %s (%s)%s", name, manifest.name, manifest.version, backends.backend(),
             backends.device_name(), "" if manifest.trained else " (UNTRAINED: predictions are meaningless)")
    engine = InferenceEngine(model, manifest, max_batch=settings.batch_size)
    return WorkerContext(settings, db, LocalStorage(settings.storage_dir), engine, manifest, name)


def get_context(settings: Settings) -> WorkerContext:
    global _context
    if _context is None:
        _context = build_context(settings)
    return _context
