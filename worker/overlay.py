"""Heatmap overlays: JET colour map blended on the original X-ray, at the original's aspect.

JPEG, not PNG: a 1024×1024 blend encodes in milliseconds as JPEG and in a few hundred as PNG, and a
blurred colour map loses nothing a viewer would see at quality 90.
"""
from __future__ import annotations

import cv2
import numpy as np

MAX_SIDE = 1024  # overlays are for looking at; larger originals are scaled down to this
HEAT_SIDE = 256  # the colour map is applied at this size, then scaled: the map is smooth, and 16× cheaper
# OpenCV rebuilds its colour map on every applyColorMap call (~5 ms); build the 256 JET colours once.
JET = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, :]
JPEG_QUALITY = 90
CONTENT_TYPE = "image/jpeg"


def viewing_base(grey: np.ndarray) -> np.ndarray:
    """The original, scaled to at most MAX_SIDE, as BGR: computed once per image, shared by its overlays."""
    height, width = grey.shape
    scale = min(1.0, MAX_SIDE / max(height, width))
    if scale < 1.0:
        grey = cv2.resize(grey, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def render_overlay(grey_or_base: np.ndarray, heatmap: np.ndarray, heat_weight: float = 0.4) -> bytes:
    """grey [H, W] uint8 (or its viewing_base), heatmap [h, w] in [0, 1] → JPEG of the blend."""
    base = grey_or_base if grey_or_base.ndim == 3 else viewing_base(grey_or_base)
    height, width = base.shape[:2]
    scale = min(1.0, HEAT_SIDE / max(height, width))
    small = (max(1, round(width * scale)), max(1, round(height * scale)))
    heat = cv2.resize(heatmap.astype(np.float32), small, interpolation=cv2.INTER_LINEAR)
    heat = JET[np.clip(heat * 255.0, 0, 255).astype(np.uint8)]
    heat = cv2.resize(heat, (width, height), interpolation=cv2.INTER_LINEAR)
    blended = cv2.addWeighted(base, 1.0 - heat_weight, heat, heat_weight, 0.0)
    ok, encoded = cv2.imencode(".jpg", blended, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("OpenCV could not encode the overlay")
    return encoded.tobytes()
