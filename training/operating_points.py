"""Operating points a reader can live with: per finding, the threshold that keeps specificity at a target
(0.90 by default) on held-out predictions, with its sensitivity and specificity and their patient-level
95% bootstrap intervals on every labelled set.

Youden's J (the old rule) weighs a missed finding and a false alarm the same; with the prevalences of a
chest X-ray population it flagged about three times as many findings per image as the images carry. A
specificity target says how often a reader is bothered by a finding that is not there, in the terms
radiology uses. "No Finding" needs no threshold of its own: it is derived (no finding above its
threshold), so its operating point is reported for the derived decision.
"""
from __future__ import annotations

import math

import numpy as np

from shared.model.labels import LABELS, NO_FINDING
from shared.stats.metrics import bootstrap_indices

DEFAULT_SPECIFICITY = 0.90
EDGE = 1e-6  # thresholds stay strictly inside (0, 1), as the manifest requires


def specificity_threshold(y_true: np.ndarray, scores: np.ndarray, target: float = DEFAULT_SPECIFICITY,
                          default: float = 0.5) -> float:
    """The lowest threshold whose specificity on these predictions is at least ``target`` (an image is
    called positive at score >= threshold); ``default`` when there is no negative."""
    y_true = np.asarray(y_true).astype(bool)
    negatives = np.sort(np.asarray(scores, dtype=np.float64)[~y_true])
    if len(negatives) == 0:
        return default
    below = math.ceil(target * len(negatives))  # negatives that must score under the threshold
    if below >= len(negatives):
        threshold = np.nextafter(negatives[-1], np.inf)
    else:
        threshold = negatives[below] if below == 0 or negatives[below] > negatives[below - 1] \
            else np.nextafter(negatives[below], np.inf)
    return float(np.clip(threshold, EDGE, 1 - EDGE))


def derived_no_finding(probabilities: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """1 where no finding is above its threshold, the service's "No Finding" decision."""
    above = np.stack([probabilities[:, c] >= thresholds[label] for c, label in enumerate(LABELS) if label != NO_FINDING],
                     axis=1)
    return (~above.any(axis=1)).astype(np.float64)


def choose_thresholds(y: np.ndarray, probabilities: np.ndarray, target: float = DEFAULT_SPECIFICITY) -> dict[str, float]:
    """Per finding the specificity-target threshold; "No Finding" keeps 0.5 (it is derived, never voted)."""
    chosen = {label: specificity_threshold(y[:, c], probabilities[:, c], target) for c, label in enumerate(LABELS)}
    chosen[NO_FINDING] = 0.5
    return chosen


def _rates(y: np.ndarray, called: np.ndarray) -> tuple[float, float]:
    positives, negatives = y.sum(), (~y).sum()
    sensitivity = float((called & y).sum() / positives) if positives else math.nan
    specificity = float((~called & ~y).sum() / negatives) if negatives else math.nan
    return sensitivity, specificity


def _interval(values: list[float]) -> list[float | None]:
    finite = np.asarray([v for v in values if math.isfinite(v)])
    if len(finite) <= 10:
        return [None, None]
    return [round(float(v), 4) for v in np.percentile(finite, [2.5, 97.5])]


def _clean(value: float) -> float | None:
    return None if not math.isfinite(value) else round(float(value), 4)


def measure(y: np.ndarray, probabilities: np.ndarray, thresholds: dict[str, float], groups: np.ndarray | None = None,
            rounds: int = 1000, seed: int = 0) -> dict[str, dict]:
    """Per label, sensitivity and specificity of the service's decision (No Finding derived) with
    patient-level bootstrap intervals, and how many positives and negatives they rest on."""
    y = np.asarray(y).astype(bool)
    called = np.stack([probabilities[:, c] >= thresholds[label] for c, label in enumerate(LABELS)], axis=1)
    called[:, LABELS.index(NO_FINDING)] = derived_no_finding(probabilities, thresholds).astype(bool)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    rounds_seen = [[_rates(y[index, c], called[index, c]) for c in range(len(LABELS))]
                   for index in bootstrap_indices(groups, rounds, seed)]
    result = {}
    for c, label in enumerate(LABELS):
        sensitivity, specificity = _rates(y[:, c], called[:, c])
        result[label] = {
            "sensitivity": _clean(sensitivity), "specificity": _clean(specificity),
            "sensitivity_ci": _interval([r[c][0] for r in rounds_seen]),
            "specificity_ci": _interval([r[c][1] for r in rounds_seen]),
            "positives": int(y[:, c].sum()), "negatives": int((~y[:, c]).sum()),
        }
    return result


def findings_per_image(y: np.ndarray, probabilities: np.ndarray, thresholds: dict[str, float]) -> dict[str, float]:
    """Mean findings above threshold per image against the mean the images really carry ("No Finding" is
    not a finding)."""
    findings = [c for c, label in enumerate(LABELS) if label != NO_FINDING]
    flagged = np.stack([probabilities[:, c] >= thresholds[LABELS[c]] for c in findings], axis=1)
    return {"flagged": round(float(flagged.sum(axis=1).mean()), 3),
            "true": round(float(np.asarray(y)[:, findings].sum(axis=1).mean()), 3)}
