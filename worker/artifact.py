"""Load a model artifact and refuse one whose model does not agree with its manifest."""
from __future__ import annotations

from pathlib import Path

import keras

from shared.model_manifest import MODEL_FILE, ArtifactError, Manifest, read_manifest


def load_artifact(artifact_dir: Path, mixed_precision: bool = False) -> tuple[keras.Model, Manifest]:
    manifest = read_manifest(artifact_dir)
    try:
        model = keras.saving.load_model(Path(artifact_dir) / MODEL_FILE, compile=False)
    except Exception as exc:
        raise ArtifactError(f"could not load {artifact_dir / MODEL_FILE}: {type(exc).__name__}: {exc}") from exc
    check_model(model, manifest)
    if mixed_precision:
        model = with_mixed_precision(model, keep_float32=(manifest.logits_layer,))
    return model, manifest


def with_mixed_precision(model: keras.Model, keep_float32: tuple[str, ...] = ()) -> keras.Model:
    """The same model and weights computing in float16 (float32 variables), except the named layers and
    the output, which stay float32 so logits and probabilities keep their precision. For GPUs."""
    config = model.get_config()
    keep = set(keep_float32) | {layer.name for layer in model.layers if layer.output is model.output}
    for layer in config["layers"]:
        if layer["name"] not in keep and layer["class_name"] != "InputLayer" and "dtype" in layer["config"]:
            layer["config"]["dtype"] = "mixed_float16"
    mixed = model.__class__.from_config(config)
    mixed.set_weights(model.get_weights())
    return mixed


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
