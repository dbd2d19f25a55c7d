"""Reading X-rays sent as DICOM: which files are accepted, and their pixels as a radiologist sees them.

Only single-frame projection radiographs (CR, DX) are accepted: the model was trained on chest
radiographs, and a CT slice or an MR image would get confident nonsense. The pixel data is decoded by
pydicom with the pylibjpeg plugins (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE); a
transfer syntax nothing here can decode fails its job with the syntax's name, never an HTTP 500.

Display pixels follow the standard's pipeline (PS3.3 C.11): the Modality LUT (rescale slope and
intercept, or a LUT sequence), then the VOI LUT (a LUT sequence, or the first window centre/width with its
VOI LUT Function), then MONOCHROME1 is inverted so that bone is always bright, as in the training images.
Without a VOI the values actually used are stretched to 0..255, like 16-bit PNGs (shared/images.py).
"""
from __future__ import annotations

import dataclasses
import io
import warnings

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array
from pydicom.uid import (JPEG2000, JPEG2000Lossless, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless,
                         JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless, RLELossless)

# Compressed transfer syntaxes the pylibjpeg plugins decode; others fail their job with the syntax's name.
DECODABLE = {JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless,
             JPEG2000Lossless, JPEG2000, RLELossless}
RADIOGRAPH_MODALITIES = {"CR": "computed radiography", "DX": "digital radiography"}
FRONTAL_VIEWS = {"PA", "AP"}


def looks_like_dicom(data: bytes) -> bool:
    """A DICOM file (PS3.10) has a 128-byte preamble and then the letters DICM."""
    return len(data) >= 132 and data[128:132] == b"DICM"


@dataclasses.dataclass(frozen=True)
class DicomFacts:
    """What the service keeps of a DICOM image's header besides its pixels (no patient data)."""

    modality: str
    view_position: str | None  # PA, AP, LL, RL, ... as the modality wrote it
    pixel_spacing_mm: float | None  # row spacing at the detector (or the patient, if that is all there is)
    transfer_syntax: str  # its name, e.g. "JPEG 2000 Image Compression (Lossless Only)"
    photometric: str

    @property
    def frontal(self) -> bool | None:
        """None when the file does not say which view it is."""
        return None if not self.view_position else self.view_position in FRONTAL_VIEWS


def read_header(data: bytes) -> pydicom.Dataset:
    """The dataset without decoding its pixels; ValueError with a reason when it is not usable DICOM."""
    try:
        with warnings.catch_warnings():
            # pydicom only warns when a file ends early, and returns what it read; a cut file is refused here.
            warnings.filterwarnings("error", message="End of file reached")
            ds = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            UserWarning) as exc:
        raise ValueError(f"the file is not readable DICOM ({type(exc).__name__}: {str(exc)[:120]})") from None
    if len(ds) == 0:
        raise ValueError("the file is not readable DICOM: it is damaged or truncated")
    return ds


def check_radiograph(ds: pydicom.Dataset) -> None:
    """Refuse, with the reason, what the model must not be asked about."""
    modality = str(ds.get("Modality", "") or "").upper()
    if modality not in RADIOGRAPH_MODALITIES:
        what = f"is of modality {modality}" if modality else "names no modality"
        raise ValueError(f"the DICOM file {what}; only projection radiographs (CR or DX) can be analysed")
    if "PixelData" not in ds:
        raise ValueError("the DICOM file holds no pixel data")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise ValueError(f"the DICOM file has {frames} frames; send single-frame radiographs")
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise ValueError("the DICOM file is in colour; radiographs are greyscale (MONOCHROME1 or MONOCHROME2)")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"the DICOM photometric interpretation {photometric or '(none)'} is not greyscale")
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        raise ValueError("the DICOM file says its pixels carry burned-in annotations, which can name the patient; "
                         "it is refused (send an image without them)")
    if not ds.get("Rows") or not ds.get("Columns"):
        raise ValueError("the DICOM file gives no image size (Rows, Columns)")


def facts(ds: pydicom.Dataset) -> DicomFacts:
    spacing = ds.get("ImagerPixelSpacing") or ds.get("PixelSpacing")
    try:
        spacing_mm = float(spacing[0]) if spacing else None
    except (TypeError, ValueError, IndexError):
        spacing_mm = None
    view = str(ds.get("ViewPosition", "") or "").strip().upper() or None
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    return DicomFacts(str(ds.Modality).upper(), view, spacing_mm, syntax.name if syntax else "unknown",
                      str(ds.PhotometricInterpretation))


def decoded_bytes(ds: pydicom.Dataset) -> int:
    """Memory the pixel pipeline needs: the stored array plus a float copy of it."""
    return int(ds.Rows) * int(ds.Columns) * (max(1, int(ds.get("BitsAllocated", 16)) // 8) + 8)


def _window(values: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """0..1 from the first window centre/width and its VOI LUT Function (PS3.3 C.11.2.1.2)."""
    centre, width = ds.WindowCenter, ds.WindowWidth
    centre = float(centre[0] if isinstance(centre, pydicom.multival.MultiValue) else centre)
    width = float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - centre) / width))
    if function == "LINEAR_EXACT":
        return np.clip((values - centre) / width + 0.5, 0.0, 1.0)
    width = max(width, 1.0)
    return np.clip((values - (centre - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _stretch(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def _stored_pixels(ds: pydicom.Dataset) -> np.ndarray:
    """Compressed pixel data is decoded by the pylibjpeg plugins (libjpeg, openjpeg, rle), never by another
    decoder that happens to be installed: the same file gives the same pixels on every machine."""
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax.is_compressed and syntax in DECODABLE:
        return pixel_array(ds, decoding_plugin="pylibjpeg")
    return ds.pixel_array


def display_pixels(ds: pydicom.Dataset) -> np.ndarray:
    """8-bit grey pixels, bone bright, as the image is meant to be seen."""
    try:
        stored = _stored_pixels(ds)
    except NotImplementedError:
        syntax = ds.file_meta.TransferSyntaxUID
        raise ValueError(f"the DICOM pixel data is in a transfer syntax this service cannot decode: "
                         f"{syntax.name} ({syntax})") from None
    except (ValueError, RuntimeError, AttributeError, KeyError, TypeError, EOFError) as exc:
        raise ValueError(f"the DICOM pixel data could not be decoded ({str(exc)[:160]})") from None
    values = apply_modality_lut(stored, ds).astype(np.float64)
    if "VOILUTSequence" in ds:
        lut = apply_voi_lut(values, ds, index=0, prefer_lut=True).astype(np.float64)
        levels = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=np.float64)
        unit = np.clip(lut / max(float(levels.max()), 1.0), 0.0, 1.0)
    elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        unit = _window(values, ds)
    else:
        unit = _stretch(values)
    if ds.PhotometricInterpretation == "MONOCHROME1":  # low values are white in MONOCHROME1
        unit = 1.0 - unit
    return np.ascontiguousarray(np.round(unit * 255.0).astype(np.uint8))
