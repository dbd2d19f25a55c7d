"""A labelled set scored the way a reader needs it: per finding AUROC with its patient-level interval, the
ROC curve and calibration points to draw, sensitivity / specificity / PPV / NPV at the operating point with
intervals, the confusion table, findings with too few positives marked rather than scored, and the same per
subgroup (sex, age band, view). Used by ``xray-model evaluate`` (through metrics.evaluate, its core) and by
the service's batch evaluations (shared/truth/evaluate.py): one implementation, one set of figures."""
from __future__ import annotations

import math

import numpy as np

from shared.model.labels import LABELS
from shared.stats.calibration import expected_calibration_error, reliability_curve
from shared.stats.metrics import bootstrap_weights, evaluate, interval, roc_curve

MIN_POSITIVES = 5  # fewer positives of a finding (in a set or subgroup): marked "too_few", not scored
SMALL_GROUP = 30  # a subgroup with fewer images is marked small: its intervals are wide
CURVE_POINTS = 60  # ROC points kept per finding for drawing


def _ratio(numerator, denominator):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), math.nan)


def _operating_points(y: np.ndarray, predicted: np.ndarray, known: np.ndarray, groups, rounds: int,
                      seed: int) -> list[dict]:
    """Per finding, sensitivity, specificity, PPV and NPV of its yes/no calls, each with a 95% patient-level
    bootstrap interval, and the confusion table they come from. One pass over the resamples for all findings:
    a round's cell counts are its weights times the cell indicators."""
    cells = np.stack([y & predicted & known, ~y & predicted & known, y & ~predicted & known, ~y & ~predicted & known],
                     axis=2)  # [images, labels, tp/fp/fn/tn]
    flat = cells.reshape(len(y), -1).astype(np.float64)
    counts = np.concatenate([w @ flat for w in bootstrap_weights(groups, rounds, seed)]).reshape(-1, y.shape[1], 4) \
        if rounds else np.empty((0, y.shape[1], 4))
    out = []
    for c in range(y.shape[1]):
        table = dict(zip(("tp", "fp", "fn", "tn"), (int(v) for v in cells[:, c].sum(axis=0))))
        tp, fp, fn, tn = (counts[:, c, i] for i in range(4))
        point = {"sensitivity": (table["tp"], table["tp"] + table["fn"]),
                 "specificity": (table["tn"], table["tn"] + table["fp"]),
                 "ppv": (table["tp"], table["tp"] + table["fp"]), "npv": (table["tn"], table["tn"] + table["fn"])}
        samples = {"sensitivity": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp),
                   "ppv": _ratio(tp, tp + fp), "npv": _ratio(tn, tn + fn)}
        row = {"confusion": table}
        for name, (numerator, denominator) in point.items():
            low, high = interval(samples[name])
            row[name] = {"value": numerator / denominator if denominator else math.nan, "ci_low": low, "ci_high": high}
        out.append(row)
    return out


def _curve(y: np.ndarray, scores: np.ndarray) -> dict:
    fpr, tpr, _ = roc_curve(y, scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), CURVE_POINTS)).round().astype(int))
    return {"fpr": [round(float(v), 4) for v in fpr[keep]], "tpr": [round(float(v), 4) for v in tpr[keep]]}


def evaluate_labelled(y: np.ndarray, probabilities: np.ndarray, thresholds: dict[str, float], groups: np.ndarray,
                      known: np.ndarray | None = None, subgroups: dict[str, list] | None = None,
                      labels: tuple[str, ...] = LABELS, rounds: int = 1000, seed: int = 0,
                      min_positives: int = MIN_POSITIVES, with_subgroups: bool = True) -> dict:
    """Everything the evaluation page shows, in JSON types (NaN where a figure does not exist).
    subgroups: per attribute (``sex``, ``age_band``, ``view``) one value per image, None where unknown."""
    y = np.asarray(y).astype(bool)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    known = np.ones_like(y) if known is None else np.asarray(known).astype(bool)
    groups = np.asarray(groups)
    result = evaluate(y, probabilities, thresholds, groups=groups, rounds=rounds, seed=seed, labels=labels,
                      known=known, min_positives=min_positives)
    too_few = set(result.get("labels_too_few", []))
    predicted = probabilities >= np.array([thresholds[label] for label in labels])
    points = _operating_points(y, predicted, known, groups, rounds, seed)
    for c, label in enumerate(labels):
        row, mask = result["per_label"][label], known[:, c]
        row["status"] = "too_few" if label in too_few else "scored"
        row["negatives"] = int((~y[:, c] & mask).sum())
        row.update(points[c])
        if row["status"] == "scored" and row["negatives"]:
            row["roc"] = _curve(y[mask, c], probabilities[mask, c])
        row["calibration"] = reliability_curve(y[mask, c], probabilities[mask, c]) if mask.any() else []
        row["ece"] = expected_calibration_error(y[mask, c], probabilities[mask, c]) if mask.any() else math.nan
    result["min_positives"] = min_positives
    result["labels_too_few"] = sorted(too_few, key=labels.index)
    if with_subgroups:
        result["subgroups"] = {name: _subgroups(values, y, probabilities, thresholds, groups, known, labels, rounds,
                                                seed, min_positives)
                               for name, values in (subgroups or {}).items()
                               if any(v is not None for v in values)}
    return result


def _subgroups(values, y, probabilities, thresholds, groups, known, labels, rounds, seed, min_positives) -> dict:
    out = {}
    values = np.array([v if v is not None else "" for v in values], dtype=object)
    for value in sorted({v for v in values if v}):
        inside = values == value
        part = evaluate(y[inside], probabilities[inside], thresholds, groups=groups[inside], rounds=rounds, seed=seed,
                        labels=labels, known=known[inside], min_positives=min_positives)
        out[value] = {
            "images": part["images"], "patients": part["patients"], "small": part["images"] < SMALL_GROUP,
            "mean_auroc": part["mean_auroc"], "mean_auroc_ci": part["mean_auroc_ci"],
            "labels_scored": part["labels_scored"],
            "per_label": {label: {k: part["per_label"][label][k]
                                  for k in ("auroc", "ci_low", "ci_high", "positives", "sensitivity", "specificity")}
                          for label in labels},
        }
    return out


def age_band(age) -> str | None:
    """Age bands of the evaluation's subgroups; None when unknown."""
    if age is None:
        return None
    return "under 40" if age < 40 else "40-59" if age < 60 else "60-79" if age < 80 else "80+"
