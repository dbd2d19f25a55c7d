"""Model architectures the service can serve. Every one ends GlobalAveragePooling → Dense(logits) →
sigmoid, with named layers, so the worker gets class activation maps from one forward pass."""
from __future__ import annotations

import dataclasses
from typing import Callable

import keras
from keras import layers

from shared.labels import LABELS

XCEPTION_CAM_LAYER = "block14_sepconv2_act"
SMALL_CNN_CAM_LAYER = "cam_features"
LOGITS_LAYER = "logits"


class WeightsUnavailable(RuntimeError):
    """Pretrained weights could not be obtained (usually: no network)."""


def _head(features, num_labels: int, name: str, inputs) -> keras.Model:
    pooled = layers.GlobalAveragePooling2D(name="global_average_pooling")(features)
    # Logits and sigmoid are separate layers so heatmaps can take gradients on logits.
    logits = layers.Dense(num_labels, name=LOGITS_LAYER)(pooled)
    probabilities = layers.Activation("sigmoid", name="probabilities", dtype="float32")(logits)
    return keras.Model(inputs, probabilities, name=name)


def build_xception_transfer(input_size: int = 299, weights: str | None = "imagenet",
                            num_labels: int = len(LABELS), trainable_base: bool = False) -> keras.Model:
    """Xception base (ImageNet weights where they can be downloaded) + GAP + Dense(num_labels, sigmoid)."""
    if input_size < 71:
        raise ValueError(f"Xception needs an input of at least 71 pixels, received input_size={input_size}")
    inputs = keras.Input((input_size, input_size, 3), name="image")
    try:
        base = keras.applications.Xception(include_top=False, weights=weights, input_tensor=inputs)
    except Exception as exc:
        if weights is None:
            raise
        raise WeightsUnavailable(
            f"could not load Xception weights={weights!r} ({type(exc).__name__}: {exc}). Downloading ImageNet "
            "weights needs network access; offline, use --weights none (random weights, for tests and demos) "
            "or copy xception_weights_tf_dim_ordering_tf_kernels_notop.h5 into ~/.keras/models/"
        ) from exc
    base.trainable = trainable_base
    return _head(base.output, num_labels, "xception_transfer", inputs)


def build_small_cnn(input_size: int = 128, num_labels: int = len(LABELS), width: int = 32) -> keras.Model:
    """A small from-scratch CNN: learns from little data and stays a few MB on disk."""
    if input_size < 16:
        raise ValueError(f"the small CNN needs an input of at least 16 pixels, received input_size={input_size}")
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = inputs
    for block, filters in enumerate((width, width * 2, width * 4)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{block + 1}_conv")(x)
        x = layers.BatchNormalization(name=f"block{block + 1}_bn")(x)
        x = layers.Activation("relu", name=f"block{block + 1}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"block{block + 1}_pool")(x)
    x = layers.Conv2D(width * 4, 3, padding="same", name="block4_conv")(x)
    x = layers.Activation("relu", name=SMALL_CNN_CAM_LAYER)(x)
    return _head(x, num_labels, "small_cnn", inputs)


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What the manifest and the worker need to know about an architecture besides its weights."""

    build: Callable[..., keras.Model]
    cam_layer: str  # the layer whose activations give the heatmaps
    preprocessing: str  # the pixel scaling its inputs expect (shared.preprocess)


ARCHITECTURES = {
    "xception-transfer": Architecture(build_xception_transfer, XCEPTION_CAM_LAYER, "xception"),
    "small-cnn": Architecture(build_small_cnn, SMALL_CNN_CAM_LAYER, "unit"),
}
