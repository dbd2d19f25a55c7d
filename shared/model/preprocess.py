"""The model-input transform, shared by training and the worker so both see exactly the same pixels."""
from __future__ import annotations

import cv2
import numpy as np

from shared.model.manifest import PREPROCESSING


def model_input(grey: np.ndarray, input_size: tuple[int, int], preprocessing: str) -> np.ndarray:
    """8-bit greyscale image of any size → float32 [height, width, 3]: square resize, grey to 3 channels, scaled."""
    height, width = input_size
    scale, offset = PREPROCESSING[preprocessing]
    # INTER_AREA averages when shrinking (no aliasing on 1024 → 64); linear when enlarging.
    interpolation = cv2.INTER_AREA if grey.shape[0] > height or grey.shape[1] > width else cv2.INTER_LINEAR
    resized = cv2.resize(grey, (width, height), interpolation=interpolation).astype(np.float32)
    resized = resized * scale + offset
    return np.repeat(resized[:, :, None], 3, axis=2)
