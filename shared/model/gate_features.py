"""What the input gate measures on an image: a few dozen statistics of its grey levels at 64×64.

One fixed small resolution serves every source: the 64-pixel NIH PNGs the gate is fitted on and the
full-resolution X-rays it serves are indistinguishable once shrunk to 64×64 with INTER_AREA (averaging, no
aliasing), and 4,096 pixels cost well under a millisecond. The statistics are chosen for what tells a
chest radiograph from what people upload instead:

- the intensity histogram, its percentiles and skew: radiographs use the whole grey range, with black air
  around the body; documents are mostly white, inverted X-rays mostly bright;
- edges, flat regions and high-frequency energy: photographs of scenes, text and screenshots have sharp
  edges and flat areas, noise has only high frequencies, an X-ray is smooth with soft edges;
- a coarse 5×5 grid of mean intensities (the layout: a bright mediastinum and spine between two dark lungs,
  brighter abdomen below), and the mediastinum's contrast across the width and, for a turned image, across
  the height;
- left-right against top-bottom symmetry and the direction of the edges: a chest is left-right symmetric
  with mostly horizontal structure (ribs, diaphragm); turned by 90° it is top-bottom symmetric instead.
"""
from __future__ import annotations

import cv2
import numpy as np

SIDE = 64
SAMPLED = 4 * SIDE  # a larger image is first sampled to at most this many pixels a side (see ``small``)
GRID = 5
HISTOGRAM_BINS = 16
PERCENTILES = (2, 25, 50, 75, 98)
STRONG_EDGE = 0.25  # Sobel magnitude (on 0..1 grey) that counts as a sharp edge
FLAT_DEVIATION = 0.01  # a 3×3 neighbourhood with less spread than this counts as flat (2.5 grey levels)

FEATURE_NAMES: tuple[str, ...] = (
    *(f"histogram_{index:02d}" for index in range(HISTOGRAM_BINS)),
    "mean", "deviation", *(f"percentile_{p:02d}" for p in PERCENTILES), "contrast", "skew", "entropy",
    "black_fraction", "white_fraction",
    "edge_mean", "strong_edge_fraction", "flat_fraction", "high_frequency", "horizontal_edge_share",
    *(f"grid_{row}_{column}" for row in range(GRID) for column in range(GRID)),
    "mediastinum_across_width", "mediastinum_across_height",
    "symmetry_left_right", "symmetry_top_bottom", "border_minus_centre",
)


def small(grey: np.ndarray) -> np.ndarray:
    """The 8-bit grey image at SIDE×SIDE, still 8-bit: each pixel the mean of its block (INTER_AREA), over
    SAMPLED×SAMPLED evenly spaced pixels of a larger image rather than all of them. OpenCV's INTER_AREA reads
    every pixel and, at a factor like 1000/64, takes 2 ms on one core here: more than the gate may cost. On the
    57 full-resolution NIH X-rays no feature moved by more than a tenth of its spread across X-rays."""
    height, width = grey.shape[:2]
    if height > SAMPLED or width > SAMPLED:
        grey = cv2.resize(grey, (min(width, SAMPLED), min(height, SAMPLED)), interpolation=cv2.INTER_NEAREST)
        height, width = grey.shape
    interpolation = cv2.INTER_AREA if height > SIDE or width > SIDE else cv2.INTER_LINEAR
    return cv2.resize(grey, (SIDE, SIDE), interpolation=interpolation)


def _symmetry(centred: np.ndarray, squares: float) -> tuple[float, float]:
    """Correlation of the image with its mirror image left-right, and top-bottom (1: symmetric)."""
    if squares < 1e-9:
        return 1.0, 1.0
    return (float((centred * centred[:, ::-1]).sum()) / squares, float((centred * centred[::-1, :]).sum()) / squares)


