"""Reading X-rays sent as DICOM: which files are accepted, and their pixels as a radiologist sees them.

Only single-frame projection radiographs (CR, DX) are accepted: the model was trained on chest
radiographs, and a CT slice or an MR image would get confident nonsense. The pixel data is decoded by
pydicom with the pylibjpeg plugins (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE); a
transfer syntax nothing here can decode fails its job with the syntax's name, never an HTTP 500.

Display pixels follow the standard's pipeline (PS3.3 C.11): the Modality LUT (rescale slope and
intercept, or a LUT sequence), then the VOI LUT (a LUT sequence, or the first window centre/width with its
VOI LUT Function), then MONOCHROME1 is inverted so that bone is always bright, as in the training images.
Without a VOI the values actually used are stretched to 0..255, like 16-bit PNGs (shared/imaging/images.py).

Decoders allocate what the compressed stream declares, not what the header says, and pydicom inflates a
Deflated Explicit VR file whole before it parses a tag. So a deflated dataset is inflated here with an
output bound first, and the frame inside JPEG and JPEG 2000 pixel data is walked (shared/imaging/codestreams.py)
before anything decodes it: a size other than the header's (a decompression bomb) or a stream cut short
is refused with the reason. RLE needs no such walk: its decoder writes only the header's Rows x Columns.
"""
from __future__ import annotations

import dataclasses
import io
import warnings
import zlib

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset, read_preamble
from pydicom.filewriter import write_file_meta_info
from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array
from pydicom.uid import (JPEG2000, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, JPEG2000Lossless,
                         JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1, JPEGLSLossless,
                         JPEGLSNearLossless, RLELossless)

from shared.imaging import codestreams

JPEG_FAMILY = {JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless}
JPEG_2000 = {JPEG2000Lossless, JPEG2000}
# Compressed transfer syntaxes the pylibjpeg plugins decode; others fail their job with the syntax's name.
DECODABLE = JPEG_FAMILY | JPEG_2000 | {RLELossless}
# The most a deflated dataset may inflate to: the service's default decode bound (max_decoded_bytes).
MAX_INFLATED_BYTES = 256 * 2**20
INFLATE_STEP = 2**20
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
    body_part: str | None = None  # BodyPartExamined, upper-cased (CHEST, HAND, ...): the input gate reads it

    @property
    def frontal(self) -> bool | None:
        """None when the file does not say which view it is."""
        return None if not self.view_position else self.view_position in FRONTAL_VIEWS


class DeflateBomb(ValueError):
    """A deflated dataset that inflates past the bound."""


def read_header(data: bytes, max_inflated_bytes: int = MAX_INFLATED_BYTES) -> pydicom.Dataset:
    """The dataset without decoding its pixels; ValueError with a reason when it is not usable DICOM."""
    try:
        with warnings.catch_warnings():
            # pydicom only warns when a file ends early, and returns what it read; a cut file is refused here.
            warnings.filterwarnings("error", message="End of file reached")
            inflated = _inflated(data, max_inflated_bytes)
            ds = pydicom.dcmread(io.BytesIO(inflated or data))
    except DeflateBomb:
        raise
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            UserWarning, zlib.error) as exc:
        raise ValueError(f"the file is not readable DICOM ({type(exc).__name__}: {str(exc)[:120]})") from None
    if len(ds) == 0:
        raise ValueError("the file is not readable DICOM: it is damaged or truncated")
    if inflated:
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian  # as sent: it is stored deflated again
    return ds


def _inflated(data: bytes, limit: int) -> bytes | None:
    """A Deflated Explicit VR file as the same file in Explicit VR, its dataset inflated within ``limit``
    bytes (counted first, in steps, so that a bomb is refused without ever being held); None for others."""
    stream = io.BytesIO(data)
    preamble = read_preamble(stream, force=False)
    meta = FileMetaDataset(read_dataset(stream, is_implicit_VR=False, is_little_endian=True,
                                        stop_when=lambda tag, vr, length: tag >> 16 != 2))  # group 0002 only
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return None
    deflated, inflater, size = data[stream.tell():], zlib.decompressobj(-zlib.MAX_WBITS), 0
    pending = deflated
    while not inflater.eof:
        step = inflater.decompress(pending, INFLATE_STEP)
        size += len(step)
        if size > limit:
            raise DeflateBomb(f"the deflated DICOM dataset inflates to more than {limit / 2**20:,.0f} MB, the limit "
                              "for one image; it is refused (a deflate bomb, or far more than one radiograph)")
        pending = inflater.unconsumed_tail
        if not step and not pending:
            raise ValueError("the deflated DICOM dataset is cut short")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    header = DicomBytesIO()
    write_file_meta_info(header, meta, enforce_standard=True)
    return preamble + b"DICM" + header.getvalue() + zlib.decompressobj(-zlib.MAX_WBITS).decompress(deflated)


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


def single_frame(ds: pydicom.Dataset) -> bytes:
    """The one frame of encapsulated pixel data, its fragments joined (check_radiograph allows one frame)."""
    try:
        return next(generate_frames(ds.PixelData, number_of_frames=1))
    except (ValueError, StopIteration, TypeError) as exc:
        raise ValueError(f"the DICOM pixel data is not valid encapsulated data ({str(exc)[:120]})") from None


def stream_name(syntax: pydicom.uid.UID) -> str:
    return "JPEG 2000 stream in the DICOM pixel data" if syntax in JPEG_2000 else "JPEG stream in the DICOM pixel data"


def check_pixel_data(ds: pydicom.Dataset) -> None:
    """Refuse, before any decoder runs, compressed pixel data that is cut short or declares another image
    than the header does: decoders allocate what the stream says (a decompression bomb)."""
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax not in JPEG_FAMILY | JPEG_2000:
        return
    what, frame_bytes = stream_name(syntax), single_frame(ds)
    if syntax in JPEG_FAMILY:
        frame = codestreams.jpeg_segments(frame_bytes, what)[1]
    else:
        if frame_bytes.startswith(codestreams.JP2_SIGNATURE):
            frame_bytes = codestreams.jp2_codestream(frame_bytes, what)
        frame = codestreams.j2k_codestream(frame_bytes, what)[1]
    if frame.rows == 0:
        raise ValueError(f"the {what} leaves its height to a later DNL marker, so its size cannot be checked "
                         "before decoding; it is refused")
    rows, columns, samples = int(ds.Rows), int(ds.Columns), int(ds.get("SamplesPerPixel", 1) or 1)
    if (frame.rows, frame.columns) != (rows, columns):
        raise ValueError(f"the DICOM header says the image is {columns}x{rows} pixels, but the {what} declares "
                         f"{frame.columns}x{frame.rows}; a decoder would allocate what the stream declares (a "
                         "decompression bomb), so the file is refused")
    if frame.components != samples:
        raise ValueError(f"the DICOM header says {samples} sample(s) a pixel, but the {what} declares "
                         f"{frame.components} components; the file is refused")


def facts(ds: pydicom.Dataset) -> DicomFacts:
    spacing = ds.get("ImagerPixelSpacing") or ds.get("PixelSpacing")
    try:
        spacing_mm = float(spacing[0]) if spacing else None
    except (TypeError, ValueError, IndexError):
        spacing_mm = None
    view = str(ds.get("ViewPosition", "") or "").strip().upper() or None
    body_part = str(ds.get("BodyPartExamined", "") or "").strip().upper() or None
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    return DicomFacts(str(ds.Modality).upper(), view, spacing_mm, syntax.name if syntax else "unknown",
                      str(ds.PhotometricInterpretation), body_part)


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
