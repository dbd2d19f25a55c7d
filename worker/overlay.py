"""Heatmap overlays: JET colour map blended on the original X-ray, at the original's aspect."""
from __future__ import annotations

import cv2
import numpy as np

MAX_SIDE = 1024  # overlays are for looking at; larger originals are scaled down to this


def render_overlay(grey: np.ndarray, heatmap: np.ndarray, heat_weight: float = 0.4) -> bytes:
    """grey [H, W] uint8, heatmap [h, w] in [0, 1] → PNG bytes of the blend at the original aspect."""
    height, width = grey.shape
    scale = min(1.0, MAX_SIDE / max(height, width))
    if scale < 1.0:
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        grey = cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA)
    heat = cv2.resize(heatmap.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap(np.clip(heat * 255.0, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    base = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    blended = cv2.addWeighted(base, 1.0 - heat_weight, heat, heat_weight, 0.0)
    ok, encoded = cv2.imencode(".png", blended, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError("OpenCV could not encode the overlay PNG")
    return encoded.tobytes()
