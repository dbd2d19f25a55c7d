"""Generated pictures the input gate must refuse: noise, gradients, flat images, text documents, screenshots,
charts and shapes. Each generator draws one picture of random size and content from the generator it is
given and says the result the gate should give (all are "not_a_radiograph")."""
from __future__ import annotations

import cv2
import numpy as np

NOT_A_RADIOGRAPH = "not_a_radiograph"
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
         cv2.FONT_HERSHEY_PLAIN)
WORDS = ("patient", "report", "the", "chest", "findings", "normal", "image", "file", "upload", "settings", "date",
         "total", "invoice", "meeting", "notes", "summary", "page", "results", "lorem", "ipsum", "dolor", "2024")


def _size(rng: np.random.Generator) -> tuple[int, int]:
    """(height, width): 96 to 1200 pixels on the long side, the short side 60% to 100% of it either way."""
    long_side = int(np.exp(rng.uniform(np.log(96), np.log(1200))))
    short_side = max(40, round(long_side * rng.uniform(0.6, 1.0)))
    return (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)


def _colour(rng: np.random.Generator, grey: bool, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    if grey:
        level = int(rng.integers(low, high))
        return level, level, level
    return tuple(int(v) for v in rng.integers(low, high, 3))


def _text_line(rng: np.random.Generator, length: int = 8) -> str:
    return " ".join(rng.choice(WORDS, int(rng.integers(2, length))))


def uniform_noise(rng):
    height, width = _size(rng)
    block = int(rng.choice([1, 1, 2, 4, 8]))  # coarse noise too: blocks of one value
    noise = rng.integers(0, 256, (max(1, height // block), max(1, width // block)), dtype=np.uint8)
    return cv2.resize(noise, (width, height), interpolation=cv2.INTER_NEAREST), NOT_A_RADIOGRAPH


def gaussian_noise(rng):
    height, width = _size(rng)
    noise = rng.normal(rng.uniform(60, 200), rng.uniform(10, 70), (height, width)).astype(np.float32)
    if rng.random() < 0.5:  # smoothed: clouds
        noise = cv2.GaussianBlur(noise, (0, 0), rng.uniform(1, 6))
        noise = (noise - noise.mean()) / max(float(noise.std()), 1e-3) * rng.uniform(15, 60) + rng.uniform(60, 200)
    return np.clip(noise, 0, 255).astype(np.uint8), NOT_A_RADIOGRAPH


def colour_noise(rng):
    height, width = _size(rng)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8), NOT_A_RADIOGRAPH


def gradient(rng):
    height, width = _size(rng)
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        ramp = rows * np.sin(angle) + columns * np.cos(angle)
    else:
        ramp = np.hypot(rows - rng.uniform(0, height), columns - rng.uniform(0, width))
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    start, end = rng.uniform(0, 255, 2)
    image = start + (end - start) * ramp + rng.normal(0, rng.uniform(0, 4), ramp.shape)
    return np.clip(image, 0, 255).astype(np.uint8), NOT_A_RADIOGRAPH


def flat(rng):
    height, width = _size(rng)
    noise = rng.normal(0, rng.uniform(0, 1.5), (height, width))
    image = np.full((height, width), rng.uniform(0, 255), np.float32) + noise
    return np.clip(image, 0, 255).astype(np.uint8), NOT_A_RADIOGRAPH


def text_document(rng):
    height, width = _size(rng)
    paper = int(rng.integers(200, 256))
    image = np.full((height, width), paper, np.uint8)
    scale = rng.uniform(0.3, 1.2) * width / 600
    step = max(8, int(30 * scale))
    margin = int(width * rng.uniform(0.03, 0.12))
    ink = int(rng.integers(0, 90))
    for row in range(margin + step, height - margin, step):
        if rng.random() < 0.15:
            continue  # a paragraph break
        cv2.putText(image, _text_line(rng, 14), (margin, row), FONTS[int(rng.integers(len(FONTS)))], scale, ink,
                    max(1, int(scale * 1.5)), cv2.LINE_AA)
    if rng.random() < 0.4:  # scanned: soft, a little noise
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5))
        image = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    return image, NOT_A_RADIOGRAPH


def screenshot(rng):
    height, width = _size(rng)
    grey = rng.random() < 0.5
    image = np.zeros((height, width, 3), np.uint8)
    light = rng.random() < 0.7  # most applications are light; some dark
    image[:] = _colour(rng, grey, 180, 256) if light else _colour(rng, grey, 0, 80)
    cv2.rectangle(image, (0, 0), (width, max(12, height // 20)), _colour(rng, grey), -1)  # title bar
    for _ in range(int(rng.integers(3, 12))):  # panels, buttons, fields
        x, y = int(rng.integers(0, width - 20)), int(rng.integers(height // 20, height - 12))
        w, h = int(rng.integers(20, max(21, width // 2))), int(rng.integers(12, max(13, height // 3)))
        cv2.rectangle(image, (x, y), (x + w, y + h), _colour(rng, grey), -1 if rng.random() < 0.6 else 1)
        if rng.random() < 0.7:
            cv2.putText(image, _text_line(rng, 4), (x + 4, y + min(h - 2, 16)), FONTS[0], 0.4, _colour(rng, grey),
                        1, cv2.LINE_AA)
    return (cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if grey else image), NOT_A_RADIOGRAPH


def chart(rng):
    height, width = _size(rng)
    grey = rng.random() < 0.5
    image = np.full((height, width, 3), 255 if rng.random() < 0.8 else 30, np.uint8)
    left, bottom = width // 10, height - height // 10
    cv2.line(image, (left, bottom), (width - 10, bottom), (0, 0, 0), 1)
    cv2.line(image, (left, 10), (left, bottom), (0, 0, 0), 1)
    for _ in range(int(rng.integers(1, 5))):
        if rng.random() < 0.6:
            walk = np.cumsum(rng.normal(0, 1, 60))
            walk = (walk - walk.min()) / max(float(np.ptp(walk)), 1e-6)
            points = np.stack([np.linspace(left, width - 10, 60), bottom - walk * (bottom - 20)], 1).astype(np.int32)
            cv2.polylines(image, [points], False, _colour(rng, grey, 0, 200), int(rng.integers(1, 4)), cv2.LINE_AA)
        else:
            bars = int(rng.integers(3, 12))
            bar_width = (width - 10 - left) // bars
            for index in range(bars):
                top = int(bottom - rng.uniform(0.1, 0.9) * (bottom - 20))
                cv2.rectangle(image, (left + index * bar_width + 2, top), (left + (index + 1) * bar_width - 2, bottom),
                              _colour(rng, grey, 0, 220), -1)
    return (cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if grey else image), NOT_A_RADIOGRAPH


def shapes(rng):
    height, width = _size(rng)
    image = np.full((height, width), int(rng.integers(0, 256)), np.uint8)
    for _ in range(int(rng.integers(2, 15))):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        size = (int(rng.integers(5, max(6, width // 3))), int(rng.integers(5, max(6, height // 3))))
        level = int(rng.integers(0, 256))
        if rng.random() < 0.5:
            cv2.ellipse(image, centre, size, float(rng.uniform(0, 180)), 0, 360, level, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(image, centre, (centre[0] + size[0], centre[1] + size[1]), level, -1)
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(1, 8))
    return image, NOT_A_RADIOGRAPH


GENERATORS = {
    "uniform noise": uniform_noise, "Gaussian noise or clouds": gaussian_noise, "colour noise": colour_noise,
    "gradient": gradient, "flat": flat, "text document": text_document, "screenshot": screenshot, "chart": chart,
    "shapes": shapes,
}
