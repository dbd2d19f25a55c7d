import struct
import zlib

import cv2
import numpy as np
import pytest

from shared.imaging.images import ImageError, decode_image, inspect_image
from tests.helpers import corrupt_png, png_bytes, quiet_cv2, real_xray_bytes, real_xray_jpeg

LIMIT = 50_000_000


def test_real_rgb_xray_decodes_to_8_bit_grey():
    name, data = real_xray_bytes(1)[0]
    info = inspect_image(data, LIMIT)
    assert (info.format, info.width, info.height) == ("PNG", 64, 64)
    grey = decode_image(data, LIMIT)
    assert grey.shape == (64, 64) and grey.dtype == np.uint8


def test_sixteen_bit_png_is_stretched_to_full_8_bit_range():
    ramp = np.linspace(100, 4000, 32 * 48).reshape(32, 48).astype(np.uint16)  # a 12-bit detector's range
    grey = decode_image(png_bytes(ramp), LIMIT)
    assert grey.dtype == np.uint8 and grey.shape == (32, 48)
    assert grey.min() == 0 and grey.max() == 255
    assert np.all(np.diff(grey[:, 0].astype(int)) >= 0)  # order of intensities is kept


def test_rgba_and_jpeg_are_accepted():
    rgba = np.dstack([np.full((20, 30, 3), 128, np.uint8), np.full((20, 30), 255, np.uint8)])
    assert decode_image(png_bytes(rgba), LIMIT).shape == (20, 30)
    ok, jpeg = cv2.imencode(".jpg", np.full((40, 50), 200, np.uint8))
    info = inspect_image(jpeg.tobytes(), LIMIT)
    assert info.format == "JPEG" and info.content_type == "image/jpeg"
    assert abs(int(decode_image(jpeg.tobytes(), LIMIT).mean()) - 200) <= 2


def test_file_named_png_that_is_text_is_rejected_by_content():
    with pytest.raises(ImageError, match="not a PNG, JPEG or DICOM"):
        inspect_image(b"this is a chest x-ray, honest\n" * 10, LIMIT)


def test_truncated_png_is_refused_at_inspection_and_at_decoding():
    data = corrupt_png()  # its header alone looks fine
    for check in (inspect_image, decode_image):
        with quiet_cv2(), pytest.raises(ImageError, match="the PNG file is truncated: its 'IDAT' chunk"):
            check(data, LIMIT)


@pytest.mark.parametrize("kept", [0.06, 0.5, 0.999])
def test_a_real_xray_jpeg_cut_short_is_refused_instead_of_decoded_with_grey(kept):
    """OpenCV decodes a cut JPEG and fills the rest with grey; the model then found "Consolidation 97%"."""
    whole = real_xray_jpeg()
    cut = whole[:int(len(whole) * kept)]
    for check in (inspect_image, decode_image):
        with quiet_cv2(), pytest.raises(ImageError, match=r"the JPEG file is truncated: its scan data is cut"):
            check(cut, LIMIT)
    assert decode_image(whole, LIMIT).shape == (1024, 1024)


def test_a_jpeg_whose_segments_run_past_its_end_or_that_lacks_its_end_marker_is_refused():
    whole = real_xray_jpeg()
    with pytest.raises(ImageError, match=r"truncated: the FFDB segment at byte \d+ runs past the end"):
        decode_image(whole[:30], LIMIT)  # inside the quantisation table
    with pytest.raises(ImageError, match="truncated: its scan data is cut"):
        inspect_image(whole[:-2], LIMIT)  # every byte but the end-of-image marker
    with pytest.raises(ImageError, match="truncated: it ends at byte [0-9,]+ without an end-of-image marker"):
        inspect_image(whole[:whole.index(b"\xff\xda")], LIMIT)  # the headers, not the scan
    with pytest.raises(ImageError, match="no marker where one belongs"):
        inspect_image(whole[:2] + b"\x00" * 40 + whole[2:], LIMIT)


def test_empty_file_and_other_formats_are_rejected():
    with pytest.raises(ImageError, match="empty"):
        inspect_image(b"", LIMIT)
    ok, bmp = cv2.imencode(".bmp", np.zeros((8, 8), np.uint8))
    with pytest.raises(ImageError, match="only PNG, JPEG and DICOM"):
        inspect_image(bmp.tobytes(), LIMIT)


