"""The numpy reference of the model-input transform (shared/model/reference_preprocess.py), what a phone app
beside the .tflite files ports, against the service's OpenCV transform on real NIH X-rays."""
import cv2
import numpy as np
import pytest

from shared.imaging.images import WORKING_SIDE, decode_image
from shared.model.preprocess import model_input
from shared.model.reference_preprocess import RESIZE, reference_input
from tests.helpers import FIXTURES, SHARED_DATA

FULLRES = sorted((SHARED_DATA / "nih-fullres-sample" / "images").glob("*.png"))[:6]
SMALL = sorted((FIXTURES / "nih64").glob("*.png"))[:4]


@pytest.mark.parametrize("size", [(64, 64), (224, 224), (299, 299)])
def test_the_reference_transform_gives_the_service_pixels_within_one_level(size):
    if not FULLRES:
        pytest.skip(f"no full-size NIH sample under {SHARED_DATA}")
    assert RESIZE["working_side"] == WORKING_SIDE
    for path in FULLRES + SMALL:
        data = path.read_bytes()
        service = model_input(decode_image(data, 50_000_000), size, "unit")  # what the worker feeds the model
        grey = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        reference = reference_input(grey, size, "unit")
        assert reference.shape == service.shape == (*size, 3) and reference.dtype == np.float32
        # OpenCV's fixed-point bilinear rounds a few pixels the other way; never by more than one level.
        assert np.abs(reference - service).max() * 255 <= 1.0 + 1e-3, path.name


def test_a_plain_bilinear_shrink_is_not_the_service_transform():
    """Why the resize is named: 1024 → 64 by bilinear sampling differs from the area average by many levels."""
    if not FULLRES:
        pytest.skip(f"no full-size NIH sample under {SHARED_DATA}")
    grey = cv2.imdecode(np.frombuffer(FULLRES[0].read_bytes(), np.uint8), cv2.IMREAD_GRAYSCALE)
    reference = reference_input(grey, (64, 64), "unit")[:, :, 0] * 255
    bilinear = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    assert np.abs(reference - bilinear).max() > 20
