"""MODEL_CARD.md, written from the manifest so its numbers can never drift from the artifact's."""
from __future__ import annotations

import math
from pathlib import Path

from shared.labels import LABELS
from shared.model_manifest import read_manifest


def _num(value, digits=3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _table(metrics: dict) -> list[str]:
    lines = ["| finding | positives | AUROC | 95% CI |", "|---|---:|---:|---|"]
    for label in LABELS:
        row = metrics["per_label_auroc"][label]
        ci = f"{_num(row['ci_low'])}–{_num(row['ci_high'])}" if row["ci_low"] is not None else "–"
        lines.append(f"| {label} | {row['positives']} | {_num(row['auroc'])} | {ci} |")
    low, high = metrics["mean_auroc_ci"]
    lines.append(f"| **mean** | | **{_num(metrics['mean_auroc'])}** | {_num(low)}–{_num(high)} |")
    return lines


def write_model_card(artifact: Path) -> Path:
    manifest = read_manifest(artifact)
    training, metrics = manifest.training, manifest.metrics or {}
    split = training.get("split", {})
    config = training.get("config", {})
    size = (Path(artifact) / "model.keras").stat().st_size / 1e6
    parts = [
        f"# Model card: {manifest.name}", "",
        f"Version `{manifest.version}` · {manifest.architecture} · input {manifest.input_size[0]}×"
        f"{manifest.input_size[1]} greyscale (replicated to 3 channels), preprocessing `{manifest.preprocessing}` · "
        f"{size:.1f} MB", "",
        "**For research and education only. Not a medical device and not for diagnosis**, triage or any "
        "clinical decision. Its scores below are weak: treat its findings and heatmaps as a demonstration "
        "of the service, not as information about a patient.", "",
        "## What it was trained on", "",
        f"- Data: {training.get('data')} (NIH ChestX-ray14, official 2020 labels). Uploads of any size are "
        f"reduced to {manifest.input_size[0]}×{manifest.input_size[1]} before the model sees them.",
        "- Split by patient, stratified by finding (no patient in two splits): "
        + ", ".join(f"{name} {v['images']} images / {v['patients']} patients" for name, v in split.items()) + ".",
        f"- Training: from scratch (no pretrained weights), {training.get('epochs_run')} epochs, batch "
        f"{config.get('batch_size')}, AdamW lr {config.get('learning_rate')}, augmentation "
        f"{'on' if config.get('augment') else 'off'}, class-balanced binary cross-entropy, early stopping on the "
        f"validation mean AUROC (best {_num(training.get('best_val_mean_auroc'))}).",
        f"- Thresholds: {training.get('threshold_rule')}.", "",
        "## How it scored", "",
        "AUROC per finding with 95% intervals from a patient-level bootstrap "
        f"({(metrics.get('test') or {}).get('bootstrap', {}).get('rounds', '?')} rounds). The mean is over "
        "findings with at least one positive in that set. Nothing was tuned on the test sets.", "",
    ]
    for name, description in (("test", "Held-out patients of the same data set"),
                              ("external", f"External set {training.get('external_test')}, never used in training")):
        if name in metrics:
            m = metrics[name]
            parts += [f"### {description}: {m['images']} images, {m['patients']} patients", "",
                      f"Mean AUROC **{_num(m['mean_auroc'])}** (95% CI {_num(m['mean_auroc_ci'][0])}–"
                      f"{_num(m['mean_auroc_ci'][1])}).", "", *_table(m), ""]
    parts += [
        "## Limitations", "",
        f"- Trained on {split.get('train', {}).get('images')} images from {split.get('train', {}).get('patients')} "
        f"patients at {manifest.input_size[0]}×{manifest.input_size[1]}: little data at low resolution; findings "
        "with only a handful of positive patients have unreliable AUROCs and wide intervals, and a finding "
        "with no positives in a test set is not scored there.",
        "- Compare the held-out and external means above: where the external one is near 0.5, the model does "
        "not generalise beyond the images it was drawn from.",
        "- NIH labels were mined from radiology reports by NLP and are themselves noisy.",
        "- Heatmaps show where the model's evidence for a finding lies (class activation maps); they are "
        "not segmentations and are at 8×8 resolution for this model.", "",
        "See `report.md` beside this card for the full tables (sensitivity and specificity at the thresholds) "
        "and the ROC plots.",
    ]
    path = Path(artifact) / "MODEL_CARD.md"
    path.write_text("\n".join(parts) + "\n")
    return path
