"""The PCA + logistic-regression baseline: learns what is linearly visible, and keeps LABELS order."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from shared.model.labels import LABELS
from training.baseline import SIDE, PixelBaseline, pixels
from training.data import Record


def _images(count, seed=0):
    """Noise images; in half of them the lower third is brighter (the Effusion column is set there)."""
    rng = np.random.default_rng(seed)
    x = rng.random((count, SIDE, SIDE)) * 0.5
    y = np.zeros((count, len(LABELS)), np.float32)
    positive = rng.random(count) < 0.5
    x[positive, 2 * SIDE // 3:, :] += 0.4
    y[positive, LABELS.index("Effusion")] = 1
    y[:, LABELS.index("Mass")] = rng.random(count) < 0.3  # unrelated to the pixels
    return x.reshape(count, -1), y


def test_the_baseline_finds_a_linear_signal_in_the_right_column_only():
    x, y = _images(200)
    model = PixelBaseline().fit(x, y)
    x_test, y_test = _images(200, seed=1)
    p = model.predict_proba(x_test)
    assert p.shape == (200, len(LABELS))
    effusion, mass = LABELS.index("Effusion"), LABELS.index("Mass")
    assert roc_auc_score(y_test[:, effusion], p[:, effusion]) > 0.95
    assert 0.3 < roc_auc_score(y_test[:, mass], p[:, mass]) < 0.7


def test_a_label_never_seen_predicts_its_training_rate():
    x, y = _images(60)
    p = PixelBaseline(components=8).fit(x, y).predict_proba(x)
    hernia = LABELS.index("Hernia")
    np.testing.assert_array_equal(p[:, hernia], 0.0)


def test_pixels_are_the_services_32px_grey_values(tmp_path):
    from PIL import Image

    path = tmp_path / "a.png"
    Image.fromarray(np.full((100, 80, 4), 255, np.uint8)).save(path)  # RGBA, not square
    x = pixels([Record("a.png", "1", frozenset({"No Finding"}), path)])
    assert x.shape == (1, SIDE * SIDE) and x.max() == pytest.approx(1.0) and x.min() == pytest.approx(1.0)
