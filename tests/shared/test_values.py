"""The image's own values for the viewer (shared/imaging/values.py): a DICOM's stored values through its
Modality LUT at full bit depth, the file's window, presets in brightness order, pixel spacing, and the
display pixels' working size."""
import cv2
import numpy as np
import pytest

from shared.imaging import values as pixel_values
from shared.imaging.images import ImageError, decode_image
from tests.dicom_factory import grey_from_png, make_dicom
from tests.helpers import full_size_xray, real_xray_bytes

LIMITS = (50_000_000, 256 * 2**20)


def test_a_12_bit_dicom_answers_its_rescaled_values_window_and_spacing():
    grey = grey_from_png(real_xray_bytes(1)[0][1])
    found = pixel_values.image_values(make_dicom(grey, bits=16), *LIMITS)
    assert found.bits == 12 and not found.inverted and found.spacing_mm == (0.143, 0.143)
    assert "Imager Pixel Spacing" in found.spacing_source and "Modality LUT" in found.source
    assert np.array_equal(found.values, grey.astype(np.float32) * 16 + 8 - 1024)  # stored * 1 - 1024
    # The file's own window maps the values back onto the display pixels.
    window = found.default
    shown = np.clip((found.values - (window.centre - window.width / 2)) / window.width * 255, 0, 255)
    assert np.abs(shown - decode_image(make_dicom(grey, bits=16), *LIMITS)).max() <= 1
    presets = found.presets()
    assert presets["lung"].centre < presets["soft_tissue"].centre < presets["bone"].centre
    assert presets["full_range"].width == pytest.approx(float(found.values.max() - found.values.min()))


def test_monochrome1_presets_are_mirrored_so_lung_stays_the_dark_part_of_the_picture():
    grey = grey_from_png(real_xray_bytes(1)[0][1])
    found = pixel_values.image_values(make_dicom(grey, bits=16, monochrome1=True), *LIMITS)
    presets = found.presets()
    assert found.inverted and presets["lung"].centre > presets["bone"].centre  # high values are dark here


def test_a_large_png_comes_at_the_display_pixels_working_size_with_its_original_size():
    ok, encoded = cv2.imencode(".png", cv2.resize(full_size_xray(), (1500, 1200), interpolation=cv2.INTER_LINEAR))
    data = encoded.tobytes()
    found = pixel_values.image_values(data, *LIMITS)
    display = decode_image(data, *LIMITS)
    assert ok and found.values.shape == display.shape == (819, 1024) and found.original_size == (1500, 1200)
    assert np.abs(found.values - display).max() <= 1  # the same resize, on values instead of 8-bit levels
    assert found.bits == 8 and found.spacing_mm is None and found.default.as_dict() == {"centre": 127.5, "width": 255.0}


def test_a_16_bit_png_keeps_its_levels():
    levels = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7)
    ok, encoded = cv2.imencode(".png", levels)
    found = pixel_values.image_values(encoded.tobytes(), *LIMITS)
    assert ok and found.bits == 16 and np.array_equal(found.values, levels.astype(np.float32))


def test_damaged_files_are_refused_with_a_reason():
    with pytest.raises(ImageError):
        pixel_values.image_values(b"not an image", *LIMITS)
