"""The per-process worker context: built once, after the fork, and reused for every job."""
from __future__ import annotations

import logging
import os
import socket

from shared.db.engine import Database
from shared.jobs.storage import LocalStorage
from shared.ops.config import Settings
from worker.models import LoadedModels
from worker.pipeline import WorkerContext

log = logging.getLogger(__name__)
VARIANT_TOLERANCE = 0.05  # |Δp| against float32 on the start-up sample; `optimize` accepted far less (manifest)
_context: WorkerContext | None = None


def build_context(settings: Settings, worker_name: str | None = None) -> WorkerContext:
    """The process's context, serving its own folder's version (loaded now, when this worker serves it);
    other versions load when their first job arrives (WorkerContext.using)."""
    from worker import backends

    backends.prepare_environment()
    backends.configure(settings.tf_threads)
    db = Database(settings.database_url)
    name = worker_name or f"{socket.gethostname()}:{os.getpid()}"
    models = LoadedModels(settings, db, lambda model, manifest, folder: serving_engine(settings, model, manifest,
                                                                                        folder))
    first = models.folder_version if models.serves(None) else sorted(settings.served_versions)[0]
    served = models.get(first)
    context = WorkerContext(settings, db, LocalStorage(settings.storage_dir), served.engine, served.manifest, name,
                            gate=served.gate, models=models)
    engine, manifest = served.engine, served.manifest
    log.info("worker %s serves %s %s with %s on %s; batches of up to %d (forward pass by batch shape: %s); "
             "input gate %s (%s)%s; %s", name, manifest.name, manifest.version, engine.runtime, backends.device_name(),
             context.claim_limit,
             ", ".join(f"{shape}: {seconds * 1000:.0f} ms" for shape, seconds in engine.bucket_seconds.items()),
             context.gate.version, settings.input_gate, "" if manifest.trained else " (UNTRAINED: predictions are meaningless)",
             "pinned to that version (XRAY_MODEL_DIR)" if settings.model_pinned else
             f"versions {settings.model_versions} only" if settings.served_versions else
             f"other registry versions on demand, at most {settings.max_loaded_models} loaded")
    return context


def serving_engine(settings: Settings, model, manifest, folder=None):
    """The engine on the runtime XRAY_RUNTIME asks for (``choose_runtime``)."""
    from worker.engine import InferenceEngine

    chosen, forward, _ = choose_runtime(settings, model, manifest, folder)
    return InferenceEngine(model, manifest, max_batch=settings.batch_size, runtime=chosen, forward=forward)


def choose_runtime(settings: Settings, model, manifest, folder=None):
    """(runtime, its forward pass, images/s of each runtime timed) for XRAY_RUNTIME; for "auto", the fastest of
    float32 and the variants verified for this model, timed here at start, taking turns (on this machine, under
    its current load: worker/runtimes.fastest). A variant is checked again here against float32 (this machine's
    instructions may differ from the one `optimize` ran on): one whose probabilities stray by more than
    VARIANT_TOLERANCE is not served."""
    folder = settings.model_dir if folder is None else folder
    import numpy as np

    from worker import backends, runtimes

    setting = runtimes.FLOAT16 if settings.mixed_precision and settings.runtime == "auto" else settings.runtime
    names = runtimes.candidates(setting, manifest, gpu=backends.device_name() != "cpu")
    forwards = {name: runtimes.build_forward(name, model, manifest, folder) for name in names}
    if len(names) == 1:
        return names[0], forwards[names[0]], {}
    sample = np.random.default_rng(0).uniform(-1, 1, (settings.batch_size, *manifest.input_size, 3))
    sample = sample.astype(np.float32)
    for name in [n for n in names if n != runtimes.FLOAT32 and runtimes.FLOAT32 in forwards]:
        drift = float(np.max(np.abs(_probabilities(forwards[name], sample) -
                                    _probabilities(forwards[runtimes.FLOAT32], sample))))
        if drift > VARIANT_TOLERANCE:
            log.warning("runtime %s of %s strays from float32 on this machine (|Δp| up to %.4f > %.2f): not "
                        "served", name, manifest.version, drift, VARIANT_TOLERANCE)
            forwards.pop(name)
    chosen, speeds = runtimes.fastest(forwards, sample)
    log.info("runtimes timed at start, taking turns: %s; serving %s", ", ".join(
        f"{name} {rate:.1f} images/s" for name, rate in speeds.items()), chosen)
    return chosen, forwards[chosen], speeds


def _probabilities(forward, batch):
    import numpy as np

    _, logits = forward(batch)
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def get_context(settings: Settings) -> WorkerContext:
    global _context
    if _context is None:
        _context = build_context(settings)
    return _context