def _png_header_claiming(width: int, height: int) -> bytes:
    """A tiny file whose PNG header claims a huge image: a decoder bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decoder_bomb_is_refused_before_decoding():
    bomb = _png_header_claiming(60_000, 60_000)
    assert len(bomb) < 200
    with pytest.raises(ImageError, match="too large"):
        inspect_image(bomb, LIMIT)
    with pytest.raises(ImageError, match="too large"):
        decode_image(bomb, LIMIT)
    with pytest.raises(ImageError, match="limit is 100"):
        inspect_image(png_bytes(np.zeros((20, 20), np.uint8)), 100)


def _png_header(width: int, height: int, bit_depth: int, colour_type: int) -> bytes:
    """A PNG that claims this size (header and an empty image stream): enough for inspect_image."""
    import struct
    import zlib

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_the_memory_a_decode_needs_is_bounded_before_decoding():
    from shared.imaging.images import ImageTooLarge

    huge = _png_header(7000, 7000, 16, 6)  # 16-bit RGBA: 8 bytes a pixel: 374 MB decoded, from a few bytes
    assert inspect_image(huge, 10**8).decoded_bytes == 7000 * 7000 * 8
    with pytest.raises(ImageTooLarge, match="374 MB of memory to decode .* the limit is 256 MB"):
        inspect_image(huge, 10**8, max_decoded_bytes=256 * 2**20)
    assert inspect_image(_png_header(7000, 7000, 8, 0), 10**8, 256 * 2**20).decoded_bytes == 49_000_000


def test_large_images_come_out_at_the_working_size_and_jpegs_are_decoded_reduced():
    import subprocess
    import sys

    from shared.imaging.images import WORKING_SIDE

    wide = np.tile(np.linspace(0, 255, 3000, dtype=np.uint8), (1500, 1))
    ok, jpeg = cv2.imencode(".jpg", wide)
    grey = decode_image(jpeg.tobytes(), 10**8)
    assert grey.shape == (WORKING_SIDE // 2, WORKING_SIDE) and abs(float(grey.mean()) - float(wide.mean())) < 2
    assert decode_image(png_bytes(wide), 10**8).shape == (WORKING_SIDE // 2, WORKING_SIDE)
    # A 6000² JPEG decodes at 1/4 scale: the process never holds the 36 MB full image.
    ok, big = cv2.imencode(".jpg", np.tile(np.arange(6000, dtype=np.uint16).astype(np.uint8), (6000, 1)))
    code = ("import resource, sys; from shared.imaging.images import decode_image; data = sys.stdin.buffer.read();"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; g = decode_image(data, 10**8);"
            "print(g.shape[0], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    out = subprocess.run([sys.executable, "-c", code], input=big.tobytes(), capture_output=True, check=True).stdout.split()
    assert int(out[0]) == WORKING_SIDE and int(out[1]) < 20_000  # KiB of peak growth, against 35,000 for a full decode


def test_colourfulness_comes_with_the_grey_and_real_xrays_saved_in_rgb_or_rgba_score_zero():
    from shared.imaging.images import decode_image_and_colour

    for name, data in real_xray_bytes(6):  # RGB and RGBA PNGs, grey in content
        grey, colour = decode_image_and_colour(data, LIMIT)
        assert colour == 0.0 and np.array_equal(grey, decode_image(data, LIMIT)), name
    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    ok, jpeg = cv2.imencode(".jpg", noise)
    grey, colour = decode_image_and_colour(jpeg.tobytes(), LIMIT)
    assert grey.shape == (300, 400) and colour > 30  # colour noise stays colourful: pixels are sampled, not averaged


def test_a_large_colour_jpeg_is_measured_in_colour_and_gives_the_same_grey_within_one_level():
    from shared.imaging.images import decode_image_and_colour

    rng = np.random.default_rng(1)
    tint = np.dstack([np.full((2048, 2048), value, np.uint8) for value in (60, 120, 200)])  # a sepia-like photo
    tint = cv2.add(tint, rng.integers(0, 20, tint.shape, dtype=np.uint8))
    ok, jpeg = cv2.imencode(".jpg", tint)
    grey, colour = decode_image_and_colour(jpeg.tobytes(), 10**8)
    assert grey.shape == (1024, 1024) and colour > 100
    libjpeg_grey = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_2)
    assert np.abs(grey.astype(int) - libjpeg_grey.astype(int)).max() <= 1
    ok, grey_jpeg = cv2.imencode(".jpg", tint[:, :, 1])  # a one-channel JPEG is decoded reduced in grey, as before
    grey, colour = decode_image_and_colour(grey_jpeg.tobytes(), 10**8)
    assert colour == 0.0 and np.array_equal(grey, cv2.imdecode(np.frombuffer(grey_jpeg, np.uint8),
                                                               cv2.IMREAD_REDUCED_GRAYSCALE_2))
