"""Training mechanics on tiny models and real 64×64 X-rays."""
import json
import shutil

import keras
import numpy as np
import pytest

from shared.model.labels import LABELS
from tests.helpers import FIXTURES, SHARED_DATA, real_xray_bytes
from training.data import Record, local_dataset
from training.features import backbone, cached_features
from training.inputs import load_model_input, make_dataset, targets
from training.train import TrainConfig, head_model, patient_weights, positive_weights, weighted_binary_crossentropy


def _fixture_records(count=4):
    paths = sorted((FIXTURES / "nih64").glob("*.png"))[:count]
    rng = np.random.default_rng(0)
    return [Record(p.name, str(i), frozenset({LABELS[int(rng.integers(0, 15))]}), p) for i, p in enumerate(paths)]


def _tiny_frozen_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c2")(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="global_average_pooling")(x)
    logits = keras.layers.Dense(15, name="logits")(pooled)
    model = keras.Model(inputs, keras.layers.Activation("sigmoid")(logits))
    for layer in model.layers:
        if layer.name in ("c1", "bn", "c2"):
            layer.trainable = False
    return model


def test_feature_caching_gives_the_same_head_as_plain_training(tmp_path):
    records = _fixture_records(4) * 4  # 16 images
    y = targets(records)
    loss = weighted_binary_crossentropy(*positive_weights(y))
    dataset = make_dataset(records, (32, 32), "unit", batch_size=4)

    plain = _tiny_frozen_model()
    plain.compile(keras.optimizers.SGD(0.5), loss)
    plain.fit(dataset, epochs=3, shuffle=False, verbose=0)

    cached_model = _tiny_frozen_model()  # same seed, same initial weights
    features = cached_features(backbone(cached_model), records, (32, 32), "unit", 4, cache_dir=tmp_path)
    assert features.shape == (16, 8) and list(tmp_path.glob("*.npy"))
    head = head_model(cached_model)
    head.compile(keras.optimizers.SGD(0.5), loss)
    head.fit(features, y, batch_size=4, epochs=3, shuffle=False, verbose=0)

    for trained_plain, trained_cached in zip(plain.get_layer("logits").get_weights(),
                                             cached_model.get_layer("logits").get_weights()):
        np.testing.assert_allclose(trained_plain, trained_cached, atol=1e-5)
    assert not np.allclose(plain.get_layer("logits").get_weights()[0],
                           _tiny_frozen_model().get_layer("logits").get_weights()[0])  # it did train
    again = cached_features(backbone(cached_model), records, (32, 32), "unit", 4, cache_dir=tmp_path)
    np.testing.assert_array_equal(again, features)  # second call reads the cache


def test_the_feature_cache_follows_the_setting_when_it_is_used(tmp_path, monkeypatch):
    """XRAY_FEATURE_CACHE is read through shared.ops.config when features are cached, not when the module loads."""
    monkeypatch.setenv("XRAY_FEATURE_CACHE", str(tmp_path / "configured"))
    features = cached_features(backbone(_tiny_frozen_model()), _fixture_records(2), (32, 32), "unit", 2)
    assert features.shape == (2, 8) and len(list((tmp_path / "configured").glob("*.npy"))) == 1


@pytest.mark.parametrize("arch", ["small-cnn", "xception-transfer"])
def test_each_architecture_names_its_heatmap_layer_and_preprocessing(arch):
    from training.architectures import ARCHITECTURES

    architecture = ARCHITECTURES[arch]
    config = TrainConfig(arch=arch, input_size=71)
    assert (config.cam_layer, config.preprocessing) == (architecture.cam_layer, architecture.preprocessing)
    model = architecture.build(71, weights=None) if arch == "xception-transfer" else architecture.build(71)
    assert len(model.get_layer(architecture.cam_layer).output.shape) == 4  # a spatial map for the heatmaps
    assert architecture.preprocessing in ("unit", "xception")


def test_class_weights_balance_positives_and_negatives():
    y = np.zeros((10, 15), np.float32)
    y[:2, 0] = 1  # 2 positives, 8 negatives
    w_pos, w_neg = positive_weights(y)
    assert w_pos[0] == pytest.approx(2.5) and w_neg[0] == pytest.approx(0.625)
    assert w_pos[0] * 2 == pytest.approx(w_neg[0] * 8)  # each side carries half the loss
    assert w_pos[1] == 1.0  # no positives: unweighted


def test_patient_weights_count_each_patient_once_however_many_images_it_has():
    records = [Record(f"{p}_{i}.png", p, frozenset({"No Finding"})) for p, n in (("a", 6), ("b", 1), ("c", 3))
               for i in range(n)]
    weights = patient_weights(records)
    assert weights.mean() == pytest.approx(1.0)
    per_patient = {p: weights[[r.patient_id == p for r in records]].sum() for p in "abc"}
    assert per_patient["a"] == pytest.approx(per_patient["b"]) == pytest.approx(per_patient["c"])


