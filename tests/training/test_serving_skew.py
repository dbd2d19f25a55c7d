"""No train/serve skew: NIH's 64×64 training PNGs and full-resolution NIH X-rays reduced by the service's
own decode and resize cannot be told apart by their statistics, while a resize that aliases (what the
service would do with nearest-neighbour or plain bilinear sampling from 1024 px) or another intensity scale
is caught at once."""
import cv2
import numpy as np
import pytest

from shared.imaging.images import decode_image
from tests.helpers import SHARED_DATA
from training.inputs import served_grey
from training.skew import domain_auroc

pytestmark = pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} is absent (real NIH data)")


def _aliased(path, side):
    grey = decode_image(path.read_bytes(), 10**8)
    return cv2.resize(grey, (side, side), interpolation=cv2.INTER_NEAREST).astype(np.float32) / 255


def test_the_service_reduces_full_resolution_xrays_to_what_training_saw():
    training = sorted((SHARED_DATA / "nih1000-64px" / "images").glob("*.png"))[::4]  # 250 of 1,000
    full_resolution = sorted((SHARED_DATA / "nih-fullres-sample" / "images").glob("*.png"))
    as_served = domain_auroc(training, full_resolution)
    assert as_served < 0.7, f"a classifier tells served full-resolution images from training images (AUROC {as_served:.2f})"
    aliased = domain_auroc(training, full_resolution, reduce_other=_aliased)
    assert aliased > 0.85, f"the check should catch an aliasing resize (AUROC {aliased:.2f})"
    darker = domain_auroc(training, full_resolution, reduce_other=lambda p, side: served_grey(p, side) * 0.8)
    assert darker > 0.85, f"the check should catch another intensity scale (AUROC {darker:.2f})"
