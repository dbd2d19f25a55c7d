"""Image checks and decoding, by content, never by file name.

``inspect_image`` reads only the header (cheap, used by the web at upload) and rejects what is not a
PNG or JPEG or is absurdly large in pixels before anything decodes it (a decoder bomb costs nothing).
``decode_image`` (used by the worker) fully decodes with OpenCV and returns an 8-bit greyscale array:
chest X-rays are greyscale, colour and alpha channels in the NIH files are an artefact of export.
"""
from __future__ import annotations

import dataclasses
import io

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

FORMATS = {"PNG": ("png", "image/png"), "JPEG": ("jpg", "image/jpeg")}


class ImageError(ValueError):
    """The bytes are not an image the service can analyse; the message is for the person who sent it."""


class ImageTooLarge(ImageError):
    """The image has more pixels than the service accepts."""


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    format: str  # "PNG" or "JPEG"
    width: int
    height: int

    @property
    def extension(self) -> str:
        return FORMATS[self.format][0]

    @property
    def content_type(self) -> str:
        return FORMATS[self.format][1]


def inspect_image(data: bytes, max_pixels: int) -> ImageInfo:
    if not data:
        raise ImageError("the file is empty")
    try:
        # Image.open reads the header only; pixel data is not decoded here.
        with Image.open(io.BytesIO(data)) as image:
            fmt, (width, height) = image.format, image.size
    except Image.DecompressionBombError:
        raise ImageTooLarge(f"the image is too large: more than {max_pixels:,} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ImageError("the file is not a PNG or JPEG image") from None
    if fmt not in FORMATS:
        raise ImageError(f"the file is a {fmt} image; only PNG and JPEG are accepted")
    if width < 1 or height < 1:
        raise ImageError(f"the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image is too large: {width}x{height} = {width * height:,} pixels, the limit is {max_pixels:,}"
        )
    return ImageInfo(fmt, width, height)


def to_grey8(pixels: np.ndarray) -> np.ndarray:
    """Any decoded PNG/JPEG array (grey or colour, with or without alpha, 8 or 16 bit) to 8-bit grey."""
    if pixels.ndim == 3:
        channels = pixels.shape[2]
        if channels == 4:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_BGRA2GRAY)
        elif channels == 3:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
        elif channels == 1:
            pixels = pixels[:, :, 0]
        else:
            raise ImageError(f"the image has {channels} channels; expected 1, 3 or 4")
    if pixels.dtype == np.uint16:
        # 16-bit X-rays rarely use the full range (12-bit detectors): stretch what is used to 0..255.
        low, high = int(pixels.min()), int(pixels.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        pixels = ((pixels.astype(np.float32) - low) * scale).round().astype(np.uint8)
    elif pixels.dtype != np.uint8:
        raise ImageError(f"unsupported pixel type {pixels.dtype}")
    return np.ascontiguousarray(pixels)


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    inspect_image(data, max_pixels)
    try:
        # Quiet OpenCV's own warnings: the ImageError below says what went wrong.
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        finally:
            cv2.utils.logging.setLogLevel(previous)
    except cv2.error as exc:
        raise ImageError(f"the image could not be decoded ({exc.err or 'OpenCV error'})") from None
    if pixels is None:
        raise ImageError("the image could not be decoded: the file is damaged or truncated")
    return to_grey8(pixels)
