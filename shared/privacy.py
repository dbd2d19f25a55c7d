"""What the service keeps of an upload: pixels, never the metadata that can name a patient.

PNG text chunks (tEXt, zTXt, iTXt), EXIF (eXIf), JPEG comments (COM) and application segments (EXIF,
XMP, IPTC, ICC, vendor data) routinely carry names, birth dates and record numbers written by the
modality or an export tool. The stored file keeps only what decoding the pixels needs: PNG's IHDR,
PLTE, tRNS, IDAT and IEND chunks; JPEG's coding segments (quantisation and Huffman tables, frame and
scan headers, restart intervals), the entropy-coded data and an Adobe APP14 marker (it says how the
colours are coded). Nothing after the end of the image is kept. The pixels are bit for bit those sent:
re-compressing would cost time on every upload and, for JPEG, quality.
"""
from __future__ import annotations

import struct
import unicodedata


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_KEEP = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
MAX_FILENAME = 255


class MetadataError(ValueError):
    """The container is damaged in a way that stops its metadata from being removed."""


def strip_png(data: bytes) -> bytes:
    if not data.startswith(PNG_SIGNATURE):
        raise MetadataError("not a PNG file")
    out, offset = [PNG_SIGNATURE], len(PNG_SIGNATURE)
    while offset + 12 <= len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind = data[offset + 4:offset + 8]
        end = offset + 12 + length
        if end > len(data):
            raise MetadataError("the PNG file is truncated")
        if kind in PNG_KEEP:
            out.append(data[offset:end])
        if kind == b"IEND":
            return b"".join(out)
        offset = end
    raise MetadataError("the PNG file has no end (IEND chunk)")


def _keep_jpeg_segment(marker: int, payload: bytes) -> bool:
    if marker == 0xEE:  # APP14 "Adobe": colour transform flag, needed to decode some files right
        return payload.startswith(b"Adobe")
    return not (0xE0 <= marker <= 0xEF or marker == 0xFE)  # every other APPn, and COM, go


def strip_jpeg(data: bytes) -> bytes:
    if not data.startswith(b"\xff\xd8"):
        raise MetadataError("not a JPEG file")
    out, offset = [b"\xff\xd8"], 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            raise MetadataError("the JPEG file is damaged (no marker where one belongs)")
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker == 0xD9:
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            out.append(data[offset:offset + 2])
            offset += 2
            continue
        (length,) = struct.unpack(">H", data[offset + 2:offset + 4])
        end = offset + 2 + length
        if length < 2 or end > len(data):
            raise MetadataError("the JPEG file is truncated")
        if marker == 0xDA:  # start of scan: header, then entropy-coded data up to the next real marker
            scan_end = _end_of_scan(data, end)
            out.append(data[offset:scan_end])
            offset = scan_end
            continue
        if _keep_jpeg_segment(marker, data[offset + 4:end]):
            out.append(data[offset:end])
        offset = end
    out.append(b"\xff\xd9")
    return b"".join(out)


def _end_of_scan(data: bytes, offset: int) -> int:
    """Entropy-coded data ends at a marker that is neither stuffing (FF00) nor a restart (FFD0-FFD7)."""
    while True:
        offset = data.find(b"\xff", offset)
        if offset < 0 or offset + 1 >= len(data):
            return len(data)
        following = data[offset + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            offset += 1
            continue
        return offset


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


