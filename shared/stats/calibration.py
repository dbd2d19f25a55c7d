"""Calibration: per label a temperature T and an offset b fitted on out-of-fold logits (z → z / T + b,
temperature scaling with an offset, i.e. Platt scaling), and the expected calibration error that says
whether it helped. Both are monotone, so no ranking changes (AUROC is untouched); the probabilities come
to mean what they say. The offset is needed because training is class-balanced: that centres every
label's logits near 0 (probability 0.5) whatever the finding's prevalence, which a temperature alone,
scaling around 0, cannot move."""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

BINS = 10
T_RANGE = (0.05, 20.0)
OFFSET_RANGE = (-10.0, 10.0)


def _nll(params: np.ndarray, logits: np.ndarray, y: np.ndarray) -> float:
    z = logits / params[0] + params[1]
    # log(1 + e^z) − y·z, written stably.
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_scaling(logits: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per label, the temperature (in T_RANGE) and offset minimising the negative log-likelihood of
    sigmoid(logits / T + b); T = 1, b = 0 for a label without both classes (nothing to fit)."""
    logits, y = np.asarray(logits, np.float64), np.asarray(y, np.float64)
    temperatures, offsets = np.ones(logits.shape[1]), np.zeros(logits.shape[1])
    for c in range(logits.shape[1]):
        if 0 < y[:, c].sum() < len(y):
            result = minimize(_nll, np.array([1.0, 0.0]), args=(logits[:, c], y[:, c]), method="L-BFGS-B",
                              bounds=[T_RANGE, OFFSET_RANGE])
            temperatures[c], offsets[c] = result.x
    return temperatures, offsets


def expected_calibration_error(y: np.ndarray, probabilities: np.ndarray, bins: int = BINS) -> float:
    """ECE of one label: over equal-width probability bins, the image-weighted mean of
    |observed rate − mean predicted probability|."""
    y, p = np.asarray(y, np.float64).ravel(), np.asarray(probabilities, np.float64).ravel()
    index = np.minimum((p * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            error += inside.sum() * abs(y[inside].mean() - p[inside].mean())
    return float(error / len(y))


def calibration_summary(y: np.ndarray, probabilities: np.ndarray, labels: tuple[str, ...]) -> dict:
    """Per label ECE and the mean over labels with positives (the labels AUROC is averaged over)."""
    y = np.asarray(y)
    per_label = {label: expected_calibration_error(y[:, c], probabilities[:, c]) for c, label in enumerate(labels)}
    scored = [label for c, label in enumerate(labels) if 0 < y[:, c].sum() < len(y)]
    return {"per_label_ece": per_label, "mean_ece": float(np.mean([per_label[label] for label in scored]))
            if scored else None, "bins": BINS}


def logit(probabilities: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probabilities, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def reliability_curve(y: np.ndarray, probabilities: np.ndarray, bins: int = BINS) -> list[dict]:
    """The points of a calibration plot of one label: per non-empty equal-width bin, the mean predicted
    probability, the observed rate and how many images fell in it."""
    y, p = np.asarray(y, np.float64).ravel(), np.asarray(probabilities, np.float64).ravel()
    index = np.minimum((p * bins).astype(int), bins - 1)
    return [{"predicted": float(p[index == b].mean()), "observed": float(y[index == b].mean()),
             "images": int((index == b).sum())} for b in range(bins) if (index == b).any()]
