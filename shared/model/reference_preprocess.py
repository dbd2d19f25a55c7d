"""The model's input transform written out in plain numpy, for whoever reimplements it (a phone app beside
the .tflite files, another language): each step is a small matrix product anyone can port, and a test holds
it to the service's own OpenCV transform (shared/imaging/images.py, shared/model/preprocess.py) on real X-rays.

The resize matters: a plain bilinear resize of a 1024-pixel X-ray to the model's 64 pixels samples a few
pixels instead of averaging all of them (aliasing) and flips 147 of 1,500 threshold decisions. The service:
1. shrinks the decoded 8-bit grey image, if its long side is over WORKING_SIDE (1024), to that side by *area*
   averaging (OpenCV INTER_AREA), rounded to 8 bits;
2. resizes to the model's input size by *area* averaging when shrinking, *bilinear* (half-pixel centres,
   edges clamped; OpenCV INTER_LINEAR) when enlarging, rounded to 8 bits;
3. scales (``value * scale + offset`` as the manifest's ``preprocessing`` says) and repeats grey to 3 channels.
"""
from __future__ import annotations

import numpy as np

from shared.model.manifest import PREPROCESSING

RESIZE = {"working_side": 1024, "shrink": "area (OpenCV INTER_AREA)",
          "enlarge": "bilinear, half-pixel centres, edges clamped (OpenCV INTER_LINEAR)",
          "rounding": "to 8 bits after each resize", "reference": "shared/model/reference_preprocess.py"}


def _area_weights(source: int, target: int) -> np.ndarray:
    """[target, source]: each output pixel the mean of the source interval it covers (fractional overlaps)."""
    edges = np.arange(target + 1) * (source / target)
    left, right = edges[:-1, None], edges[1:, None]
    pixels = np.arange(source)[None, :]
    overlap = np.clip(np.minimum(right, pixels + 1) - np.maximum(left, pixels), 0, None)
    return overlap / (source / target)


def _linear_weights(source: int, target: int) -> np.ndarray:
    """[target, source]: bilinear with half-pixel centres, the position clamped to the image."""
    position = np.clip((np.arange(target) + 0.5) * (source / target) - 0.5, 0, source - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, source - 1)
    weights = np.zeros((target, source))
    weights[np.arange(target), low] += 1 - (position - low)
    weights[np.arange(target), high] += position - low
    return weights


def resize(grey: np.ndarray, height: int, width: int) -> np.ndarray:
    """8-bit grey → 8-bit grey [height, width]: area when shrinking, bilinear when enlarging."""
    rows, columns = grey.shape
    shrink = rows > height or columns > width
    weights = _area_weights if shrink else _linear_weights
    out = weights(rows, height) @ grey.astype(np.float64) @ weights(columns, width).T
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def reference_input(grey: np.ndarray, input_size: tuple[int, int], preprocessing: str) -> np.ndarray:
    """The decoded 8-bit grey X-ray → the model's float32 input [height, width, 3], as the service makes it."""
    rows, columns = grey.shape
    side = RESIZE["working_side"]
    if max(rows, columns) > side:
        scale = side / max(rows, columns)
        grey = resize(grey, max(1, round(rows * scale)), max(1, round(columns * scale)))
    height, width = input_size
    scale, offset = PREPROCESSING[preprocessing]
    resized = resize(grey, height, width).astype(np.float32) * scale + offset
    return np.repeat(resized[:, :, None], 3, axis=2)
