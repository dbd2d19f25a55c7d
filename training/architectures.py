"""Model architectures the service can serve. Every one ends GlobalAveragePooling → Dense(logits) →
sigmoid, with named layers, so the worker gets class activation maps from one forward pass."""
from __future__ import annotations

import dataclasses
from typing import Callable

import keras
import numpy as np
from keras import layers

from shared.model.labels import LABELS

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


def small_cnn_features(inputs, width: int = 32, dropout: float = 0.0, context: int = 0, prefix: str = ""):
    """Four conv blocks, the last one's ReLU output being the heatmap features (1/8 of the input side).
    Spatial dropout sits inside the trunk, never between the features and the pooling, so the head
    stays GAP → Dense and the maps stay exact. ``context`` dilated convolutions (rates 2, 4, ...) before
    the last block widen what each map cell sees to most of the chest (a large heart is a matter of
    proportions, not of local texture) without coarsening the maps."""
    x = inputs
    for block, filters in enumerate((width, width * 2, width * 4)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{prefix}block{block + 1}_conv")(x)
        x = layers.BatchNormalization(name=f"{prefix}block{block + 1}_bn")(x)
        x = layers.Activation("relu", name=f"{prefix}block{block + 1}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"{prefix}block{block + 1}_pool")(x)
        if dropout and block > 0:
            x = layers.SpatialDropout2D(dropout, name=f"{prefix}block{block + 1}_dropout")(x)
    for step in range(context):
        x = layers.Conv2D(width * 4, 3, padding="same", dilation_rate=2 ** (step + 1), use_bias=False,
                          name=f"{prefix}context{step + 1}_conv")(x)
        x = layers.BatchNormalization(name=f"{prefix}context{step + 1}_bn")(x)
        x = layers.Activation("relu", name=f"{prefix}context{step + 1}_relu")(x)
    x = layers.Conv2D(width * 4, 3, padding="same", name=f"{prefix}block4_conv")(x)
    return layers.Activation("relu", name=f"{prefix}{SMALL_CNN_CAM_LAYER}")(x)


def build_small_cnn(input_size: int = 128, num_labels: int = len(LABELS), width: int = 32,
                    dropout: float = 0.0, context: int = 0) -> keras.Model:
    """A small from-scratch CNN: learns from little data and stays a few MB on disk."""
    if input_size < 16:
        raise ValueError(f"the small CNN needs an input of at least 16 pixels, received input_size={input_size}")
    inputs = keras.Input((input_size, input_size, 3), name="image")
    return _head(small_cnn_features(inputs, width, dropout, context), num_labels, "small_cnn", inputs)


def build_ensemble(members: list[keras.Model], temperatures: np.ndarray | None = None,
                   offsets: np.ndarray | None = None, cam_layer: str = SMALL_CNN_CAM_LAYER) -> keras.Model:
    """One model whose logits are the mean of the members' logits, divided by each label's temperature
    plus its offset (shared/stats/calibration.py), and whose maps still come from one pass.

    Every member ends GAP → Dense(W_k, b_k) on its features f_k. The mean of their logits equals
    Dense(concat_k W_k / K, mean_k b_k) applied to GAP(concat_k f_k), since pooling commutes with
    concatenation: so the ensemble is itself GAP → Dense on the concatenated features (named
    ``cam_layer``), its class activation map is the mean of the members' maps, and a per-label
    temperature T_c and offset b_c fold into column c of the kernel and bias."""
    if not members:
        raise ValueError("an ensemble needs at least one member")
    inputs = keras.Input(members[0].input_shape[1:], name="image")
    features, kernels, biases = [], [], []
    for k, member in enumerate(members):
        trunk = keras.Model(member.input, member.get_layer(cam_layer).output, name=f"member{k + 1}")
        features.append(trunk(inputs))
        kernel, bias = member.get_layer(LOGITS_LAYER).get_weights()
        kernels.append(kernel)
        biases.append(bias)
    # A named layer in this model's own graph, so the worker finds the features by name.
    joined = (layers.Concatenate(name=cam_layer)(features) if len(features) > 1
              else layers.Identity(name=cam_layer)(features[0]))
    model = _head(joined, kernels[0].shape[1], "small_cnn_ensemble", inputs)
    labels = kernels[0].shape[1]
    temperatures = np.ones(labels) if temperatures is None else np.asarray(temperatures)
    offsets = np.zeros(labels) if offsets is None else np.asarray(offsets)
    kernel = np.concatenate(kernels, axis=0) / len(members) / temperatures
    bias = np.mean(biases, axis=0) / temperatures + offsets
    model.get_layer(LOGITS_LAYER).set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return model


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What the manifest and the worker need to know about an architecture besides its weights."""

    build: Callable[..., keras.Model]
    cam_layer: str  # the layer whose activations give the heatmaps
    preprocessing: str  # the pixel scaling its inputs expect (shared.model.preprocess)


ARCHITECTURES = {
    "xception-transfer": Architecture(build_xception_transfer, XCEPTION_CAM_LAYER, "xception"),
    "small-cnn": Architecture(build_small_cnn, SMALL_CNN_CAM_LAYER, "unit"),
}
