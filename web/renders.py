"""Overlay images drawn from stored maps, on request (API clients, reports, thumbnails), and cached.

Only the default look (default opacity, JPEG) is cached, next to where workers used to write overlays
(``overlays/<job>/``), so deleting a job removes its cache with it. Results from before maps were
stored as data keep the JPEG their worker drew.
"""
from __future__ import annotations

import cv2

from shared.db.models import Finding, Job
from shared.imaging import maps
from shared.imaging.images import decode_image
from shared.jobs.storage import LocalStorage, display_key, overlay_key
from shared.model.labels import NO_FINDING

THUMB_SIDE = 160
FORMATS = {"jpeg": "image/jpeg", "png": "image/png"}


class RenderError(LookupError):
    """There is nothing to draw for this job and label; the message says why."""


def base_grey(storage: LocalStorage, job: Job, max_pixels: int, max_decoded_bytes: int):
    if not job.image_key:
        raise RenderError("this job has no stored image")
    return maps.base_image(decode_image(storage.get(job.image_key), max_pixels, max_decoded_bytes))


def display_png(storage: LocalStorage, job: Job, max_pixels: int, max_decoded_bytes: int) -> bytes:
    """A DICOM image's display pixels (windowed, at most 1024 px) as PNG, for browsers; cached."""
    key = display_key(job.id)
    if storage.exists(key):
        return storage.get(key)
    ok, encoded = cv2.imencode(".png", decode_image(storage.get(job.image_key), max_pixels, max_decoded_bytes))
    if not ok:
        raise RenderError("OpenCV could not encode the image as PNG")
    data = encoded.tobytes()
    storage.put(key, data)
    return data


def _cache_key(job: Job, label: str, size: str) -> str:
    key = overlay_key(job.id, label)
    return key if size == "full" else key.replace(".jpg", f"-{size}.jpg")


def overlay(storage: LocalStorage, job: Job, label: str, *, image_format: str = "jpeg",
            opacity: float = maps.DEFAULT_OPACITY, size: str = "full", max_pixels: int = 50_000_000,
            max_decoded_bytes: int = 256 * 2**20) -> tuple[bytes, str]:
    """(image bytes, content type) of the label's heatmap over the image."""
    if label == NO_FINDING:
        raise RenderError('"No Finding" is a summary, not a finding: it has no heatmap')
    finding: Finding | None = next((f for f in job.findings if f.label == label), None)
    if finding is None:
        raise RenderError(f"job {job.id} has no result for {label!r}")
    if job.maps is None:
        if finding.overlay_key and size == "full":  # drawn by a worker before maps were data
            return storage.get(finding.overlay_key), "image/jpeg"
        raise RenderError(f"job {job.id} has no heatmap for {label!r}")
    cacheable = image_format == "jpeg" and opacity == maps.DEFAULT_OPACITY
    key = _cache_key(job, label, size)
    if cacheable and storage.exists(key):
        return storage.get(key), FORMATS["jpeg"]
    grey = base_grey(storage, job, max_pixels, max_decoded_bytes)
    if size == "thumb":
        scale = THUMB_SIDE / max(grey.shape)
        grey = cv2.resize(grey, (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    data = maps.encode_image(maps.overlay_rgb(grey, maps.decode(job.maps)[label], opacity), image_format)
    if cacheable:
        storage.put(key, data)
    return data, FORMATS[image_format]