def test_class_weights_count_images_by_their_sample_weights():
    y = np.zeros((4, 15), np.float32)
    y[0, 0] = 1  # one positive image weighing 3, three negatives weighing 1/3 each
    w_pos, w_neg = positive_weights(y, np.array([3.0, 1 / 3, 1 / 3, 1 / 3]))
    assert w_pos[0] * 3.0 == pytest.approx(w_neg[0] * 1.0)  # each side still carries half the loss


def test_a_weighted_dataset_yields_each_images_weight_through_augmentation():
    records = _fixture_records(4)
    weights = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    batches = list(make_dataset(records, (32, 32), "unit", batch_size=4, augment="radiograph", weights=weights))
    images, y, w = batches[0]
    assert images.shape == (4, 32, 32, 3) and y.shape == (4, 15)
    np.testing.assert_array_equal(w.numpy(), weights)


def test_training_pipeline_feeds_the_same_pixels_as_the_worker():
    from shared.imaging.images import decode_image
    from shared.model.preprocess import model_input

    name, data = real_xray_bytes(1)[0]
    path = FIXTURES / "nih64" / name
    np.testing.assert_array_equal(load_model_input(path, (48, 48), "xception"),
                                  model_input(decode_image(data, 10**6), (48, 48), "xception"))


@pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} is absent (real NIH data)")
def test_short_training_run_on_real_xrays_exports_a_servable_artifact(tmp_path, own_pg_url):
    """Train → export → worker load → predict gives the training process's probabilities."""
    from shared.ops.config import load_settings
    from training.pipeline import run_training
    from training.predictions import load_served_model, predict_records
    from worker.runtime import build_context

    source = SHARED_DATA / "nih1000-64px"
    images = tmp_path / "images"
    images.mkdir()
    for path in sorted((source / "images").glob("*.png"))[:160]:
        shutil.copy(path, images / path.name)
    config = TrainConfig(arch="small-cnn", input_size=32, width=8, epochs=2, batch_size=16, patience=2)
    results = run_training(config, out=tmp_path / "artifact", name="test-run", images=images,
                           labels=source / "labels.csv", split_fractions=(0.6, 0.2, 0.2), bootstrap=50,
                           progress=False, feature_cache_dir=tmp_path / "features")
    assert 0.0 <= results["test"]["mean_auroc"] <= 1.0

    artifact = tmp_path / "artifact"
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["name"] == "test-run" and manifest["trained"] is True
    assert manifest["metrics"]["test"]["patients"] > 0 and manifest["training"]["config"]["width"] == 8
    assert set(manifest["thresholds"]) == set(LABELS) and "specificity at 0.90" in manifest["training"]["threshold_rule"]
    points = manifest["operating_points"]
    assert points["chosen_on"] == "validation" and points["target_specificity"] == 0.9
    for label in LABELS:  # every finding's operating point, where chosen and on the test patients
        assert set(points["per_label"][label]) == {"validation", "test"}
    assert {"flagged", "true"} <= set(points["findings_per_image"]["test"])
    for name in ("report.md", "roc_test.png", "training_history.png"):
        assert (artifact / name).stat().st_size > 0

    model, loaded = load_served_model(artifact)
    records = local_dataset(images, source / "labels.csv")[:6]
    in_training = predict_records(model, loaded, records)
    ctx = build_context(load_settings(database_url=own_pg_url, model_dir=artifact, storage_dir=tmp_path / "s"))
    from shared.imaging.images import decode_image

    served = ctx.engine.analyse([decode_image(r.path.read_bytes(), 10**7) for r in records])
    for row, analysis in zip(in_training, served):
        np.testing.assert_allclose(row, [analysis.probabilities[label] for label in LABELS], atol=1e-5)


def test_mixup_blends_targets_and_weights_with_the_same_share_as_the_images():
    import tensorflow as tf

    from training.inputs import mixup

    count = 8
    images = tf.reshape(tf.repeat(tf.range(count, dtype=tf.float32), 4 * 4 * 3), (count, 4, 4, 3))  # image i is all i
    y = tf.one_hot(tf.range(count), 15)
    weights = tf.range(count, dtype=tf.float32) * 10
    mixed, mixed_y, mixed_w = (t.numpy() for t in mixup(images, y, weights, alpha=0.4, seed=3))
    assert np.allclose(mixed, mixed[:, :1, :1, :1])  # one blend per image, the same on every pixel
    value = mixed[:, 0, 0, 0]
    np.testing.assert_allclose(mixed_y.sum(axis=1), 1.0, atol=1e-5)  # still one unit of label mass per image
    np.testing.assert_allclose(mixed_y[:, :count] @ np.arange(count), value, atol=1e-4)
    np.testing.assert_allclose(mixed_w, value * 10, atol=1e-3)
    assert not np.allclose(value, np.arange(count))  # something was blended
