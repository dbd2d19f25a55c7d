"""The inference engine: preprocessing, one forward pass for probabilities and every class's heatmap.

It runs the same `.keras` artifact under any Keras backend (``KERAS_BACKEND``): TensorFlow (a traced
tf.function), JAX (a jitted stateless call) or PyTorch (eager, without autograd), so GPU machines that
have JAX or PyTorch but no TensorFlow can serve it (worker/backends.py); or under a verified faster
variant: bf16 compute or OpenVINO (worker/runtimes.py).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np

from shared.model.manifest import Manifest
from shared.model.preprocess import model_input
from worker import runtimes
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


def bucket(size: int, max_batch: int) -> int:
    """The fixed batch shape a batch of ``size`` runs at: the next power of two, at most max_batch."""
    shape = 1
    while shape < size:
        shape *= 2
    return min(shape, max_batch)


def buckets(max_batch: int) -> list[int]:
    """Every shape a batch can run at: 1, 2, 4, ... and max_batch."""
    return sorted({bucket(size, max_batch) for size in range(1, max_batch + 1)})


class InferenceEngine:
    """Probabilities and every class's heatmap for a batch of images, from one compiled forward pass.

    Batches are padded to a few fixed shapes (powers of two up to max_batch), so the traced graph is
    reused instead of retraced for every new batch size. Every shape is warmed up and timed at start,
    not on a person's first image: ``bucket_seconds`` is what the worker sizes its batches by
    (worker/batching.py).
    """

    def __init__(self, model: keras.Model, manifest: Manifest, max_batch: int = 16, runtime: str = runtimes.FLOAT32,
                 artifact_dir: Path | None = None, forward: runtimes.Forward | None = None):
        self.manifest = manifest
        self.labels = manifest.labels
        self.input_size = manifest.input_size
        self.max_batch = max(1, max_batch)
        logits_layer = model.get_layer(manifest.logits_layer)
        self.features_and_logits = runtimes.features_and_logits(model, manifest)
        self.fast_cam = has_gap_dense_head(model, manifest.cam_layer, manifest.logits_layer)
        if not self.fast_cam and (keras.backend.backend() != "tensorflow" or runtime != runtimes.FLOAT32):
            raise ValueError(f"this model's head is not global average pooling + dense, so its heatmaps need gradient "
                             f"Grad-CAM, which the worker does with TensorFlow at float32 only (KERAS_BACKEND="
                             f"{keras.backend.backend()}, runtime {runtime})")
        self.dense_kernel = (np.asarray(keras.ops.convert_to_numpy(logits_layer.kernel), dtype=np.float32)
                             if self.fast_cam else None)
        self.runtime = runtimes.recorded_name(runtime)  # what every result records
        self._forward = forward or runtimes.build_forward(runtime, model, manifest, artifact_dir)
        self.bucket_seconds = {shape: self._warm_up(shape) for shape in buckets(self.max_batch)}

    def _warm_up(self, shape: int) -> float:
        """Compile the shape, then time two more passes of it: the faster one (seconds), which other work on
        the machine disturbs less."""
        batch = np.zeros((shape, *self.input_size, 3), np.float32)
        self.forward(batch)
        passes = []
        for _ in range(2):
            started = time.perf_counter()
            self.forward(batch)
            passes.append(time.perf_counter() - started)
        return min(passes)

    def preprocess(self, grey: np.ndarray) -> np.ndarray:
        return model_input(grey, self.input_size, self.manifest.preprocessing)

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed [N, H, W, 3] (N ≤ max_batch) → features, logits, run at a fixed padded shape."""
        count = len(batch)
        shape = bucket(count, self.max_batch)
        if shape > count:
            batch = np.concatenate([batch, np.zeros((shape - count, *batch.shape[1:]), batch.dtype)])
        features, logits = self._forward(batch)
        return features[:count].astype(np.float32), logits[:count].astype(np.float64)

    def analyse(self, images: list[np.ndarray]) -> list[Analysis]:
        return self.analyse_preprocessed(np.stack([self.preprocess(image) for image in images]))

    def analyse_preprocessed(self, batch: np.ndarray) -> list[Analysis]:
        results = []
        for start in range(0, len(batch), self.max_batch):
            chunk = batch[start:start + self.max_batch]
            features, logits = self.forward(chunk)
            probabilities = 1.0 / (1.0 + np.exp(-logits))
            if self.fast_cam:
                maps = cam_maps(features, self.dense_kernel)
            else:
                maps = gradcam_maps(self.features_and_logits, chunk, list(range(len(self.labels))))
            results += [
                Analysis(
                    probabilities={label: float(probabilities[i, c]) for c, label in enumerate(self.labels)},
                    heatmaps={label: maps[i, c] for c, label in enumerate(self.labels)},
                )
                for i in range(len(chunk))
            ]
        return results
