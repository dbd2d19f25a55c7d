"""Temperature scaling and expected calibration error."""
import numpy as np
import pytest

from shared.stats.calibration import calibration_summary, expected_calibration_error, fit_scaling, logit


def test_a_known_overconfidence_and_shift_are_undone():
    """Logits three times too large and centred on 0 although the finding is rare (what class-balanced
    training gives): the fit finds T ≈ 3 and the offset, and the calibration error falls."""
    rng = np.random.default_rng(0)
    true_logits = rng.normal(-2.0, 1.5, (4000, 2))
    y = (rng.random((4000, 2)) < 1 / (1 + np.exp(-true_logits))).astype(float)
    balanced = 3.0 * (true_logits + 2.0)
    temperatures, offsets = fit_scaling(balanced, y)
    np.testing.assert_allclose(temperatures, [3.0, 3.0], rtol=0.12)
    np.testing.assert_allclose(offsets, [-2.0, -2.0], atol=0.2)
    before = expected_calibration_error(y[:, 0], 1 / (1 + np.exp(-balanced[:, 0])))
    after = expected_calibration_error(y[:, 0], 1 / (1 + np.exp(-(balanced[:, 0] / temperatures[0] + offsets[0]))))
    assert after < before / 4


def test_a_label_without_both_classes_is_left_alone():
    y = np.zeros((10, 2))
    y[:5, 0] = 1
    temperatures, offsets = fit_scaling(np.linspace(-2, 2, 20).reshape(10, 2), y)
    assert (temperatures[1], offsets[1]) == (1.0, 0.0) and temperatures[0] != 1.0


def test_ece_of_known_cases():
    assert expected_calibration_error([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.0)
    assert expected_calibration_error([1, 1, 1, 1], [0.05, 0.05, 0.05, 0.05]) == pytest.approx(0.95)
    # two bins: 0.15 predicted, 1 of 2 positive (|0.5-0.15|); 0.95 predicted, 2 of 2 positive (|1-0.95|)
    assert expected_calibration_error([0, 1, 1, 1], [0.15, 0.15, 0.95, 0.95]) == pytest.approx((2 * 0.35 + 2 * 0.05) / 4)


def test_summary_averages_only_labels_with_positives():
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    p = np.array([[0.9, 0.5], [0.1, 0.5], [0.9, 0.5], [0.1, 0.5]])
    summary = calibration_summary(y, p, ("A", "B"))
    assert summary["mean_ece"] == pytest.approx(summary["per_label_ece"]["A"]) and summary["per_label_ece"]["B"] == 0.5


def test_logit_inverts_the_sigmoid():
    z = np.array([-5.0, 0.0, 3.0])
    np.testing.assert_allclose(logit(1 / (1 + np.exp(-z))), z, atol=1e-6)
