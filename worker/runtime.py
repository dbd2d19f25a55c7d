"""The per-process worker context: built once, after the fork, and reused for every job."""
from __future__ import annotations

import logging
import os
import socket

from shared.db.engine import Database
from shared.jobs.storage import LocalStorage
from shared.model.gate import Gate
from shared.model.manifest import register
from shared.ops.config import Settings
from worker.pipeline import WorkerContext

log = logging.getLogger(__name__)
_context: WorkerContext | None = None


def build_context(settings: Settings, worker_name: str | None = None) -> WorkerContext:
    from worker import backends

    backends.prepare_environment()
    from worker.artifact import load_artifact  # imports Keras and its backend: only where a model is served

    backends.configure(settings.tf_threads)
    model, manifest = load_artifact(settings.model_dir)
    db = Database(settings.database_url)
    with db.session() as session:
        register(session, manifest)
    name = worker_name or f"{socket.gethostname()}:{os.getpid()}"
    engine = serving_engine(settings, model, manifest)
    context = WorkerContext(settings, db, LocalStorage(settings.storage_dir), engine, manifest, name,
                            gate=Gate.load(settings.model_dir))
    log.info("worker %s serves %s %s with %s on %s; batches of up to %d (forward pass by batch shape: %s); "
             "input gate %s (%s)%s", name, manifest.name, manifest.version, engine.runtime, backends.device_name(),
             context.claim_limit,
             ", ".join(f"{shape}: {seconds * 1000:.0f} ms" for shape, seconds in engine.bucket_seconds.items()),
             context.gate.version, settings.input_gate, "" if manifest.trained else " (UNTRAINED: predictions are meaningless)")
    return context


def serving_engine(settings: Settings, model, manifest):
    """The engine on the runtime XRAY_RUNTIME asks for; for "auto", the fastest of float32 and the variants
    verified for this model, timed here at start (on this machine, under its current load)."""
    import numpy as np

    from worker import backends, runtimes
    from worker.engine import InferenceEngine

    setting = runtimes.FLOAT16 if settings.mixed_precision and settings.runtime == "auto" else settings.runtime
    names = runtimes.candidates(setting, manifest, gpu=backends.device_name() != "cpu")
    forwards = {name: runtimes.build_forward(name, model, manifest, settings.model_dir) for name in names}
    chosen = names[0]
    if len(names) > 1:
        sample = np.random.default_rng(0).uniform(-1, 1, (settings.batch_size, *manifest.input_size, 3))
        chosen, speeds = runtimes.fastest(forwards, sample.astype(np.float32))
        log.info("runtimes timed at start: %s; serving %s", ", ".join(
            f"{name} {rate:.1f} images/s" for name, rate in speeds.items()), chosen)
    return InferenceEngine(model, manifest, max_batch=settings.batch_size, runtime=chosen, forward=forwards[chosen])



def get_context(settings: Settings) -> WorkerContext:
    global _context
    if _context is None:
        _context = build_context(settings)
    return _context
