"""Image checks and decoding, by content, never by file name.

``inspect_image`` reads the header and walks the file's structure without decoding pixels (cheap, used
by the web at upload) and rejects what is not a PNG, JPEG or DICOM radiograph (shared/imaging/dicom_in.py), is
absurdly large in pixels before anything decodes it (a decoder bomb costs nothing), or is cut short or
broken (shared/imaging/codestreams.py): decoders fill a cut image with grey and return it, and the model then
analyses the grey. It runs again inside ``decode_image``, so a stored file is checked before every decode.
``decode_image`` (used by the worker and by training, so both see the same pixels) decodes with OpenCV
and returns an 8-bit greyscale array at most ``WORKING_SIDE`` pixels on its long side: chest X-rays are
greyscale (colour and alpha channels in the NIH files are an artefact of export), and nothing downstream
needs more than a few hundred pixels. Large JPEGs are decoded at 1/2, 1/4 or 1/8 scale directly (the
format allows it), so a 6000² JPEG never occupies 6000² bytes. The memory a decode needs is known from
the header (``ImageInfo.decoded_bytes``) and bounded before anything is decoded.
``decode_image_and_colour`` also says how colourful the picture was before it became grey (the input gate,
shared/model/gate.py, refuses colour photographs): measured on every few pixels of the colour decode, not on
an averaged copy, which would blend colour noise to grey. A large colour JPEG is therefore decoded reduced in
colour rather than reduced in grey; the grey it gives differs from libjpeg's own by at most one level.
"""
from __future__ import annotations

import dataclasses
import io

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from shared.imaging import codestreams, dicom_in

FORMATS = {"PNG": ("png", "image/png"), "JPEG": ("jpg", "image/jpeg"), "DICOM": ("dcm", "application/dicom")}
SIGNATURES = {"PNG": codestreams.PNG_SIGNATURE, "JPEG": b"\xff\xd8"}
WORKING_SIDE = 1024  # decoded images are scaled to at most this many pixels on their long side
COLOUR_SAMPLE_SIDE = 256  # colourfulness looks at about this many pixels along the long side (every n-th)
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
# PNG colour type → channels as OpenCV decodes them (palette and grey+alpha come out as BGR(A)).
PNG_CHANNELS = {0: 1, 2: 3, 3: 4, 4: 4, 6: 4}


class ImageError(ValueError):
    """The bytes are not an image the service can analyse; the message is for the person who sent it."""


class DamagedImage(ImageError):
    """The file is cut short or its structure is broken: it would decode to a part-grey picture."""


class ImageTooLarge(ImageError):
    """The image has more pixels, or needs more memory to decode, than the service accepts."""


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    format: str  # "PNG", "JPEG" or "DICOM"
    width: int
    height: int
    decoded_bytes: int  # memory a full decode takes (all channels, 8 or 16 bits each)
    dicom: dicom_in.DicomFacts | None = None  # view position, pixel spacing, ... of a DICOM file
    colour: bool = False  # the file stores colour channels (Pillow's mode is not a grey one)

    @property
    def extension(self) -> str:
        return FORMATS[self.format][0]

    @property
    def content_type(self) -> str:
        return FORMATS[self.format][1]


def _decoded_bytes(data: bytes, fmt: str, mode: str, width: int, height: int) -> int:
    if fmt == "PNG" and len(data) >= 26:
        bit_depth, colour_type = data[24], data[25]
        return width * height * PNG_CHANNELS.get(colour_type, 4) * (2 if bit_depth == 16 else 1)
    return width * height * max(1, len(mode))  # JPEG: L, RGB, CMYK; 8 bits a sample


def _check_size(info: ImageInfo, max_pixels: int, max_decoded_bytes: int | None) -> ImageInfo:
    width, height = info.width, info.height
    if width < 1 or height < 1:
        raise ImageError(f"the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image is too large: {width}x{height} = {width * height:,} pixels, the limit is {max_pixels:,}"
        )
    if max_decoded_bytes is not None and info.decoded_bytes > max_decoded_bytes:
        raise ImageTooLarge(
            f"the image would need {info.decoded_bytes / 2**20:,.0f} MB of memory to decode ({width}x{height}, "
            f"colour or 16-bit channels); the limit is {max_decoded_bytes / 2**20:,.0f} MB: send it as 8-bit greyscale"
        )
    return info


def _dicom_header(data: bytes, max_decoded_bytes: int | None):
    try:
        ds = dicom_in.read_header(data, max_decoded_bytes or dicom_in.MAX_INFLATED_BYTES)
        dicom_in.check_radiograph(ds)
        return ds
    except dicom_in.DeflateBomb as exc:
        raise ImageTooLarge(str(exc)) from None
    except ValueError as exc:
        raise ImageError(str(exc)) from None


def _inspect_dicom(ds, max_pixels: int, max_decoded_bytes: int | None) -> ImageInfo:
    info = ImageInfo("DICOM", int(ds.Columns), int(ds.Rows), dicom_in.decoded_bytes(ds), dicom_in.facts(ds))
    _check_size(info, max_pixels, max_decoded_bytes)
    try:
        dicom_in.check_pixel_data(ds)
    except ValueError as exc:
        raise ImageError(str(exc)) from None
    return info


