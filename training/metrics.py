"""Honest scores: AUROC and ROC curves (scikit-learn), patient-level bootstrap intervals, thresholds chosen
on held-out predictions."""
from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve
from tqdm import tqdm

from shared.model.labels import LABELS


def auroc(y_true: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Area under the ROC curve (scikit-learn; ties count half); NaN if one class is absent. weights: one
    per image (training.train.patient_weights: each patient counts once, however many images it has)."""
    y_true = np.asarray(y_true).astype(bool).ravel()
    if y_true.all() or not y_true.any():
        return math.nan
    return float(roc_auc_score(y_true, np.asarray(scores, dtype=np.float64).ravel(), sample_weight=weights))


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct score, highest threshold first (scikit-learn,
    every point kept so plots and Youden's J see all of them)."""
    return sk_roc_curve(np.asarray(y_true).astype(bool).ravel(), np.asarray(scores, dtype=np.float64).ravel(),
                        drop_intermediate=False)


def youden_threshold(y_true: np.ndarray, scores: np.ndarray, default: float = 0.5) -> float:
    """The threshold maximising sensitivity + specificity − 1 (Youden's J), clipped into (0, 1)."""
    if np.asarray(y_true).sum() == 0 or np.asarray(y_true).sum() == len(y_true):
        return default
    fpr, tpr, thresholds = roc_curve(y_true, scores)
    best = int(np.argmax(tpr[1:] - fpr[1:])) + 1
    return float(np.clip(thresholds[best], 1e-6, 1 - 1e-6))


def sensitivity_specificity(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float]:
    y_true = np.asarray(y_true).astype(bool)
    predicted = np.asarray(scores) >= threshold
    positives, negatives = y_true.sum(), (~y_true).sum()
    sensitivity = float((predicted & y_true).sum() / positives) if positives else math.nan
    specificity = float((~predicted & ~y_true).sum() / negatives) if negatives else math.nan
    return sensitivity, specificity


def bootstrap_indices(groups: np.ndarray, rounds: int, seed: int):
    """Resample whole patients (clusters), not images: images of one patient are not independent."""
    rng = np.random.default_rng(seed)
    unique, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(unique))]
    for _ in range(rounds):
        chosen = rng.integers(0, len(unique), len(unique))
        yield np.concatenate([members[g] for g in chosen])


def evaluate(y_true: np.ndarray, probabilities: np.ndarray, thresholds: dict[str, float],
             groups: np.ndarray | None = None, rounds: int = 1000, seed: int = 0, progress: bool = False,
             labels: tuple[str, ...] = LABELS, keep_rounds: bool = False) -> dict:
    """Per-label AUROC with a 95% patient-level bootstrap interval, sensitivity and specificity at the
    given thresholds, and the mean AUROC over labels that have positives. The columns of y_true and
    probabilities are ``labels`` (fewer than LABELS when scoring a system that predicts fewer).
    keep_rounds: also return every bootstrap round's mean (``mean_auroc_rounds``), what mean_difference
    pairs; left out otherwise (a thousand numbers nobody reads in a JSON report)."""
    y_true = np.asarray(y_true).astype(bool)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if y_true.shape != probabilities.shape or y_true.shape[1:] != (len(labels),):
        raise ValueError(f"expected targets and probabilities of shape [images, {len(labels)}], "
                         f"received {y_true.shape} and {probabilities.shape}")
    groups = np.arange(len(y_true)) if groups is None else np.asarray(groups)
    point = np.array([auroc(y_true[:, c], probabilities[:, c]) for c in range(len(labels))])
    samples = []
    for index in tqdm(bootstrap_indices(groups, rounds, seed), total=rounds, desc="bootstrap", disable=not progress):
        samples.append([auroc(y_true[index, c], probabilities[index, c]) for c in range(len(labels))])
    samples = np.array(samples).reshape(-1, len(labels))
    per_label = {}
    for c, label in enumerate(labels):
        finite = samples[:, c][np.isfinite(samples[:, c])]
        low, high = (np.percentile(finite, [2.5, 97.5]) if len(finite) > 10 else (math.nan, math.nan))
        sensitivity, specificity = sensitivity_specificity(y_true[:, c], probabilities[:, c], thresholds[label])
        per_label[label] = {
            "auroc": point[c], "ci_low": float(low), "ci_high": float(high),
            "positives": int(y_true[:, c].sum()), "threshold": thresholds[label],
            "sensitivity": sensitivity, "specificity": specificity,
        }
    scored = np.isfinite(point)
    # A resample can miss every positive of every scored label (tiny sets): that round has no mean.
    means = [row[scored][np.isfinite(row[scored])] for row in samples] if scored.any() else []
    mean_samples = np.array([m.mean() for m in means if len(m)])
    result = {
        "images": int(len(y_true)),
        "patients": int(len(np.unique(groups))),
        "mean_auroc": float(np.mean(point[scored])) if scored.any() else math.nan,
        "mean_auroc_ci": [float(v) for v in np.percentile(mean_samples, [2.5, 97.5])] if len(mean_samples) else None,
        "labels_scored": [label for label, ok in zip(labels, scored) if ok],
        "per_label": per_label,
        "bootstrap": {"rounds": rounds, "unit": "patient", "seed": seed},
    }
    if keep_rounds:
        # Every round's mean (NaN where a round scored nothing): two systems evaluated on the same targets,
        # groups and seed resample the same patients round by round, so their difference has an interval too.
        result["mean_auroc_rounds"] = [m.mean() if len(m) else math.nan for m in means]
    return result


def mean_difference(result: dict, other: dict) -> dict:
    """The difference of two evaluate() results' mean AUROCs on the same images, with a paired 95%
    patient-level bootstrap interval (each round resampled the same patients for both). Both evaluated
    with keep_rounds=True."""
    if "mean_auroc_rounds" not in result or "mean_auroc_rounds" not in other:
        raise ValueError("a paired difference needs the bootstrap rounds: evaluate both with keep_rounds=True")
    difference = result["mean_auroc"] - other["mean_auroc"]
    a, b = np.asarray(result["mean_auroc_rounds"]), np.asarray(other["mean_auroc_rounds"])
    if a.shape != b.shape or result["bootstrap"] != other["bootstrap"] or result["images"] != other["images"]:
        raise ValueError("a paired difference needs two evaluations of the same images with the same bootstrap")
    paired = (a - b)[np.isfinite(a - b)]
    low, high = np.percentile(paired, [2.5, 97.5]) if len(paired) > 10 else (math.nan, math.nan)
    return {"difference": float(difference), "ci_low": float(low), "ci_high": float(high)}
