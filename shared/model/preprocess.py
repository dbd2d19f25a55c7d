"""The model-input transform, shared by training and the worker so both see exactly the same pixels."""
from __future__ import annotations

import functools

import cv2
import numpy as np

from shared.model.manifest import PREPROCESSING


def model_input(grey: np.ndarray, input_size: tuple[int, int], preprocessing: str) -> np.ndarray:
    """8-bit greyscale image of any size → float32 [height, width, 3]: square resize, grey to 3 channels, scaled."""
    height, width = input_size
    scale, offset = PREPROCESSING[preprocessing]
    # INTER_AREA averages when shrinking (no aliasing on 1024 → 64); linear when enlarging.
    interpolation = cv2.INTER_AREA if grey.shape[0] > height or grey.shape[1] > width else cv2.INTER_LINEAR
    resized = cv2.resize(grey, (width, height), interpolation=interpolation)
    # One lookup per pixel (the same float32 arithmetic, done once per grey level), then the three channels.
    return cv2.merge([_levels(scale, offset)[resized]] * 3)


@functools.lru_cache(maxsize=8)
def _levels(scale: float, offset: float) -> np.ndarray:
    return np.arange(256, dtype=np.float32) * scale + offset