def _band_weights() -> np.ndarray:
    """Over the columns: the mean of the central fifth minus the mean of the two fifths either side of it."""
    fifth, weights = SIDE // 5, np.zeros(SIDE)
    weights[2 * fifth: 3 * fifth] = 1.0 / fifth
    weights[fifth: 2 * fifth] = weights[3 * fifth: 4 * fifth] = -0.5 / fifth
    return weights


BAND = _band_weights()  # positive for a bright mediastinum between dark lungs
MIDDLE = slice(SIDE // 5, 4 * SIDE // 5)  # the rows (or columns) the band is measured over
GREY = np.arange(256) / 255.0


def _level_statistics(levels: np.ndarray) -> list[float]:
    """Histogram, moments, percentiles, entropy and clipped fractions, all from one 256-level count."""
    share = np.bincount(levels.ravel(), minlength=256) / levels.size
    mean, second, third = float(share @ GREY), float(share @ GREY ** 2), float(share @ GREY ** 3)
    variance = max(second - mean * mean, 0.0)
    deviation = variance ** 0.5
    skew = (third - 3 * mean * second + 2 * mean ** 3) / deviation ** 3 if deviation > 1e-3 else 0.0
    percentiles = np.searchsorted(np.cumsum(share), np.array(PERCENTILES) / 100.0 - 1e-9) / 255.0
    fine = share.reshape(64, 4).sum(axis=1)
    used = fine[fine > 0]
    entropy = float(-(used @ np.log(used)) / np.log(64))
    return [*share.reshape(HISTOGRAM_BINS, -1).sum(axis=1), mean, deviation, *percentiles,
            float(percentiles[-1] - percentiles[0]), skew, entropy, float(share[:3].sum()), float(share[253:].sum())]


def features(grey: np.ndarray) -> np.ndarray:
    """FEATURE_NAMES, in order, for an 8-bit grey image of any size (float64)."""
    return features_of_small(small(grey))


def features_of_small(levels: np.ndarray) -> np.ndarray:
    """FEATURE_NAMES for the image already at SIDE×SIDE (``small``), so that the gate shrinks it once."""
    statistics = _level_statistics(levels)
    mean, deviation = statistics[HISTOGRAM_BINS], statistics[HISTOGRAM_BINS + 1]
    image = levels.astype(np.float32) / 255.0
    across = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3) / 4.0  # change along x: vertical edges
    along = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3) / 4.0  # change along y: horizontal edges
    magnitude = cv2.magnitude(across, along)
    local_mean = cv2.blur(image, (3, 3))
    local_variance = cv2.blur(image * image, (3, 3)) - local_mean * local_mean
    high = float(cv2.absdiff(image, cv2.GaussianBlur(image, (0, 0), 1.0)).sum()) / image.size / max(deviation, 1e-3)
    horizontal, vertical = float(cv2.norm(along, cv2.NORM_L1)), float(cv2.norm(across, cv2.NORM_L1))
    grid = cv2.resize(image, (GRID, GRID), interpolation=cv2.INTER_AREA) - mean
    edge, quarter = SIDE // 16, SIDE // 4
    centre = float(image[quarter:-quarter, quarter:-quarter].sum()) / (SIDE - 2 * quarter) ** 2
    border = (mean * SIDE * SIDE - float(image[edge:-edge, edge:-edge].sum())) / (SIDE * SIDE - (SIDE - 2 * edge) ** 2)
    centred = image - np.float32(mean)
    return np.array([
        *statistics,
        float(magnitude.sum()) / image.size, np.count_nonzero(magnitude > STRONG_EDGE) / image.size,
        np.count_nonzero(local_variance < FLAT_DEVIATION ** 2) / image.size, high,
        horizontal / max(horizontal + vertical, 1e-9),
        *grid.ravel(),
        float(image[MIDDLE].sum(axis=0) @ BAND) / (MIDDLE.stop - MIDDLE.start),
        float(image[:, MIDDLE].sum(axis=1) @ BAND) / (MIDDLE.stop - MIDDLE.start),
        *_symmetry(centred, float((centred * centred).sum())),
        border - centre,
    ], dtype=np.float64)
