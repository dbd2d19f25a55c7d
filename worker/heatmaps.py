"""Class activation maps, on logits, for every class.

``cam_maps`` is the fast path for a GlobalAveragePooling → Dense head: there the gradient of logit c
with respect to feature map k is W[k, c] / (H·W) everywhere, so Grad-CAM is the plain CAM
Σ_k W[k, c]·A_k up to a positive constant (Selvaraju et al., "Grad-CAM generalizes CAM"), and all
classes come from the features of the forward pass that gave the probabilities.

``gradcam_maps`` is the generic gradient Grad-CAM, for heads of any shape and as the fast path's
reference in tests. Both take gradients on logits, not on sigmoid outputs, which saturate.
"""
from __future__ import annotations

import numpy as np


def normalise(maps: np.ndarray) -> np.ndarray:
    """ReLU then scale each map to [0, 1]; a map with no positive evidence stays all zeros (never NaN)."""
    maps = np.nan_to_num(np.maximum(maps, 0.0), nan=0.0, posinf=0.0)
    peak = maps.max(axis=(-2, -1), keepdims=True)
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 1e-12).astype(np.float32)


def raw_cams(features: np.ndarray, dense_kernel: np.ndarray) -> np.ndarray:
    """features [B, H, W, K], kernel [K, C] → Σ_k W[k, c]·A_k as [B, C, H, W], before ReLU and scaling."""
    return np.einsum("bhwk,kc->bchw", features, dense_kernel, optimize=True)


def cam_maps(features: np.ndarray, dense_kernel: np.ndarray) -> np.ndarray:
    """features [B, H, W, K], kernel [K, C] → normalised maps [B, C, H, W]."""
    return normalise(raw_cams(features, dense_kernel))


def gradcam_maps(features_and_logits, images: np.ndarray, classes: list[int]) -> np.ndarray:
    """Gradient Grad-CAM: images [B, H, W, 3] → normalised maps [B, len(classes), h, w]. TensorFlow backend
    only (the engine refuses a model that would need it on another backend)."""
    import tensorflow as tf

    maps = []
    for class_index in classes:
        with tf.GradientTape() as tape:
            features, logits = features_and_logits(images, training=False)
            target = logits[:, class_index]
        grads = tape.gradient(target, features)
        weights = tf.reduce_mean(grads, axis=(1, 2))  # [B, K]
        maps.append(tf.einsum("bhwk,bk->bhw", features, weights).numpy())
    return normalise(np.stack(maps, axis=1))
