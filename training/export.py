"""Write a model artifact folder (model.keras + manifest.json) that the worker can serve."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

import keras

from shared.model.manifest import MODEL_FILE, Manifest, file_version, write_manifest


def export_artifact(model: keras.Model, out_dir: Path, *, name: str, architecture: str, preprocessing: str,
                    labels: tuple[str, ...], thresholds: dict[str, float], cam_layer: str, logits_layer: str,
                    trained: bool, training: dict, metrics: dict | None = None,
                    operating_points: dict | None = None) -> Manifest:
    """Save the model, hash it, write its manifest; the folder appears complete or not at all."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    try:
        model.save(staging / MODEL_FILE)
        height, width = model.input_shape[1:3]
        manifest = Manifest(
            name=name,
            version=file_version(staging / MODEL_FILE),
            architecture=architecture,
            input_size=(int(height), int(width)),
            preprocessing=preprocessing,
            labels=tuple(labels),
            thresholds={label: float(thresholds[label]) for label in labels},
            cam_layer=cam_layer,
            logits_layer=logits_layer,
            trained=trained,
            training={**training, "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")},
            metrics=metrics,
            operating_points=operating_points or {},
        )
        write_manifest(staging, manifest)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest
