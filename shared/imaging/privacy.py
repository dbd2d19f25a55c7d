"""What the service keeps of an upload: pixels, never the metadata that can name a patient.

PNG text chunks (tEXt, zTXt, iTXt), EXIF (eXIf), JPEG comments (COM) and application segments (EXIF,
XMP, IPTC, ICC, vendor data) routinely carry names, birth dates and record numbers written by the
modality or an export tool. The stored file keeps only what decoding the pixels needs: PNG's IHDR,
PLTE, tRNS, IDAT and IEND chunks; JPEG's coding segments (quantisation and Huffman tables, frame and
scan headers, restart intervals), the entropy-coded data and the fixed 12 bytes of an Adobe APP14
marker (they say how the colours are coded; anything a sender appends to them goes). A JPEG 2000
codestream keeps everything but its comments (COM), and of a JP2 file only the codestream is kept.
Nothing after the end of the image is kept. The pixels are bit for bit those sent: re-compressing
would cost time on every upload and, for JPEG, quality. The structure itself is walked by
shared/imaging/codestreams.py, which refuses a file that is cut short instead of ending it for the decoder.
"""
from __future__ import annotations

import unicodedata

from shared.imaging.codestreams import (JP2_SIGNATURE, PNG_SIGNATURE, DamagedFile, Segment, j2k_codestream,
                                        jp2_codestream, jpeg_segments, png_chunks)

PNG_KEEP = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
MAX_FILENAME = 255
# Adobe Technical Note 5116: "Adobe", version, flags0, flags1 (two bytes each), colour transform (one byte).
ADOBE_PAYLOAD = 12


class MetadataError(ValueError):
    """The container is damaged in a way that stops its metadata from being removed."""


def strip_png(data: bytes) -> bytes:
    try:
        chunks = png_chunks(data)
    except DamagedFile as exc:
        raise MetadataError(str(exc)) from None
    return PNG_SIGNATURE + b"".join(data[start:end] for kind, start, end in chunks if kind in PNG_KEEP)


def _kept_segment(data: bytes, segment: Segment) -> bytes:
    marker, payload = segment.marker, data[segment.start + 4:segment.end]
    if marker == 0xEE:  # APP14: only the Adobe colour transform decoding needs, rewritten with its own length
        if payload.startswith(b"Adobe") and len(payload) >= ADOBE_PAYLOAD:
            return b"\xff\xee" + (ADOBE_PAYLOAD + 2).to_bytes(2, "big") + payload[:ADOBE_PAYLOAD]
        return b""  # libjpeg ignores a shorter one too
    if 0xE0 <= marker <= 0xEF or marker == 0xFE:  # every other APPn, and COM, go
        return b""
    return data[segment.start:segment.end]


def strip_jpeg(data: bytes, what: str = "JPEG file") -> bytes:
    """Also JPEG-LS; up to the end-of-image marker, which must be there."""
    try:
        segments, _ = jpeg_segments(data, what)
    except DamagedFile as exc:
        raise MetadataError(str(exc)) from None
    return b"".join(_kept_segment(data, segment) for segment in segments)


def strip_j2k(data: bytes, what: str = "JPEG 2000 codestream") -> bytes:
    """A raw codestream without comments; a JP2 file becomes its codestream (DICOM wants the raw one anyway)."""
    try:
        if data.startswith(JP2_SIGNATURE):
            data = jp2_codestream(data, what)
        return j2k_codestream(data, what, strip=True)[0]
    except DamagedFile as exc:
        raise MetadataError(str(exc)) from None


def strip_metadata(data: bytes, image_format: str) -> bytes:
    """The file without anything but its pixels; ``image_format`` is "PNG" or "JPEG"."""
    if image_format == "PNG":
        return strip_png(data)
    if image_format == "JPEG":
        return strip_jpeg(data)
    raise MetadataError(f"cannot remove metadata from a {image_format} file")


def clean_text(text: str | None, limit: int) -> str:
    """Text safe to store and show: no control characters (NUL included), normalised, bounded."""
    text = "".join(ch for ch in (text or "") if unicodedata.category(ch)[0] != "C")
    return unicodedata.normalize("NFC", text).strip()[:limit]


def clean_filename(name: str | None) -> str:
    """A file name safe to store and show: no path, no control characters, bounded."""
    return clean_text((name or "").replace("\\", "/").rsplit("/", 1)[-1], MAX_FILENAME) or "unnamed"


