"""Walking compressed image streams (PNG, JPEG, JPEG-LS, JPEG 2000) by their markers, without decoding them.

Three checks need the structure before any decoder sees the bytes. The size the stream really has: decoders
trust the stream, not the DICOM header around it, so a header saying 512x512 around a JPEG saying 20000x20000
is a decompression bomb. Whether the file is whole: OpenCV and the JPEG decoders fill a cut image with grey
and return it, and the model then "finds" consolidation in the grey. And where the text segments are, so that
shared/imaging/privacy.py can leave them out. A walk costs one pass over the bytes and no pixel memory.

References: JPEG, ITU-T T.81 Annex B (markers, FF00 stuffing in scan data); JPEG-LS, ITU-T T.87 Annex D (FF
followed by a byte below 0x80 is scan data, not a marker); JPEG 2000, ISO/IEC 15444-1 Annex A (main header,
tile-parts and their lengths) and Annex I (JP2 boxes); PNG, ISO/IEC 15948 section 5 (chunks).
"""
from __future__ import annotations

import dataclasses
import re
import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A marker ends a JPEG scan unless it is stuffing (FF00) or a restart (FFD0-FFD7); FFFF is fill before a marker.
JPEG_SCAN_END = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
JPEG_LS_SCAN_END = re.compile(rb"\xff[\x80-\xcf\xd8-\xfe]")
NO_LENGTH = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn carry no length
# SOF0-3, 5-7, 9-11, 13-15, DHP (hierarchical) and JPEG-LS SOF55: P, Y (height), X (width), Nf.
FRAME_HEADERS = {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0), 0xDE, 0xF7}
SOS, EOI, SOF55 = 0xDA, 0xD9, 0xF7
J2K_SOC, J2K_SIZ, J2K_COM, J2K_TLM, J2K_SOT, J2K_SOD, J2K_EOC = 0x4F, 0x51, 0x64, 0x55, 0x90, 0x93, 0xD9
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


class DamagedFile(ValueError):
    """The stream's structure is broken (cut short, a length past the end, no end marker); says where."""


@dataclasses.dataclass(frozen=True)
class Frame:
    """The image size a stream declares: what a decoder will allocate, whatever a header around it says."""

    rows: int  # 0 in a JPEG whose height comes later, in a DNL segment
    columns: int
    components: int


