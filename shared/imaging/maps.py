"""Class activation maps as data, and overlays drawn from them (numpy and OpenCV only, never TensorFlow).

The worker stores each image's 15 maps at the model's feature resolution (e.g. 10×10 for Xception at 299)
as one 8-bit greyscale PNG: the maps stacked top to bottom in ``LABELS`` order, each scaled to 0..255
(its own maximum is 255; a map with no positive evidence is all 0). That is a few hundred bytes a job.
The browser colours and blends them itself; the web renders an overlay image here only when an API
client or a report asks for one.

Overlays: the map is resized to the image with bilinear interpolation (OpenCV's INTER_LINEAR: pixel
centres aligned), coloured with the JET table below and blended ``(1 - opacity) · grey + opacity · colour``.
The viewer (web/static/viewer.js) does exactly the same, with this table, so both agree to a level or two.
"""
from __future__ import annotations

import cv2
import numpy as np

from shared.model.labels import LABELS

MAX_SIDE = 1024  # overlays are for looking at: larger images are drawn at this size
DEFAULT_OPACITY = 0.4
# OpenCV's JET colour map as RGB, one row per level 0..255.
JET_RGB = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, ::-1].copy()


class MapsError(ValueError):
    """Stored maps that cannot be read."""


def encode(maps: dict[str, np.ndarray]) -> bytes:
    """label → map in [0, 1] ([h, w] each) → the stored PNG (LABELS order)."""
    stack = np.concatenate([np.asarray(maps[label], np.float32) for label in LABELS], axis=0)
    ok, data = cv2.imencode(".png", np.clip(np.rint(stack * 255.0), 0, 255).astype(np.uint8))
    if not ok:
        raise MapsError("OpenCV could not encode the maps")
    return data.tobytes()


def decode(data: bytes) -> dict[str, np.ndarray]:
    """The stored PNG → label → uint8 map [h, w]."""
    stack = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if stack is None or stack.shape[0] % len(LABELS):
        raise MapsError("the stored maps are damaged")
    height = stack.shape[0] // len(LABELS)
    return {label: stack[i * height:(i + 1) * height] for i, label in enumerate(LABELS)}


def viewing_size(width: int, height: int) -> tuple[int, int]:
    scale = min(1.0, MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def base_image(grey: np.ndarray) -> np.ndarray:
    """The original as grey, at most MAX_SIDE on its long side."""
    height, width = grey.shape
    size = viewing_size(width, height)
    return grey if size == (width, height) else cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def colour(heat: np.ndarray, width: int, height: int) -> np.ndarray:
    """A uint8 map → RGB [height, width, 3] at the image's size."""
    levels = cv2.resize(heat, (width, height), interpolation=cv2.INTER_LINEAR)
    return JET_RGB[levels]


def grey_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2)


def overlay_rgb(base: np.ndarray, heat: np.ndarray, opacity: float = DEFAULT_OPACITY) -> np.ndarray:
    """base grey [H, W] uint8, heat uint8 [h, w] → the blend, RGB [H, W, 3] uint8."""
    height, width = base.shape
    grey = np.repeat(base[:, :, None], 3, axis=2).astype(np.float32)
    blended = (1.0 - opacity) * grey + opacity * colour(heat, width, height).astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def encode_image(rgb: np.ndarray, image_format: str = "jpeg", quality: int = 90) -> bytes:
    if image_format not in ("jpeg", "png"):
        raise ValueError(f"image_format must be 'jpeg' or 'png', got {image_format!r}")
    extension, params = (".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality]) if image_format == "jpeg" else (".png", [])
    ok, data = cv2.imencode(extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise MapsError("OpenCV could not encode the overlay")
    return data.tobytes()
