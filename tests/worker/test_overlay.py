import numpy as np

from tests.helpers import decode_image_bytes
from worker.overlay import render_overlay


def test_overlay_keeps_the_originals_aspect_and_shows_the_heat_where_the_map_is():
    grey = np.full((300, 200), 90, np.uint8)  # portrait
    heat = np.zeros((10, 10), np.float32)
    heat[:3, :3] = 1.0  # hot top-left
    image = decode_image_bytes(render_overlay(grey, heat))
    assert image.shape == (300, 200, 3)
    top_left, bottom_right = image[10, 10].astype(int), image[290, 190].astype(int)
    assert top_left[2] > top_left[0]  # JET hot end: red (BGR channel 2) over blue
    assert bottom_right[0] > bottom_right[2]  # cold end: blue


def test_large_originals_are_scaled_down_for_viewing():
    image = decode_image_bytes(render_overlay(np.zeros((3000, 1500), np.uint8), np.zeros((7, 7), np.float32)))
    assert image.shape == (1024, 512, 3)