@dataclasses.dataclass(frozen=True)
class Segment:
    """A marker segment at data[start:end]; a scan (SOS) includes its entropy-coded data."""

    marker: int
    start: int
    end: int


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(kind, start, end) of every chunk up to IEND; DamagedFile when one is cut or IEND is missing."""
    if not data.startswith(PNG_SIGNATURE):
        raise DamagedFile("not a PNG file: it does not begin with the PNG signature")
    chunks, offset = [], len(PNG_SIGNATURE)
    while offset + 12 <= len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind, end = data[offset + 4:offset + 8], offset + 12 + length
        if end > len(data):
            raise DamagedFile(f"the PNG file is truncated: its {kind.decode('latin-1')!r} chunk at byte {offset:,} "
                              f"runs past the end of the file ({len(data):,} bytes)")
        chunks.append((kind, offset, end))
        if kind == b"IEND":
            return chunks
        offset = end
    raise DamagedFile(f"the PNG file is truncated: it ends at byte {len(data):,} without its end chunk (IEND)")


def _truncated(what: str, detail: str) -> DamagedFile:
    return DamagedFile(f"the {what} is truncated: {detail}")


def jpeg_segments(data: bytes, what: str = "JPEG file") -> tuple[list[Segment], Frame]:
    """Every segment from SOI to EOI and the largest frame declared; DamagedFile when the stream is cut,
    a length runs past the end, or no image follows. Works for JPEG-LS too (its scans end differently)."""
    if not data.startswith(b"\xff\xd8"):
        raise DamagedFile(f"the {what} is not a JPEG stream: it does not begin with a start-of-image marker")
    segments, frames, scan_end, offset, size = [Segment(0xD8, 0, 2)], [], JPEG_SCAN_END, 2, len(data)
    while True:
        if offset + 2 > size:
            raise _truncated(what, f"it ends at byte {size:,} without an end-of-image marker")
        if data[offset] != 0xFF:
            raise DamagedFile(f"the {what} is damaged: there is no marker where one belongs (byte {offset:,})")
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker == EOI:
            segments.append(Segment(EOI, offset, offset + 2))
            break
        if marker in NO_LENGTH:
            segments.append(Segment(marker, offset, offset + 2))
            offset += 2
            continue
        length = int.from_bytes(data[offset + 2:offset + 4], "big") if offset + 4 <= size else size
        end = offset + 2 + length
        if length < 2 or end > size:
            raise _truncated(what, f"the FF{marker:02X} segment at byte {offset:,} runs past the end ({size:,} bytes)")
        if marker in FRAME_HEADERS:
            if length < 8:
                raise DamagedFile(f"the {what} is damaged: its frame header (FF{marker:02X}) is {length} bytes long")
            height, width = struct.unpack(">HH", data[offset + 5:offset + 9])
            frames.append(Frame(height, width, data[offset + 9]))
            scan_end = JPEG_LS_SCAN_END if marker == SOF55 else scan_end
        if marker == SOS:
            found = scan_end.search(data, end)
            if found is None:
                raise _truncated(what, f"its scan data is cut: the file ends at byte {size:,} without the "
                                       "end-of-image marker")
            end = found.start()
        segments.append(Segment(marker, offset, end))
        offset = end
    if not frames or not any(segment.marker == SOS for segment in segments):
        raise DamagedFile(f"the {what} holds no image: it has no frame header or no scan")
    return segments, max(frames, key=lambda frame: frame.rows * frame.columns)


def _j2k_segment(data: bytes, offset: int, what: str) -> tuple[int, int]:
    """(marker, end) of the marker segment at offset."""
    if offset + 2 > len(data):
        raise _truncated(what, f"it ends at byte {len(data):,} without an end-of-codestream marker")
    if data[offset] != 0xFF:
        raise DamagedFile(f"the {what} is damaged: there is no marker where one belongs (byte {offset:,})")
    marker = data[offset + 1]
    if marker in (J2K_SOC, J2K_SOD, J2K_EOC) or 0x30 <= marker <= 0x3F:  # markers without a length
        return marker, offset + 2
    length = int.from_bytes(data[offset + 2:offset + 4], "big") if offset + 4 <= len(data) else len(data)
    end = offset + 2 + length
    if length < 2 or end > len(data):
        raise _truncated(what, f"the FF{marker:02X} segment at byte {offset:,} runs past the end ({len(data):,} bytes)")
    return marker, end


def _siz_frame(data: bytes, offset: int, end: int, what: str) -> Frame:
    if end - offset < 40:
        raise DamagedFile(f"the {what} is damaged: its image size segment (SIZ) is too short")
    width, height, x_origin, y_origin = struct.unpack(">IIII", data[offset + 6:offset + 22])
    components = int.from_bytes(data[offset + 38:offset + 40], "big")
    return Frame(max(0, height - y_origin), max(0, width - x_origin), components)


def j2k_codestream(data: bytes, what: str = "JPEG 2000 codestream", strip: bool = False) -> tuple[bytes, Frame]:
    """The codestream up to its end marker (EOC) and the frame its SIZ declares; with ``strip``, without
    its comments (COM, in the main and tile-part headers: the tile-parts' lengths are fixed to match)."""
    if not data.startswith(b"\xff\x4f\xff\x51"):
        raise DamagedFile(f"the {what} is not a JPEG 2000 codestream: it does not begin with SOC and SIZ")
    # TLM indexes tile-part lengths, which stripping changes; it is optional and a decoder does without.
    drop = {J2K_COM, J2K_TLM} if strip else set()
    out, offset, frame = [data[:2]], 2, None
    while True:  # main header: SIZ first, then segments up to the first tile-part
        marker, end = _j2k_segment(data, offset, what)
        if marker == J2K_SOT:
            break
        if marker == J2K_SIZ:
            frame = _siz_frame(data, offset, end, what)
        if marker not in drop:
            out.append(data[offset:end])
        offset = end
    while marker == J2K_SOT:
        offset = _tile_part(data, offset, end, what, drop, out)
        marker, end = _j2k_segment(data, offset, what)
    if marker != J2K_EOC:
        raise DamagedFile(f"the {what} is damaged: FF{marker:02X} at byte {offset:,} where a tile-part or its end "
                          "belongs")
    out.append(b"\xff\xd9")  # nothing after the end of the codestream is kept
    return b"".join(out), frame


def _tile_part(data: bytes, start: int, sot_end: int, what: str, drop: set, out: list[bytes]) -> int:
    """Copy one tile-part (SOT .. its data) into out, its Psot fixed; returns where the next one starts."""
    if sot_end - start != 12:
        raise DamagedFile(f"the {what} is damaged: its tile-part header (SOT) at byte {start:,} is not 12 bytes")
    (psot,) = struct.unpack(">I", data[start + 6:start + 10])
    kept, removed, offset = [], 0, sot_end
    while True:
        marker, end = _j2k_segment(data, offset, what)
        if marker in drop:
            removed += end - offset
        else:
            kept.append(data[offset:end])
        offset = end
        if marker == J2K_SOD:
            break
    if psot:
        tile_end = start + psot
        if tile_end > len(data):
            raise _truncated(what, f"its tile-part at byte {start:,} runs past the end ({len(data):,} bytes)")
        if tile_end < offset:
            raise DamagedFile(f"the {what} is damaged: its tile-part at byte {start:,} is shorter than its header")
    else:  # the last tile-part may run to EOC; FFD9 cannot occur in tile data (15444-1 A.3)
        tile_end = data.find(b"\xff\xd9", offset)
        if tile_end < 0:
            raise _truncated(what, f"it ends at byte {len(data):,} without an end-of-codestream marker")
    out.append(data[start:start + 6] + struct.pack(">I", psot - removed if psot else 0) + data[start + 10:sot_end])
    out.extend(kept)
    out.append(data[offset:tile_end])
    return tile_end


def _boxes(data: bytes, offset: int, end: int, what: str):
    """(type, content start, content end) of the JP2 boxes in data[offset:end]."""
    while offset < end:
        if offset + 8 > end:
            raise _truncated(what, f"a box header at byte {offset:,} is cut")
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        header = 8
        if length == 1:
            if offset + 16 > end:
                raise _truncated(what, f"a box header at byte {offset:,} is cut")
            (length,), header = struct.unpack(">Q", data[offset + 8:offset + 16]), 16
        box_end = end if length == 0 else offset + length
        if box_end > end or box_end < offset + header:
            raise _truncated(what, f"its {kind.decode('latin-1')!r} box at byte {offset:,} runs past the end")
        yield kind, offset + header, box_end
        offset = box_end


def jp2_codestream(data: bytes, what: str = "JP2 file") -> bytes:
    """The contiguous codestream box (jp2c) of a JP2 file: every other box (XML, UUID, labels) can hold
    text. A palette (pclr) is refused: the codestream alone would decode to palette indices, not pixels."""
    for kind, start, end in _boxes(data, 0, len(data), what):
        if kind == b"jp2h" and any(inner in (b"pclr", b"cmap") for inner, _, _ in _boxes(data, start, end, what)):
            raise DamagedFile(f"the {what} maps its pixels through a palette; send the greyscale codestream itself")
        if kind == b"jp2c":
            return data[start:end]
    raise DamagedFile(f"the {what} holds no contiguous codestream (jp2c box)")
