"""Heatmaps must be class-specific, computed on logits, equal to gradient Grad-CAM, and never NaN."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from training.architectures import build_small_cnn, build_xception_transfer  # noqa: E402
from worker.engine import has_gap_dense_head  # noqa: E402
from worker.heatmaps import cam_maps, gradcam_maps, normalise  # noqa: E402


def _features_and_logits(model, cam_layer):
    return keras.Model(model.input, [model.get_layer(cam_layer).output, model.get_layer("logits").output])


def _fast_maps(model, cam_layer, images):
    features, _ = _features_and_logits(model, cam_layer)(images)
    return cam_maps(np.asarray(features), np.asarray(model.get_layer("logits").kernel))


def _random_logits_bias(model, scale):
    dense = model.get_layer("logits")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel, np.full_like(bias, scale)])


def test_normalise_never_gives_nan():
    maps = np.array([[[[np.nan, -1.0], [0.0, 0.0]], [[2.0, 4.0], [np.inf, 1.0]]]])
    out = normalise(maps)
    assert np.isfinite(out).all() and out.max() <= 1.0
    assert np.all(out[0, 0] == 0)  # no positive evidence: an empty map, not NaN


def test_fast_cam_equals_gradient_gradcam_on_the_small_cnn():
    keras.utils.set_random_seed(1)
    model = build_small_cnn(48)
    images = np.random.default_rng(0).random((3, 48, 48, 3)).astype(np.float32)
    assert has_gap_dense_head(model, "cam_features", "logits")
    fast = _fast_maps(model, "cam_features", images)
    reference = gradcam_maps(_features_and_logits(model, "cam_features"), images, list(range(15)))
    assert fast.shape == reference.shape == (3, 15, 6, 6)
    np.testing.assert_allclose(fast, reference, atol=1e-4)


@pytest.mark.slow
def test_fast_cam_equals_gradient_gradcam_on_xception_even_when_sigmoid_saturates():
    keras.utils.set_random_seed(2)
    model = build_xception_transfer(71, weights=None)
    _random_logits_bias(model, 40.0)  # sigmoid(logit) == 1.0 in float32 for every class
    images = np.random.default_rng(1).uniform(-1, 1, (2, 71, 71, 3)).astype(np.float32)
    assert np.all(np.asarray(model(images)) == 1.0)
    layer = "block14_sepconv2_act"
    assert has_gap_dense_head(model, layer, "logits")
    fast = _fast_maps(model, layer, images)
    reference = gradcam_maps(_features_and_logits(model, layer), images, list(range(15)))
    np.testing.assert_allclose(fast, reference, atol=1e-4)
    assert np.isfinite(fast).all()
    assert (fast.max(axis=(2, 3)) > 0.99).mean() > 0.5  # saturated classes still get real maps


def _blob_images(rng, count, size=32):
    """Class 0: a bright blob; class 1: a dark blob; each anywhere, on a mid-grey noisy background."""
    images = rng.normal(0.0, 0.05, (count, size, size, 3)).astype(np.float32)
    labels = rng.integers(0, 2, (count, 2)).astype(np.float32)
    for image, present in zip(images, labels):
        for value, flag in zip((0.5, -0.5), present):
            if flag:
                y, x = rng.integers(1, size - 6, 2)
                image[y:y + 5, x:x + 5] = value
    return images, labels


def test_heatmap_peaks_where_the_class_evidence_is():
    """A model that learned 'class 0 = bright blob, class 1 = dark blob' must point at each blob."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="cam")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(2, name="logits")(x)
    model = keras.Model(inputs, keras.layers.Activation("sigmoid")(logits))
    model.compile(keras.optimizers.Adam(0.003), "binary_crossentropy", metrics=["binary_accuracy"])
    images, labels = _blob_images(rng, 600)
    model.fit(images, labels, epochs=10, batch_size=32, verbose=0)
    test_images, test_labels = _blob_images(rng, 100)
    accuracy = ((np.asarray(model(test_images)) > 0.5) == test_labels).mean()
    assert accuracy > 0.95, f"the toy model did not learn its task (accuracy {accuracy:.2f})"

    both = np.zeros((1, 32, 32, 3), np.float32)
    both[0, 5:10, 5:10] = 0.5  # class 0 evidence, top-left
    both[0, 22:27, 22:27] = -0.5  # class 1 evidence, bottom-right
    maps = _fast_maps(model, "cam", both)[0]
    peak_0 = np.unravel_index(maps[0].argmax(), maps[0].shape)
    peak_1 = np.unravel_index(maps[1].argmax(), maps[1].shape)
    assert peak_0[0] < 16 and peak_0[1] < 16, f"class 0 map peaks at {peak_0}"
    assert peak_1[0] >= 16 and peak_1[1] >= 16, f"class 1 map peaks at {peak_1}"
    # Different classes, different maps: most of each map's mass lies on its own blob's quadrant.
    assert maps[0][:16, :16].sum() / maps[0].sum() > 0.8
    assert maps[1][16:, 16:].sum() / maps[1].sum() > 0.8
    reference = gradcam_maps(_features_and_logits(model, "cam"), both, [0, 1])[0]
    np.testing.assert_allclose(maps, reference, atol=1e-4)
