import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from shared.model.labels import LABELS
from shared.stats.metrics import auroc, evaluate, mean_difference, roc_curve, sensitivity_specificity, youden_threshold


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_scikit_learn_including_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * y, 1)  # rounding makes many ties
    assert auroc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_auroc_known_values_and_undefined_case():
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auroc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auroc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert np.isnan(auroc([1, 1, 1], [0.1, 0.2, 0.3]))


def test_roc_curve_matches_scikit_learn():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200), 2)
    fpr, tpr, _ = roc_curve(y, scores)
    sk_fpr, sk_tpr, _ = sk_roc_curve(y, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)


def test_youden_threshold_separates_a_separable_set_and_scores_it():
    y = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8])
    threshold = youden_threshold(y, scores)
    assert 0.3 < threshold <= 0.7
    assert sensitivity_specificity(y, scores, threshold) == (1.0, 1.0)


def test_evaluate_gives_intervals_that_contain_the_point_estimate():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (200, 15))
    y[:, 7] = 0  # a label with no positives is left out of the mean, not counted as 0.5
    probs = np.clip(0.35 * y + rng.random((200, 15)) * 0.65, 0, 1)
    groups = np.repeat(np.arange(100), 2)
    result = evaluate(y, probs, {label: 0.5 for label in LABELS}, groups=groups, rounds=200)
    assert result["patients"] == 100 and LABELS[7] not in result["labels_scored"]
    for label in result["labels_scored"]:
        row = result["per_label"][label]
        assert row["ci_low"] <= row["auroc"] <= row["ci_high"]
    low, high = result["mean_auroc_ci"]
    assert low <= result["mean_auroc"] <= high and result["mean_auroc"] > 0.7


def test_evaluate_scores_only_the_labels_given():
    """A system that predicts fewer labels is scored on those; the mean is over them, not padded to 15."""
    rng = np.random.default_rng(1)
    labels = ("Cardiomegaly", "Mass")
    y = rng.integers(0, 2, (80, 2))
    probs = np.clip(0.4 * y + rng.random((80, 2)) * 0.6, 0, 1)
    result = evaluate(y, probs, {label: 0.5 for label in labels}, rounds=20, labels=labels)
    assert list(result["per_label"]) == list(labels) and result["labels_scored"] == list(labels)
    expected = np.mean([roc_auc_score(y[:, c], probs[:, c]) for c in range(2)])
    assert result["mean_auroc"] == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match=r"shape \[images, 2\], received \(80, 15\)"):
        evaluate(np.zeros((80, 15)), np.zeros((80, 15)), {}, rounds=0, labels=labels)


def test_the_paired_difference_is_narrower_than_either_interval_when_two_systems_share_their_errors():
    """Two systems scored on the same patients: the bootstrap resamples the same patients for both, so a
    small consistent advantage gets an interval of its own, where the two marginal intervals overlap."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, (300, 15))
    shared = rng.random((300, 15))
    better = np.clip(0.3 * y + shared * 0.7, 0, 1)
    worse = np.clip(0.29 * y + shared * 0.71, 0, 1)
    groups = np.repeat(np.arange(150), 2)
    a, b = (evaluate(y, p, {label: 0.5 for label in LABELS}, groups=groups, rounds=120, keep_rounds=True)
            for p in (better, worse))
    paired = mean_difference(a, b)
    assert paired["difference"] == pytest.approx(a["mean_auroc"] - b["mean_auroc"])
    assert 0 < paired["ci_low"] <= paired["difference"] <= paired["ci_high"]
    assert b["mean_auroc_ci"][1] > a["mean_auroc_ci"][0]  # the marginal intervals overlap
    with pytest.raises(ValueError, match="same images"):
        mean_difference(a, evaluate(y[:100], better[:100], {label: 0.5 for label in LABELS}, rounds=120,
                                    keep_rounds=True))
    with pytest.raises(ValueError, match="keep_rounds=True"):
        mean_difference(a, evaluate(y, worse, {label: 0.5 for label in LABELS}, groups=groups, rounds=2))
