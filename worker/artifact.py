"""Load a model artifact and refuse one whose model does not agree with its manifest."""
from __future__ import annotations

from pathlib import Path

import keras

from shared.model.manifest import MODEL_FILE, ArtifactError, Manifest, read_manifest


def load_artifact(artifact_dir: Path) -> tuple[keras.Model, Manifest]:
    manifest = read_manifest(artifact_dir)
    try:
        model = keras.saving.load_model(Path(artifact_dir) / MODEL_FILE, compile=False)
    except Exception as exc:
        raise ArtifactError(f"could not load {artifact_dir / MODEL_FILE}: {type(exc).__name__}: {exc}") from exc
    check_model(model, manifest)
    return model, manifest


def check_model(model: keras.Model, manifest: Manifest) -> None:
    expected = (None, *manifest.input_size, 3)
    if tuple(model.input_shape) != expected:
        raise ArtifactError(f"the model takes input {model.input_shape}, the manifest says {expected}")
    if tuple(model.output_shape) != (None, len(manifest.labels)):
        raise ArtifactError(
            f"the model gives {model.output_shape[-1]} outputs, the manifest names {len(manifest.labels)} labels"
        )
    for name in (manifest.cam_layer, manifest.logits_layer):
        try:
            model.get_layer(name)
        except ValueError:
            raise ArtifactError(f"the manifest names layer {name!r}, which the model does not have") from None
    logits = model.get_layer(manifest.logits_layer)
    activation = getattr(logits, "activation", None)
    if activation is not None and getattr(activation, "__name__", "linear") != "linear":
        raise ArtifactError(
            f"layer {manifest.logits_layer!r} applies {activation.__name__}; heatmaps need the pre-activation logits"
        )
