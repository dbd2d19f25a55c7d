"""Calibration: one temperature per label fitted on out-of-fold logits, and the expected calibration
error that says whether it helped. Temperature scaling divides the logits by T, so it changes no
ranking (AUROC is untouched) and only makes the probabilities mean what they say."""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

BINS = 10
T_RANGE = (0.05, 20.0)


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    # log(1 + e^z) − y·z, written stably.
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_temperatures(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per label, the T in T_RANGE minimising the negative log-likelihood of sigmoid(logits / T); 1 for
    a label without both classes (nothing to fit)."""
    logits, y = np.asarray(logits, np.float64), np.asarray(y, np.float64)
    temperatures = np.ones(logits.shape[1])
    for c in range(logits.shape[1]):
        if 0 < y[:, c].sum() < len(y):
            result = minimize_scalar(lambda t: _nll(logits[:, c], y[:, c], t), bounds=T_RANGE, method="bounded")
            temperatures[c] = float(result.x)
    return temperatures


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
