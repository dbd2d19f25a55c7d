"""What is stored of an upload: the pixels, bit for bit, and none of the metadata that can name a patient."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from shared.imaging.privacy import MetadataError, clean_filename, strip_metadata
from tests.helpers import real_xray_bytes, real_xray_jpeg

NAME = b"DOE^JANE"


def _pixels(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def png_with_identifiers(bit_depth: int = 8) -> bytes:
    pixels = cv2.imdecode(np.frombuffer(real_xray_bytes(1)[0][1], np.uint8), cv2.IMREAD_GRAYSCALE)
    image = Image.fromarray(pixels.astype(np.uint16) * 257) if bit_depth == 16 else Image.fromarray(pixels)
    info = PngImagePlugin.PngInfo()
    info.add_text("PatientName", NAME.decode())
    info.add_text("PatientID", "MRN-12345 " + NAME.decode(), zip=True)
    info.add_itxt("Comment", "born 1950-01-01 " + NAME.decode())
    exif = Image.Exif()
    exif[0x010E] = NAME.decode()  # ImageDescription
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info, exif=exif)
    return out.getvalue() + b"after IEND: " + NAME


def jpeg_with_identifiers(progressive: bool = False) -> bytes:
    pixels = cv2.imdecode(np.frombuffer(real_xray_bytes(1)[0][1], np.uint8), cv2.IMREAD_GRAYSCALE)
    exif = Image.Exif()
    exif[0x010E] = NAME.decode()
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=92, comment=NAME, exif=exif, progressive=progressive)
    data = out.getvalue()
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>" + NAME + b"</x:xmpmeta>"
    app1 = b"\xff\xe1" + (len(xmp) + 2).to_bytes(2, "big") + xmp
    return data[:2] + app1 + data[2:] + NAME  # an XMP packet, and bytes after the end of the image


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_png_text_exif_and_trailing_bytes_go_and_the_pixels_stay_bit_for_bit(bit_depth):
    original = png_with_identifiers(bit_depth)
    assert original.count(NAME) >= 3
    kept = strip_metadata(original, "PNG")
    assert NAME not in kept and b"PatientName" not in kept and b"MRN-12345" not in kept
    assert np.array_equal(_pixels(kept), _pixels(original)) and _pixels(kept).dtype == _pixels(original).dtype


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_comments_exif_xmp_and_trailing_bytes_go_and_the_pixels_stay_bit_for_bit(progressive):
    original = jpeg_with_identifiers(progressive)
    assert original.count(NAME) >= 3
    kept = strip_metadata(original, "JPEG")
    assert NAME not in kept
    assert np.array_equal(_pixels(kept), _pixels(original))


def test_jpeg_restart_markers_survive():
    pixels = np.random.default_rng(1).integers(0, 255, (120, 90), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_RST_INTERVAL, 2])
    assert ok
    assert np.array_equal(_pixels(strip_metadata(encoded.tobytes(), "JPEG")), _pixels(encoded.tobytes()))


def jpeg_with_adobe_text(data: bytes) -> bytes:
    """An Adobe APP14 (version 100, no flags, transform 1) followed by text inside the same segment."""
    payload = b"Adobe" + bytes([0, 100, 0, 0, 0, 0, 1]) + b" written for " + NAME
    return data[:2] + b"\xff\xee" + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]


@pytest.mark.parametrize("colour", [False, True])
def test_adobe_app14_keeps_its_twelve_bytes_and_not_the_text_after_them(colour):
    grey = cv2.imdecode(np.frombuffer(real_xray_jpeg(), np.uint8), cv2.IMREAD_GRAYSCALE)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR) if colour else grey)
    original = jpeg_with_adobe_text(encoded.tobytes())
    kept = strip_metadata(original, "JPEG")
    assert NAME not in kept and b"written for" not in kept
    # Rewritten with its own length: FFEE, length 14, "Adobe", version 100, flags, transform 1.
    assert b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x01\xff" in kept
    assert np.array_equal(_pixels(kept), _pixels(original))


@pytest.mark.parametrize("kept", [0.06, 0.5])
def test_a_jpeg_cut_short_is_refused_not_given_an_end_marker(kept):
    whole = real_xray_jpeg()
    with pytest.raises(MetadataError, match="the JPEG file is truncated: its scan data is cut"):
        strip_metadata(whole[:int(len(whole) * kept)], "JPEG")


def test_damaged_containers_are_refused_with_a_reason():
    png = png_with_identifiers()
    with pytest.raises(MetadataError, match="truncated"):
        strip_metadata(png[:60], "PNG")
    with pytest.raises(MetadataError, match="not a PNG"):
        strip_metadata(b"GIF89a....", "PNG")
    with pytest.raises(MetadataError, match="not a JPEG"):
        strip_metadata(png, "JPEG")


def test_file_names_lose_paths_and_control_characters():
    assert clean_filename("C:\\scans\\DOE\\chest.png") == "chest.png"
    assert clean_filename("../../etc/passwd") == "passwd"
    assert clean_filename("a\x00b\x1f\x7fc\u202e.png") == "abc.png"  # NUL, controls, bidi override
    assert clean_filename("\x00\x00") == "unnamed" and clean_filename(None) == "unnamed"
    assert len(clean_filename("x" * 1000 + ".png")) == 255
