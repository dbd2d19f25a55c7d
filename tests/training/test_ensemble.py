"""A k-fold ensemble served as one model: its outputs are the temperature-scaled mean of the members'
logits, its head is GAP → Dense, and its class activation map is exactly the mean of the members'."""
import keras
import numpy as np
import pytest

from shared.model.labels import LABELS
from training.architectures import LOGITS_LAYER, SMALL_CNN_CAM_LAYER, build_ensemble, build_small_cnn
from training.crossval import patient_folds
from training.data import Record
from training.export import export_artifact


def _members(count=3):
    members = []
    for seed in range(count):
        keras.utils.set_random_seed(seed)
        model = build_small_cnn(32, width=4, dropout=0.1, context=1)
        kernel, bias = model.get_layer(LOGITS_LAYER).get_weights()
        model.get_layer(LOGITS_LAYER).set_weights([kernel, np.random.default_rng(seed).normal(0, 1, bias.shape)])
        members.append(model)
    return members


def _logits(model, x):
    return keras.Model(model.input, model.get_layer(LOGITS_LAYER).output).predict(x, verbose=0)


def _cam(model, x, label):
    features = keras.Model(model.input, model.get_layer(SMALL_CNN_CAM_LAYER).output).predict(x, verbose=0)
    kernel, _ = model.get_layer(LOGITS_LAYER).get_weights()
    return features @ kernel[:, label]


def test_ensemble_is_the_calibrated_mean_of_its_members_and_its_map_their_mean(tmp_path):
    from worker.artifact import load_artifact
    from worker.engine import InferenceEngine, has_gap_dense_head

    members = _members()
    temperatures, offsets = np.linspace(0.5, 3.0, len(LABELS)), np.linspace(-2.0, 1.0, len(LABELS))
    ensemble = build_ensemble(members, temperatures, offsets)
    x = np.random.default_rng(9).random((4, 32, 32, 3)).astype(np.float32)

    expected = np.mean([_logits(m, x) for m in members], axis=0) / temperatures + offsets
    np.testing.assert_allclose(_logits(ensemble, x), expected, atol=1e-4)
    np.testing.assert_allclose(ensemble.predict(x, verbose=0), 1 / (1 + np.exp(-expected)), atol=1e-5)
    assert has_gap_dense_head(ensemble, SMALL_CNN_CAM_LAYER, LOGITS_LAYER)
    label = LABELS.index("Cardiomegaly")
    mean_map = np.mean([_cam(m, x, label) for m in members], axis=0) / temperatures[label]  # offsets: no map
    np.testing.assert_allclose(_cam(ensemble, x, label), mean_map, atol=1e-4)

    # Saved, loaded and served by the worker: same probabilities, exact (fast) maps from one pass.
    export_artifact(ensemble, tmp_path / "ensemble", name="ensemble-test", architecture="small-cnn-ensemble",
                    preprocessing="unit", labels=LABELS, thresholds={label: 0.5 for label in LABELS},
                    cam_layer=SMALL_CNN_CAM_LAYER, logits_layer=LOGITS_LAYER, trained=True, training={})
    model, manifest = load_artifact(tmp_path / "ensemble")
    engine = InferenceEngine(model, manifest)
    assert engine.fast_cam
    analysis = engine.analyse([(x[0, :, :, 0] * 255).astype(np.uint8)])[0]
    np.testing.assert_allclose([analysis.probabilities[label] for label in LABELS],
                               1 / (1 + np.exp(-expected[0])), atol=2e-3)  # 8-bit round trip of the pixels


def test_an_ensemble_of_one_is_that_model():
    (member,) = _members(1)
    x = np.random.default_rng(1).random((2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(build_ensemble([member]).predict(x, verbose=0), member.predict(x, verbose=0), atol=1e-5)
    with pytest.raises(ValueError, match="at least one member"):
        build_ensemble([])


def test_folds_keep_each_patient_whole_and_cover_every_image():
    records = [Record(f"{p}_{i}.png", str(p), frozenset({"Effusion"} if p % 3 == 0 else {"No Finding"}))
               for p in range(30) for i in range(p % 4 + 1)]
    folds = patient_folds(records, 5, seed=0)
    assert sorted(np.concatenate(folds)) == list(range(len(records)))
    owners = [{records[i].patient_id for i in fold} for fold in folds]
    assert all(not (a & b) for n, a in enumerate(owners) for b in owners[n + 1:])
    assert all(any("Effusion" in records[i].labels for i in fold) for fold in folds)
    with pytest.raises(ValueError, match="cannot fill"):
        patient_folds(records[:3], 5)


def test_repeats_deal_new_folds_and_average_each_images_out_of_fold_logits(monkeypatch):
    """k folds × r repeats members; every image is scored once per repeat, by a member that never saw its
    patient, and its out-of-fold logit is the mean of those r scores."""
    from training import crossval
    from training.train import TrainConfig

    records = [Record(f"{p}_{i}.png", str(p), frozenset({"Effusion"} if p % 3 == 0 else {"No Finding"}))
               for p in range(30) for i in range(p % 4 + 1)]
    trained = []

    def fake_train(config, inside, held_out, progress=False):
        trained.append((config.seed, {r.patient_id for r in inside}))
        return config.seed, {"loss": [1.0], "val_mean_auroc": [0.5]}

    def fake_logits(seed, held_out, size, preprocessing):
        assert not {r.patient_id for r in held_out} & trained[-1][1]  # never its own patients
        return np.full((len(held_out), len(LABELS)), float(seed), np.float32)

    monkeypatch.setattr(crossval, "train", fake_train)
    monkeypatch.setattr(crossval, "predict_logits", fake_logits)
    cv = crossval.cross_validate(TrainConfig(folds=3, repeats=2, seed=0), records)
    assert len(cv.members) == 6 and len({seed for seed, _ in trained}) == 6
    first, second = crossval.patient_folds(records, 3, 0), crossval.patient_folds(records, 3, 1000)
    assert any(not np.array_equal(a, b) for a, b in zip(first, second))  # the second repeat deals anew
    for i in range(len(records)):
        k1 = next(k for k, fold in enumerate(first) if i in fold)
        k2 = next(k for k, fold in enumerate(second) if i in fold)
        assert cv.oof_logits[i, 0] == pytest.approx((k1 + 1000 + k2) / 2)  # member seeds: 0 + k, 1000 + k
