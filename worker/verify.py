"""The arrival check of a pushed model version, on a worker (the web never loads a model).

A version serves only after this: its manifest and labels agree with the service, the model loads and has
the layers its manifest names (worker/artifact.py), its input gate belongs to it (shared/model/gate.py), its
runtime variants still agree with float32 on this machine (worker/runtime.py), and it predicts on real
X-rays (models/smoke, or XRAY_SMOKE_IMAGES): every probability finite and within [0, 1], every map finite,
not the same answer for every image, and its gate lets most of them through. A failure keeps the version
as 'rejected' with the reason, for the person who pushed it.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from shared.auth import audit
from shared.db.models import ModelVersion
from shared.imaging.images import decode_image_and_colour, inspect_image
from shared.model import registry
from shared.model.gate import Gate, Seen
from shared.ops.config import REPO_ROOT

log = logging.getLogger(__name__)
SMOKE_DIR = REPO_ROOT / "models" / "smoke"


def smoke_images(settings) -> list[Path]:
    folder = Path(settings.smoke_images_dir) if settings.smoke_images_dir else SMOKE_DIR
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".dcm"))
    if len(paths) < 2:
        raise registry.RegistryError(f"no real X-rays to check models on in {folder} (XRAY_SMOKE_IMAGES)", 500)
    return paths


def check(ctx, version: str) -> str | None:
    """None when the version may serve, else why not. Loads it the way serving will (not kept loaded)."""
    from worker.artifact import load_artifact
    from worker.runtime import serving_engine

    settings = ctx.settings
    folder = registry.version_dir(settings.storage_dir, version)
    try:
        registry.static_check(folder)
        model, manifest = load_artifact(folder)
        gate = Gate.load(folder)
        engine = serving_engine(settings, model, manifest, folder)
        inputs, passed = [], 0
        for path in smoke_images(settings):
            data = path.read_bytes()
            info = inspect_image(data, settings.max_image_pixels, settings.max_decoded_bytes)
            grey, colourfulness = decode_image_and_colour(data, settings.max_image_pixels, settings.max_decoded_bytes)
            passed += gate.check(Seen(grey, colourfulness, info.width, info.height)).ok
            inputs.append(engine.preprocess(grey))
        analyses = engine.analyse_preprocessed(np.stack(inputs))
    except Exception as exc:  # anything at all: the reason goes to the person who pushed it
        return f"{type(exc).__name__}: {exc}"[:2000]
    probabilities = np.array([[a.probabilities[label] for label in manifest.labels] for a in analyses])
    if not np.all(np.isfinite(probabilities)) or probabilities.min() < 0 or probabilities.max() > 1:
        return "its probabilities on real X-rays are not all finite numbers between 0 and 1"
    if not all(np.all(np.isfinite(m)) for a in analyses for m in a.heatmaps.values()):
        return "its class activation maps on real X-rays are not all finite"
    if float(np.ptp(probabilities, axis=0).max()) < 1e-6:
        return f"it gives the same probabilities for all {len(analyses)} real X-rays (a constant model)"
    if gate.learned is not None and passed * 2 < len(analyses):
        return f"its input gate refuses {len(analyses) - passed} of {len(analyses)} real chest X-rays"
    return None


def verify(ctx, version: str) -> str:
    """Check a 'verifying' version and record the verdict; returns its status."""
    with ctx.db.session() as session:
        row = session.get(ModelVersion, version)
        if row is None or row.status != registry.VERIFYING:
            return row.status if row else "gone"
    reason = check(ctx, version)
    with ctx.db.session() as session:
        registry.finish_check(session, version, reason)
        audit.record(session, "model_check", actor="worker", target_type="model", target_id=version,
                     detail={"result": "ready" if reason is None else "rejected"})
    if reason is None:
        log.info("model version %s passed its arrival check: ready to serve", version)
    else:
        log.warning("model version %s rejected: %s", version, reason)
    return registry.READY if reason is None else registry.REJECTED
