"""`xray-model operating-points`: new operating points for an artifact that is already trained, without
touching its weights (its version, a hash of the model file, stays the same).

Training chooses the thresholds on held-out predictions (training/pipeline.py). A model trained before
that rule, or one whose held-out predictions were not kept, gets them here from a labelled set it never
learnt from: by default the held-out test patients of its own split, reproduced from the manifest's seed
and fractions and checked against the split sizes the manifest recorded. Every set's sensitivity and
specificity is measured at the new thresholds, beside the old thresholds' findings per image.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from shared.model.labels import LABELS
from shared.model.manifest import write_manifest
from training import operating_points
from training.data import DataError, Record, local_dataset
from training.inputs import targets
from training.predictions import load_served_model, predict_records
from training.splits import patient_split

log = logging.getLogger(__name__)
RULE = ("per finding, the lowest probability that keeps specificity at {target:.2f} on the held-out test patients "
        "of the model's own split (chosen after training: its out-of-fold predictions were not kept); \"No Finding\" "
        "is derived (no finding above its threshold)")


def held_out_test(records: list[Record], training: dict, fractions: tuple[float, float, float]) -> list[Record]:
    """The artifact's own test patients, or DataError when the split cannot be reproduced exactly."""
    seed = int((training.get("config") or {}).get("seed", 0))
    split = patient_split(records, fractions, seed=seed)
    recorded = training.get("split") or {}
    for part, subset in split.items():
        want = recorded.get(part) or {}
        have = {"images": len(subset), "patients": len({r.patient_id for r in subset})}
        if {k: want.get(k) for k in have} != have:
            raise DataError(f"these images do not reproduce the model's own {part} split (the manifest says "
                            f"{want.get('images')} images of {want.get('patients')} patients, this gives "
                            f"{have['images']} of {have['patients']}): give the images and labels it was trained on")
    return split["test"]


def _scored(model, manifest, records: list[Record]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return targets(records), predict_records(model, manifest, records), np.array([r.patient_id for r in records])


REPORT_NOTE = "> **Thresholds re-chosen after this report was written**"


def _note_in_report(report: Path, rule: str) -> None:
    """report.md is the training run's record (its tables use the thresholds of that time): say at its top that
    the served thresholds are others, and where their figures are. Replaces an earlier note."""
    if not report.is_file():
        return
    lines = [line for line in report.read_text().splitlines() if not line.startswith(REPORT_NOTE)]
    note = (f"{REPORT_NOTE} (`xray-model operating-points`): {rule}. The threshold, sensitivity and specificity "
            "columns below are those of the training-time thresholds; the served thresholds and their figures are "
            "in MODEL_CARD.md, under Operating points.")
    report.write_text("\n".join([lines[0], "", note, *lines[1:]]).replace("\n\n\n", "\n\n") + "\n")


def rethreshold(artifact_dir: Path, images: Path, labels: Path, *, specificity: float = operating_points.DEFAULT_SPECIFICITY,
                external_images: Path | None = None, external_labels: Path | None = None,
                fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), bootstrap: int = 1000) -> dict:
    """Choose and write the thresholds; returns the manifest's new operating_points."""
    artifact_dir = Path(artifact_dir)
    model, manifest = load_served_model(artifact_dir)
    sets = {"test": _scored(model, manifest, held_out_test(local_dataset(images, labels), manifest.training, fractions))}
    if external_images:
        sets["external"] = _scored(model, manifest, local_dataset(external_images, external_labels))
    y, probabilities, _ = sets["test"]
    thresholds = operating_points.choose_thresholds(y, probabilities, specificity)
    rule = RULE.format(target=specificity)
    points = {
        "rule": rule, "target_specificity": specificity, "chosen_on": "test",
        "per_label": {label: {} for label in LABELS},
        "findings_per_image": {name: operating_points.findings_per_image(y, p, thresholds)
                               for name, (y, p, _) in sets.items()},
        "previous": {"thresholds": manifest.thresholds, "rule": manifest.training.get("threshold_rule"),
                     "findings_per_image": {name: operating_points.findings_per_image(y, p, manifest.thresholds)
                                            for name, (y, p, _) in sets.items()}},
    }
    for name, (y, p, groups) in sets.items():
        for label, figures in operating_points.measure(y, p, thresholds, groups, rounds=bootstrap).items():
            points["per_label"][label][name] = figures
    training = {**manifest.training, "threshold_rule": rule}
    write_manifest(artifact_dir, dataclasses.replace(manifest, thresholds=thresholds, training=training,
                                                     operating_points=points))
    _note_in_report(artifact_dir / "report.md", rule)
    for name, figures in points["findings_per_image"].items():
        before = points["previous"]["findings_per_image"][name]["flagged"]
        log.info(f"{name}: {figures['flagged']:.2f} findings above threshold per image (before: {before:.2f}); "
                 f"the images carry {figures['true']:.2f}")
    return points
