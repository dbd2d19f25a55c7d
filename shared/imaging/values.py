"""An image's own values at full bit depth, for the viewer's window/level, pixel readout and length tool.

The display pixels (images.decode_image) are 8-bit: a 12- or 16-bit DICOM loses most of its levels there, so
windowing them in the browser only stretches 256 levels. This module answers the values themselves: for DICOM
the stored values through the Modality LUT (Rescale Slope/Intercept), for PNG/JPEG the file's grey levels (16
bits kept), at the same working size as the display pixels so that one pixel of each matches. It also answers
the file's own window, window presets and the pixel spacing.

Radiographs have no fixed value scale (CT's Hounsfield units give CT its lung and bone windows; a CR plate's
values depend on the detector and exposure), so the presets are windows over each image's own value
distribution: lung = the darker part of the picture, bone = the brighter part, soft tissue = the middle.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut

from shared.imaging import dicom_in
from shared.imaging.images import WORKING_SIDE, ImageError, _dicom_header, _inspect_dicom, inspect_image

# Percentiles of the values (in display brightness: dark to bright) each preset spans.
PRESETS = {"lung": (1.0, 60.0), "soft_tissue": (15.0, 85.0), "bone": (50.0, 99.5), "full_range": (0.0, 100.0)}


@dataclass(frozen=True)
class Window:
    centre: float
    width: float

    def as_dict(self) -> dict:
        return {"centre": round(self.centre, 3), "width": round(self.width, 3)}


@dataclass(frozen=True)
class Values:
    values: np.ndarray          # float32, working size, row-major
    bits: int                   # bits stored (8 for 8-bit files)
    inverted: bool              # MONOCHROME1: low values are bright
    default: Window             # the file's own window (DICOM), else the whole range
    source: str                 # what the values are, in words
    original_size: tuple[int, int]  # (width, height) of the file, before the working size
    spacing_mm: tuple[float, float] | None  # (row, column) spacing of the file's pixels
    spacing_source: str | None

    def presets(self) -> dict[str, Window]:
        return {"default": self.default, **{name: window_of(self.values, low, high, self.inverted)
                                            for name, (low, high) in PRESETS.items()}}


def window_of(values: np.ndarray, low: float, high: float, inverted: bool) -> Window:
    """The window spanning the values between two brightness percentiles (mirrored for MONOCHROME1)."""
    if inverted:
        low, high = 100.0 - high, 100.0 - low
    bottom, top = (float(v) for v in np.percentile(values, [low, high]))
    width = max(top - bottom, 1.0)
    return Window((bottom + top) / 2, width)


def _fit(values: np.ndarray, side: int) -> np.ndarray:
    """The display pixels' resize (images._fit), on float values: INTER_AREA averages, never invents levels."""
    height, width = values.shape
    if max(height, width) > side:
        scale = side / max(height, width)
        values = cv2.resize(values, (max(1, round(width * scale)), max(1, round(height * scale))),
                            interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(values, dtype=np.float32)


def _first(value) -> float:
    return float(value[0] if isinstance(value, MultiValue) else value)


def _spacing(ds) -> tuple[tuple[float, float] | None, str | None]:
    for keyword, words in (("PixelSpacing", "Pixel Spacing"), ("ImagerPixelSpacing", "Imager Pixel Spacing (at the detector)")):
        spacing = ds.get(keyword)
        try:
            row, column = float(spacing[0]), float(spacing[1])
        except (TypeError, ValueError, IndexError):
            continue
        if row > 0 and column > 0:
            return (row, column), words
    return None, None


def _dicom_values(data: bytes, max_pixels: int, max_decoded_bytes: int | None, side: int) -> Values:
    ds = _dicom_header(data, max_decoded_bytes)
    _inspect_dicom(ds, max_pixels, max_decoded_bytes)
    try:
        stored = dicom_in._stored_pixels(ds)
    except (NotImplementedError, ValueError, RuntimeError, AttributeError, KeyError, TypeError, EOFError) as exc:
        raise ImageError(f"the DICOM pixel data could not be decoded ({str(exc)[:160]})") from None
    values = apply_modality_lut(stored, ds).astype(np.float32)
    inverted = ds.PhotometricInterpretation == "MONOCHROME1"
    if ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        default = Window(_first(ds.WindowCenter), max(_first(ds.WindowWidth), 1.0))
    else:
        default = window_of(values, 0.0, 100.0, inverted)
    spacing, words = _spacing(ds)
    rescaled = ds.get("RescaleSlope") is not None or "ModalityLUTSequence" in ds
    source = "DICOM stored values" + (" through the Modality LUT (rescale slope and intercept)" if rescaled else "")
    return Values(_fit(values, side), int(ds.get("BitsStored", 8)), inverted, default, source,
                  (int(ds.Columns), int(ds.Rows)), spacing, words)


def _picture_values(data: bytes, max_pixels: int, max_decoded_bytes: int | None, side: int) -> Values:
    info = inspect_image(data, max_pixels, max_decoded_bytes)
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
    if pixels is None:
        raise ImageError("the image could not be decoded: the file is damaged or truncated")
    bits = 16 if pixels.dtype == np.uint16 else 8
    values = pixels.astype(np.float32)
    # The display pixels of a 16-bit file stretch its used range (images.to_grey8): that is its default window.
    default = window_of(values, 0.0, 100.0, False) if bits == 16 else Window(127.5, 255.0)
    kind = info.format
    return Values(_fit(values, side), bits, False, default, f"{kind} grey levels ({bits} bit)",
                  (info.width, info.height), None, None)


def image_values(data: bytes, max_pixels: int, max_decoded_bytes: int | None = None,
                 working_side: int = WORKING_SIDE) -> Values:
    if dicom_in.looks_like_dicom(data):
        return _dicom_values(data, max_pixels, max_decoded_bytes, working_side)
    return _picture_values(data, max_pixels, max_decoded_bytes, working_side)