def _check_whole(data: bytes, fmt: str) -> None:
    """Every chunk or segment within the file and its end marker there (PNG IEND, JPEG EOI)."""
    try:
        if fmt == "PNG":
            codestreams.png_chunks(data)
        else:
            codestreams.jpeg_segments(data)
    except codestreams.DamagedFile as exc:
        raise DamagedImage(str(exc)) from None


def inspect_image(data: bytes, max_pixels: int, max_decoded_bytes: int | None = None) -> ImageInfo:
    if not data:
        raise ImageError("the file is empty")
    if dicom_in.looks_like_dicom(data):
        return _inspect_dicom(_dicom_header(data, max_decoded_bytes), max_pixels, max_decoded_bytes)
    for fmt, signature in SIGNATURES.items():  # before Pillow, which would only say it cannot read a cut header
        if data.startswith(signature):
            _check_whole(data, fmt)
    try:
        # Image.open reads the header only; pixel data is not decoded here.
        with Image.open(io.BytesIO(data)) as image:
            fmt, (width, height), mode = image.format, image.size, image.mode
    except Image.DecompressionBombError:
        raise ImageTooLarge(f"the image is too large: more than {max_pixels:,} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ImageError("the file is not a PNG, JPEG or DICOM image") from None
    if fmt not in FORMATS:
        raise ImageError(f"the file is a {fmt} image; only PNG, JPEG and DICOM are accepted")
    return _check_size(ImageInfo(fmt, width, height, _decoded_bytes(data, fmt, mode, width, height),
                                 colour=mode not in GREY_MODES), max_pixels, max_decoded_bytes)


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


def colourfulness(pixels: np.ndarray) -> float:
    """Mean |R-G| + |G-B| (0..510, in 8-bit levels) of a decoded BGR(A) array; 0 for grey ones. Every n-th pixel
    is looked at, never an average of neighbours: averaging turns colour noise grey."""
    if pixels.ndim < 3 or pixels.shape[2] < 3:
        return 0.0
    step = max(1, max(pixels.shape[:2]) // COLOUR_SAMPLE_SIDE)
    sample = pixels[::step, ::step, :3].astype(np.float32)
    if pixels.dtype == np.uint16:
        sample /= 257.0
    blue, green, red = sample[:, :, 0], sample[:, :, 1], sample[:, :, 2]
    return float(np.mean(np.abs(red - green)) + np.mean(np.abs(green - blue)))


REDUCED_JPEG = {8: cv2.IMREAD_REDUCED_GRAYSCALE_8, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2}
REDUCED_COLOUR_JPEG = {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4, 2: cv2.IMREAD_REDUCED_COLOR_2}


def _read_flag(info: ImageInfo, working_side: int) -> int:
    """JPEG can be decoded at 1/2, 1/4 or 1/8 scale: the largest reduction that keeps working_side, in colour
    when the file has colour (so that its colourfulness can be measured)."""
    if info.format == "JPEG":
        flags = REDUCED_COLOUR_JPEG if info.colour else REDUCED_JPEG
        for factor, flag in flags.items():
            if max(info.width, info.height) // factor >= working_side:
                return flag
    return cv2.IMREAD_UNCHANGED


def decode_image(data: bytes, max_pixels: int, max_decoded_bytes: int | None = None,
                 working_side: int = WORKING_SIDE) -> np.ndarray:
    """8-bit grey pixels, at most working_side on the long side (aspect kept)."""
    return decode_image_and_colour(data, max_pixels, max_decoded_bytes, working_side)[0]


def decode_image_and_colour(data: bytes, max_pixels: int, max_decoded_bytes: int | None = None,
                            working_side: int = WORKING_SIDE) -> tuple[np.ndarray, float]:
    """``decode_image``'s grey pixels, and the colourfulness of the picture before it became grey (0 for grey
    files and DICOM, which the service accepts only in MONOCHROME1/2)."""
    if dicom_in.looks_like_dicom(data):  # one parse of the file serves the checks and the pixels
        ds = _dicom_header(data, max_decoded_bytes)
        _inspect_dicom(ds, max_pixels, max_decoded_bytes)
        try:
            return _fit(dicom_in.display_pixels(ds), working_side), 0.0
        except ValueError as exc:
            raise ImageError(str(exc)) from None
    info = inspect_image(data, max_pixels, max_decoded_bytes)
    try:
        # Quiet OpenCV's own warnings: the ImageError below says what went wrong.
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), _read_flag(info, working_side))
        finally:
            cv2.utils.logging.setLogLevel(previous)
    except cv2.error as exc:
        raise ImageError(f"the image could not be decoded ({exc.err or 'OpenCV error'})") from None
    if pixels is None:
        raise ImageError("the image could not be decoded: the file is damaged or truncated")
    colour = colourfulness(pixels)
    grey = to_grey8(pixels)
    del pixels  # the full decode can be large; only the working copy lives on
    return _fit(grey, working_side), colour


def _fit(grey: np.ndarray, working_side: int) -> np.ndarray:
    height, width = grey.shape
    if max(height, width) > working_side:
        scale = working_side / max(height, width)
        grey = cv2.resize(grey, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    return grey
