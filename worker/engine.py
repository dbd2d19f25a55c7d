"""The inference engine: preprocessing, one forward pass for probabilities and every class's heatmap."""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from shared.model_manifest import Manifest
from shared.preprocess import model_input
from worker.heatmaps import cam_maps, gradcam_maps


@dataclasses.dataclass(frozen=True)
class Analysis:
    probabilities: dict[str, float]  # label → probability
    heatmaps: dict[str, np.ndarray]  # label → [h, w] map in [0, 1], in model input space


def _producer(model: keras.Model, tensor):
    for layer in model.layers:
        if layer.output is tensor:
            return layer
    return None


def has_gap_dense_head(model: keras.Model, cam_layer: str, logits_layer: str) -> bool:
    """True when logits = Dense(GlobalAveragePooling(cam_layer output)): then CAM equals Grad-CAM."""
    dense = model.get_layer(logits_layer)
    if not isinstance(dense, keras.layers.Dense):
        return False
    pooling = _producer(model, dense.input)
    return (
        isinstance(pooling, keras.layers.GlobalAveragePooling2D)
        and pooling.input is model.get_layer(cam_layer).output
    )


class InferenceEngine:
    def __init__(self, model: keras.Model, manifest: Manifest):
        self.manifest = manifest
        self.labels = manifest.labels
        self.input_size = manifest.input_size
        logits_layer = model.get_layer(manifest.logits_layer)
        self.features_and_logits = keras.Model(
            model.input, [model.get_layer(manifest.cam_layer).output, logits_layer.output]
        )
        self.fast_cam = has_gap_dense_head(model, manifest.cam_layer, manifest.logits_layer)
        self.dense_kernel = np.asarray(logits_layer.kernel) if self.fast_cam else None
        # One traced graph instead of eager layer-by-layer calls; retraced only for a new batch size.
        self._forward = tf.function(lambda x: self.features_and_logits(x, training=False), reduce_retracing=True)
        # Trace and warm up now, at worker start, not on the first person's image.
        self.analyze([np.zeros(self.input_size, np.uint8)])

    def preprocess(self, grey: np.ndarray) -> np.ndarray:
        return model_input(grey, self.input_size, self.manifest.preprocessing)

    def analyze(self, images: list[np.ndarray]) -> list[Analysis]:
        batch = np.stack([self.preprocess(image) for image in images])
        features, logits = (t.numpy() for t in self._forward(tf.constant(batch)))
        logits = logits.astype(np.float64)
        probabilities = 1.0 / (1.0 + np.exp(-logits))
        if self.fast_cam:
            maps = cam_maps(features, self.dense_kernel)
        else:
            maps = gradcam_maps(self.features_and_logits, batch, list(range(len(self.labels))))
        return [
            Analysis(
                probabilities={label: float(probabilities[i, c]) for c, label in enumerate(self.labels)},
                heatmaps={label: maps[i, c] for c, label in enumerate(self.labels)},
            )
            for i in range(len(images))
        ]
