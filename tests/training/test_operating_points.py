"""Operating points a reader can live with: thresholds that keep a target specificity on held-out
predictions, their sensitivity and specificity with patient-level intervals, "No Finding" derived, and
the re-thresholding of a trained artifact on its own held-out test patients."""
import json
import shutil

import numpy as np
import pytest

from shared.model.labels import LABELS, NO_FINDING
from tests.helpers import SHARED_DATA
from training import operating_points


def test_the_threshold_keeps_the_target_specificity_on_the_predictions_it_was_chosen_on():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400).astype(bool)
    scores = np.clip(rng.normal(0.3 + 0.3 * y, 0.15), 0, 1)
    for target in (0.8, 0.9, 0.95):
        threshold = operating_points.specificity_threshold(y, scores, target)
        specificity = (scores[~y] < threshold).mean()
        assert target <= specificity < target + 0.01  # the lowest threshold that reaches the target
    assert operating_points.specificity_threshold(np.ones(5, bool), np.linspace(0, 1, 5)) == 0.5  # no negative
    tied = operating_points.specificity_threshold(np.zeros(10, bool), np.full(10, 0.3), 0.9)
    assert tied > 0.3  # ties: every negative stays below, never a threshold that calls them all


def test_no_finding_is_derived_and_its_operating_point_measures_that_decision():
    probabilities = np.full((3, len(LABELS)), 0.1)
    probabilities[0, LABELS.index("Mass")] = 0.9  # a finding
    probabilities[1, LABELS.index(NO_FINDING)] = 0.01  # the model's own "No Finding" vote is ignored
    thresholds = {label: 0.5 for label in LABELS}
    assert operating_points.derived_no_finding(probabilities, thresholds).tolist() == [0.0, 1.0, 1.0]
    y = np.zeros((3, len(LABELS)), bool)
    y[0, LABELS.index("Mass")] = y[1, LABELS.index(NO_FINDING)] = y[2, LABELS.index(NO_FINDING)] = True
    measured = operating_points.measure(y, probabilities, thresholds, rounds=50)
    assert measured[NO_FINDING]["sensitivity"] == 1.0 and measured[NO_FINDING]["specificity"] == 1.0
    assert measured["Mass"]["sensitivity"] == 1.0 and measured["Mass"]["positives"] == 1
    per_image = operating_points.findings_per_image(y, probabilities, thresholds)
    assert per_image == {"flagged": round(1 / 3, 3), "true": round(1 / 3, 3)}


@pytest.mark.skipif(not (SHARED_DATA / "nih1000-64px").is_dir(), reason="needs ../shared/data/nih (the real NIH images)")
@pytest.mark.slow  # loads the 10-member ensemble and scores 263 images
def test_rethresholding_a_trained_artifact_on_its_own_test_patients_keeps_its_version(tmp_path):
    import dataclasses

    from shared.model.manifest import read_manifest, write_manifest
    from training.rethreshold import rethreshold

    artifact = tmp_path / "model"
    shutil.copytree("models/starter", artifact)
    served = read_manifest(artifact)  # back to the thresholds it was trained with (Youden's J), as after `train`
    youden = served.operating_points["previous"]["thresholds"]
    write_manifest(artifact, dataclasses.replace(served, thresholds=youden, operating_points={}))
    before = read_manifest(artifact)
    points = rethreshold(artifact, SHARED_DATA / "nih1000-64px" / "images", SHARED_DATA / "nih1000-64px" / "labels.csv",
                         specificity=0.9, external_images=SHARED_DATA / "nih-fullres-sample" / "images",
                         external_labels=SHARED_DATA / "nih-fullres-sample" / "labels.csv", bootstrap=50)
    after = read_manifest(artifact)  # the model file's hash still matches: weights untouched
    assert after.version == before.version and after.operating_points == json.loads(json.dumps(points))
    for label in LABELS:
        if label != NO_FINDING:
            assert points["per_label"][label]["test"]["specificity"] >= 0.9
    assert points["findings_per_image"]["external"]["flagged"] < points["previous"]["findings_per_image"]["external"]["flagged"]
    # Reproduces the served thresholds: to float32 precision, since the predictions behind them differ in the last
    # digits between CPUs and thread counts (the committed ones were computed on another machine).
    assert points["previous"]["thresholds"] == youden
    assert after.thresholds == {label: pytest.approx(value, rel=1e-5, abs=1e-7) for label, value in served.thresholds.items()}
