"""``xray-model gate``: fit the input gate for a model artifact, measure it on what it was not fitted on,
and write gate.json beside the model with a summary of the figures in the manifest (``input_gate``).

The manifest's model version is the model file's hash and does not change; the gate has a version of its
own (the hash of gate.json), which the manifest records so that a gate.json swapped in from elsewhere is
refused at load (shared/model/gate.py).
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from shared.model.gate import GATE_FILE, Gate
from shared.model.manifest import MANIFEST_FILE, read_manifest
from training.gate import Table, confusion, confusion_lines, fit_gate, held_out_checks, shares, target_lines
from training.gate_data import chest_samples
from training.gate_pictures import other_samples

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class GateSources:
    images: Path  # real frontal chest X-rays to fit on, e.g. ../shared/data/nih/nih1000-64px/images
    labels: Path  # their NIH label table (Patient ID: X-rays are held out by patient)
    external_images: Path | None = None  # X-rays never fitted on, e.g. the full-resolution sample
    external_labels: Path | None = None
    limit: int | None = None  # at most this many fitted X-rays (a smaller gate for tests)
    per_source: int = 12  # variants of each real picture that is no X-ray
    per_generated_kind: int = 60
    seed: int = 0

    def tables(self) -> tuple[Table, Table | None]:
        """(examples to fit and cross-validate on, external X-rays and their transforms or None)."""
        log.info(f"reading the chest X-rays under {self.images} and the pictures that are no X-ray ...")
        fitted = chest_samples(self.images, self.labels, self.seed, limit=self.limit)
        fitted += other_samples(self.per_source, self.per_generated_kind, self.seed)
        external = None
        if self.external_images is not None:
            external = Table.of(chest_samples(self.external_images, self.external_labels, self.seed + 1, fit=False))
        return Table.of(fitted), external


def evaluate(sources: GateSources, folds: int = 5, inner_folds: int = 5) -> tuple[Gate, dict]:
    """The gate fitted on everything, and its figures: held out (grouped cross-validation, external X-rays
    included, each judged by the fold that did not see its patient) and the final gate on the external ones."""
    table, external = sources.tables()
    combined = table.joined(external)
    log.info(f"held-out checks: {folds} folds, {len(combined.samples)} examples ...")
    checks = held_out_checks(combined, folds, inner_folds, sources.seed)
    gate = fit_gate(table, inner_folds, sources.seed)
    summary = {
        "version": gate.version,
        "file": GATE_FILE,
        "method": gate.data["fitted"]["method"],
        "fitted_on": {**gate.data["fitted"]["examples"], "chest_patients": gate.data["fitted"]["chest_patients"],
                      "data": f"{sources.images} ({sources.labels}), transformed; pictures from scikit-image, "
                              "matplotlib, scikit-learn and pydicom; generated pictures (training/gate_synthetic.py)"},
        "thresholds": gate.data["thresholds"],
        "held_out": {"how": f"{folds}-fold cross-validation, grouped: a patient's X-rays and everything made from them "
                            "together, each source of pictures and each generated kind as a whole; the whole gate, "
                            "thresholds included, refitted in each fold",
                     "figures": shares(combined, checks), "confusion": confusion(combined.samples, checks)},
    }
    if external is not None:
        final = [gate.check(sample.seen) for sample in external.samples]
        summary["external"] = {"data": str(sources.external_images), "never_fitted": True,
                               "figures": shares(external, final), "confusion": confusion(external.samples, final)}
    return gate, summary


def write_gate(artifact_dir: Path, gate: Gate, summary: dict) -> None:
    """gate.json beside the model, and the summary into the manifest (its other keys as they were)."""
    artifact_dir = Path(artifact_dir)
    read_manifest(artifact_dir)  # the model and its manifest must belong together before anything is added
    gate.save(artifact_dir)
    path = artifact_dir / MANIFEST_FILE
    data = json.loads(path.read_text())
    data["input_gate"] = summary
    path.write_text(json.dumps(data, indent=2) + "\n")
    Gate.load(artifact_dir)  # reads back, and matches the manifest


def report(summary: dict) -> None:
    held_out = summary["held_out"]
    log.info(f"input gate {summary['version']}: {summary['method']}")
    log.info(f"held out ({held_out['how']}):")
    for line in confusion_lines(held_out["confusion"]) + target_lines(held_out["figures"]):
        log.info(f"  {line}")
    if "external" in summary:
        log.info(f"the final gate on {summary['external']['data']} (never fitted on):")
        for line in confusion_lines(summary["external"]["confusion"]) + target_lines(summary["external"]["figures"]):
            log.info(f"  {line}")
