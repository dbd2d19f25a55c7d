"""The model card page's figures, gathered from a model's manifest: test and external AUROC side by side
with the baseline's beside each, the operating points, calibration and the input gate. Paths of the
machine that trained the model are reduced to the data set's name."""
from __future__ import annotations

import re

from shared.model import gate_summary
from shared.model.labels import LABELS, NO_FINDING
from shared.model.manifest import label_quality, reliability_set

SETS = ("test", "external")
PATH_PART = re.compile(r"(?:\.{0,2}/)?(?:[\w.-]+/)*([\w.-]+/[\w.-]+)")


def without_paths(text: str | None) -> str | None:
    """'../shared/data/nih/nih1000-64px/images with labels ...' → 'nih1000-64px/images with labels ...': the last
    two parts of every path only (a build machine's folders mean nothing to a reader and may name people)."""
    return None if text is None else PATH_PART.sub(lambda m: m.group(1), str(text))


def _auroc(row: dict | None) -> dict | None:
    if not row or row.get("auroc") is None:
        return None
    return {"auroc": row["auroc"], "low": row.get("ci_low"), "high": row.get("ci_high"), "positives": row.get("positives")}


def _mean(metrics: dict | None) -> dict | None:
    if not metrics or metrics.get("mean_auroc") is None:
        return None
    low, high = metrics.get("mean_auroc_ci") or (None, None)
    return {"auroc": metrics["mean_auroc"], "low": low, "high": high, "images": metrics.get("images"),
            "patients": metrics.get("patients")}


def card(manifest: dict) -> dict:
    metrics = manifest.get("metrics") or {}
    training = manifest.get("training") or {}
    baseline = training.get("baseline") or {}
    calibration = training.get("calibration") or {}
    points = manifest.get("operating_points") or {}
    sets = [name for name in SETS if metrics.get(name)]
    reliable = label_quality(manifest)
    rows = []
    for label in LABELS:
        rows.append({
            "label": label, "summary": label == NO_FINDING,
            "threshold": None if label == NO_FINDING else manifest.get("thresholds", {}).get(label),
            "reliable": reliable[label]["reliable"],
            "sets": {name: {"model": _auroc(metrics[name]["per_label_auroc"].get(label)),
                            "baseline": _auroc((baseline.get(name) or {}).get("per_label_auroc", {}).get(label)),
                            "ece": ((calibration.get(name) or {}).get("per_label_ece") or {}).get(label),
                            "point": ((points.get("per_label") or {}).get(label) or {}).get(name)}
                     for name in sets},
        })
    return {
        "sets": sets,
        "reliability_set": reliability_set(manifest),
        "rows": rows,
        "means": {name: {"model": _mean(metrics[name]), "baseline": _mean(baseline.get(name)),
                         "paired": (baseline.get(name) or {}).get("model_minus_baseline"),
                         "ece": (calibration.get(name) or {}).get("mean_ece_after")} for name in sets},
        "data": without_paths(training.get("data")),
        "external_data": without_paths(training.get("external_test")),
        "threshold_rule": without_paths(training.get("threshold_rule")),
        "baseline": baseline.get("description"),
        "calibration": calibration.get("method"),
        "points": {"rule": points.get("rule"), "chosen_on": points.get("chosen_on"),
                   "findings_per_image": points.get("findings_per_image") or {},
                   "previous": (points.get("previous") or {}).get("findings_per_image") or {}},
        "gate": gate_summary.summary(manifest.get("input_gate")),
    }
