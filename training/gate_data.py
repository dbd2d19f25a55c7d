"""The input gate's examples: real frontal chest X-rays, and the same X-rays turned into what the gate must
refuse (inverted, on their side, upside down, cut to a corner, tinted). Pictures that are not chest X-rays
are in training/gate_pictures.py.

Every example is encoded as a file and read back the way the worker reads an upload
(``shared.imaging.images.decode_image_and_colour``), so the gate is fitted and measured on the pixels it
will be served. Each carries the result the gate should give, the row of the confusion table it counts in
(``kind``), and the group it is held out with: a patient for X-rays (an X-ray and everything made from it
are held out together), a source or a generated kind for the rest.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from shared.imaging.images import decode_image_and_colour, inspect_image
from shared.model.gate import Seen
from training.data import find_images, read_label_table

MAX_PIXELS = 50_000_000
CHEST = "chest"  # real frontal chest X-rays: the gate must let them through
TRANSFORMED = "transformed"  # real X-rays made into what the gate must refuse
OTHER = "other"  # pictures that are no chest X-ray at all
VARIANT = "variant"  # mild variants of real X-rays (contrast, a few degrees, a border): fitted as ok, never counted
NIH_64 = "chest X-ray, NIH 64 px"
NIH_FULL = "chest X-ray, NIH full resolution (never fitted)"
TRANSFORMS = {  # kind → (result the gate should give, how the X-ray is changed)
    "X-ray inverted": "inverted",
    "X-ray rotated 90°": "rotated",
    "X-ray rotated 180°": "rotated",
    "X-ray cut to a corner": "not_a_chest",
    "X-ray tinted (colour)": "not_a_radiograph",
}


@dataclasses.dataclass(frozen=True)
class Sample:
    seen: Seen
    expected: str  # the result the gate should give
    kind: str  # its row in the confusion table
    group: str  # held out together: "patient 231", "skimage astronaut", "generated screenshot"
    family: str  # CHEST, TRANSFORMED, OTHER or VARIANT
    fit: bool = True  # False: the gate is never fitted on it (the full-resolution X-rays)


def encoded(pixels: np.ndarray, jpeg_quality: int | None = None) -> bytes:
    """PNG, or JPEG at jpeg_quality: how a picture reaches the service."""
    ok, data = cv2.imencode(".jpg" if jpeg_quality else ".png", pixels,
                            [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if jpeg_quality else [])
    if not ok:
        raise ValueError(f"OpenCV could not encode an image of shape {pixels.shape}")
    return data.tobytes()


def seen_from_bytes(data: bytes) -> Seen:
    """What the gate sees of an uploaded file, read as the worker reads it."""
    info = inspect_image(data, MAX_PIXELS)
    grey, colour = decode_image_and_colour(data, MAX_PIXELS)
    facts = info.dicom
    return Seen(grey, colour, info.width, info.height, facts.view_position if facts else None,
                facts.body_part if facts else None)


def transformed(grey: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """The X-ray changed as ``kind`` says (grey, or BGR for the tint)."""
    if kind == "X-ray inverted":
        return 255 - grey
    if kind == "X-ray rotated 90°":
        return np.ascontiguousarray(np.rot90(grey, 1 if rng.random() < 0.5 else -1))
    if kind == "X-ray rotated 180°":
        return np.ascontiguousarray(grey[::-1, ::-1])
    if kind == "X-ray cut to a corner":
        height, width = grey.shape
        keep = rng.uniform(0.3, 0.5)
        rows, columns = max(16, round(height * keep)), max(16, round(width * keep))
        top = 0 if rng.random() < 0.5 else height - rows
        left = 0 if rng.random() < 0.5 else width - columns
        corner = grey[top:top + rows, left:left + columns]
        # A person would zoom a small picture up; a large one is sent as cut.
        return cv2.resize(corner, (width, height), interpolation=cv2.INTER_CUBIC) if width < 256 else corner
    if kind == "X-ray tinted (colour)":
        tint = 1.0 - rng.uniform(0.3, 0.6) * rng.dirichlet(np.ones(3)) * 3 / 2  # one or two channels weaker
        tint /= tint.max()
        return np.clip(grey[:, :, None] * tint[None, None, :], 0, 255).astype(np.uint8)
    raise ValueError(f"unknown transform {kind!r}; expected one of {sorted(TRANSFORMS)}")


def mild_variant(grey: np.ndarray, rng: np.random.Generator) -> bytes:
    """The same X-ray as another department might send it: other contrast, brightness and gamma (down to a
    washed-out grey), tilted up to 12°, framed tighter or looser and off-centre on a dark background (a child
    in a large field), with a black border, mirrored, in a portrait or landscape frame, softer, or as a JPEG."""
    image = grey.astype(np.float32) / 255.0
    contrast = rng.uniform(0.55, 1.2)
    lift = rng.uniform(-0.08, 0.08) + max(0.0, 1.0 - contrast) * rng.uniform(0.0, 0.4)  # washed out: grey blacks
    image = np.clip((image - 0.5) * contrast + 0.5 + lift, 0, 1)
    image = image ** rng.uniform(0.7, 1.4)
    height, width = image.shape
    zoom = rng.uniform(1.0, 1.12) if rng.random() < 0.5 else rng.uniform(0.6, 1.0)
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-12, 12), zoom)
    turn[:, 2] += rng.uniform(-1, 1, 2) * (1 - min(zoom, 1.0)) * np.array([width, height]) / 2
    background = float(rng.uniform(0, 0.1))
    image = cv2.warpAffine(image, turn, (width, height), borderMode=cv2.BORDER_CONSTANT, borderValue=background)
    if rng.random() < 0.3:
        border = max(1, round(width * rng.uniform(0.02, 0.06)))
        image = cv2.copyMakeBorder(image[border:-border, border:-border], border, border, border, border,
                                   cv2.BORDER_CONSTANT, value=0.0)
    if rng.random() < 0.5:
        image = image[:, ::-1]
    if rng.random() < 0.4:  # a portrait or landscape detector: the same chest in a narrower frame
        keep = rng.uniform(0.8, 1.0)
        if rng.random() < 0.7:
            columns = round(width * keep)
            left = int(rng.integers(0, width - columns + 1))
            image = image[:, left:left + columns]
        else:
            rows = round(height * keep)
            top = int(rng.integers(0, height - rows + 1))
            image = image[top:top + rows]
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(np.ascontiguousarray(image), (0, 0), rng.uniform(0.3, 0.9))
    pixels = np.round(image * 255).astype(np.uint8)
    return encoded(pixels, int(rng.integers(60, 96)) if rng.random() < 0.4 else None)


def chest_samples(images: Path, labels: Path, seed: int = 0, fit: bool = True, limit: int | None = None,
                  variants: int = 2) -> list[Sample]:
    """Every X-ray of the label table found under ``images``, each with one of every transform and (when
    fitted on) ``variants`` mild variants. ``limit``: only the first patients' X-rays, up to that many."""
    table, found = read_label_table(labels), find_images(images)
    records = sorted((record for name, record in table.items() if name in found),
                     key=lambda record: (record.patient_id, record.image_index))
    if not records:
        raise ValueError(f"none of the images named in {labels} is under {images}")
    rng = np.random.default_rng(seed)
    kind = NIH_64 if fit else NIH_FULL
    samples = []
    for record in records[:limit]:
        data = found[record.image_index].read_bytes()
        seen, group = seen_from_bytes(data), f"patient {record.patient_id}"
        samples.append(Sample(seen, "ok", kind, group, CHEST, fit))
        for name, result in TRANSFORMS.items():
            pixels = transformed(seen.grey, name, rng)
            samples.append(Sample(seen_from_bytes(encoded(pixels)), result, name, group, TRANSFORMED, fit))
        for _ in range(variants if fit else 0):
            samples.append(Sample(seen_from_bytes(mild_variant(seen.grey, rng)), "ok", "X-ray, mild variant (fitted as "
                                  "ok)", group, VARIANT, fit))
    return samples
