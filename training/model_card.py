"""MODEL_CARD.md, written from the manifest so its numbers can never drift from the artifact's."""
from __future__ import annotations

from pathlib import Path

from shared.model import gate_summary
from shared.model.labels import LABELS
from shared.model.manifest import read_manifest
from training.report import fmt

def _cell(row: dict | None) -> str:
    if not row or row.get("auroc") is None:
        return "–"
    ci = f" ({fmt(row['ci_low'])}–{fmt(row['ci_high'])})" if row.get("ci_low") is not None else ""
    return f"{fmt(row['auroc'])}{ci}"


def _table(metrics: dict, baseline: dict | None, ece: dict | None) -> list[str]:
    """Per finding: positives, the model's AUROC with its interval, the baseline's beside it, whether the
    model is better than chance there (the interval lies above 0.5), and its calibration error."""
    lines = ["| finding | positives | AUROC (95% CI) | baseline AUROC (95% CI) | better than chance | ECE |",
             "|---|---:|---|---|---|---:|"]
    for label in LABELS:
        row = metrics["per_label_auroc"][label]
        other = (baseline or {}).get("per_label_auroc", {}).get(label)
        chance = "–" if row["auroc"] is None else ("yes" if _better_than_chance(row) else "**no**")
        lines.append(f"| {label} | {row['positives']} | {_cell(row)} | {_cell(other)} | {chance} | "
                     f"{fmt((ece or {}).get(label)) if row['auroc'] is not None else '–'} |")
    mean, base_mean = _mean_row(metrics), _mean_row(baseline) if baseline else None
    lines.append(f"| **mean** | | **{_cell(mean)}** | {_cell(base_mean)} | | |")
    return lines


def _mean_row(metrics: dict) -> dict:
    low, high = metrics["mean_auroc_ci"] or (None, None)
    return {"auroc": metrics["mean_auroc"], "ci_low": low, "ci_high": high}


def _input_gate(input_gate: dict | None) -> list[str]:
    """The gate's version, how it was fitted and its figures against their targets (shared/model/gate_summary.py)."""
    gate = gate_summary.summary(input_gate)
    parts = ["## Input gate", "",
             "Before any finding, each image is checked: is it a frontal chest radiograph? First rules, each with "
             "its reason (too small, in colour, flat, a DICOM body part that is not the chest, a lateral or oblique "
             "DICOM view), then "]
    if gate is None:
        parts[-1] += "nothing more: this model has no learned gate (`xray-model gate` fits one)."
        return parts + [""]
    parts[-1] += f"a learned check, `{gate['version']}` (gate.json): {gate['method']}."
    parts += ["", f"{gate['held_out_how']}." if gate["held_out_how"] else "", ""]
    for figures in gate["sets"]:
        parts += [f"| {figures['name']} | gated | target |", "|---|---|---|"]
        parts += [f"| {f['meaning']} | {f['gated']} of {f['of']} ({100 * f['share']:.1f}%) | "
                  + (f"{f['target']}: {'met' if f['met'] else '**not met**'}" if f["target"] else "–") + " |"
                  for f in figures["figures"]]
        parts.append("")
    confusion = gate["sets"][0]["confusion"]
    parts += [f"What the gate said about each kind of picture ({gate['sets'][0]['name']}):", "",
              "| kind | " + " | ".join(r.replace("_", " ") for r in confusion["results"]) + " |",
              "|---|" + "---:|" * len(confusion["results"])]
    parts += [f"| {row['kind']} | " + " | ".join(str(n) for n in row["counts"]) + " |" for row in confusion["rows"]]
    return parts + [""]


def _better_than_chance(row: dict) -> bool:
    """The finding's 95% interval lies above 0.5."""
    return (row["ci_low"] or 0) > 0.5


def not_better_than_chance(metrics: dict) -> list[str]:
    """Findings scored in this set whose interval reaches 0.5 or lower."""
    return [label for label in LABELS
            if (row := metrics["per_label_auroc"][label])["auroc"] is not None and not _better_than_chance(row)]


def _training_line(training: dict, config: dict) -> str:
    common = (f"batch {config.get('batch_size')}, AdamW lr {config.get('learning_rate')} weight decay "
              f"{config.get('weight_decay', 1e-4)}, width {config.get('width')}, spatial dropout "
              f"{config.get('dropout', 0.0)}, label smoothing {config.get('label_smoothing', 0.0)}, augmentation "
              f"{config.get('augment')}, mixup α {config.get('mixup', 0.0)}, class-balanced binary cross-entropy"
              + (", each patient weighing the same (1 / its images) in the loss and in early stopping"
                 if config.get("patient_weighting") else ""))
    if training.get("folds"):
        repeats = training.get("repeats", 1)
        members = training["folds"] * repeats
        dealt = f", the patients dealt into folds {repeats} times" if repeats > 1 else ""
        per_patient = (f" ({fmt(training['oof_mean_auroc_per_patient'])} with each patient weighing the same)"
                       if training.get("oof_mean_auroc_per_patient") is not None else "")
        return (f"- Training: from scratch (no pretrained weights), an ensemble of {members} members from "
                f"patient-level {training['folds']}-fold cross-validation over all training patients{dealt} (each "
                f"member stopped early on its own held-out fold; epochs {training.get('epochs_run')}), {common}. "
                f"Out-of-fold mean AUROC {fmt(training.get('oof_mean_auroc'))}{per_patient}. The members' logits "
                "are averaged in one model (GAP → Dense on their joined features), so the heatmaps are the mean of "
                "their class activation maps.")
    return (f"- Training: from scratch (no pretrained weights), {training.get('epochs_run')} epochs, {common}, early "
            f"stopping on the validation mean AUROC (best {fmt(training.get('best_val_mean_auroc'))}).")


def _calibration(training: dict) -> list[str]:
    calibration = training.get("calibration") or {}
    lines = ["## Calibration", "", f"Method: {calibration.get('method', 'none')}. Expected calibration error "
             "(10 equal-width bins, mean over findings with positives; lower is better):", ""]
    if training.get("oof_ece"):
        lines.append(f"- out-of-fold (training patients, where it was fitted): {fmt(training['oof_ece']['before'])} "
                     f"before, {fmt(training['oof_ece']['after'])} after")
    for name in ("test", "external"):
        if name in calibration:
            c = calibration[name]
            before = f"{fmt(c['mean_ece_before'])} before, " if c.get("mean_ece_before") is not None else ""
            lines.append(f"- {name} set: {before}{fmt(c['mean_ece_after'])} as served")
    return lines + [""]


def _percent(value) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _rate(figures: dict | None, name: str) -> str:
    if not figures or figures.get(name) is None:
        return "–"
    low, high = figures.get(f"{name}_ci") or (None, None)
    return _percent(figures[name]) + (f" ({_percent(low)}–{_percent(high)})" if low is not None else "")


def _operating_points(manifest) -> list[str]:
    """Per finding: its threshold and the sensitivity and specificity a reader gets at it, on each set."""
    points = manifest.operating_points or {}
    if not points.get("per_label"):
        return []
    sets = [name for name in ("out_of_fold", "validation", "test", "external")
            if any(name in v for v in points["per_label"].values())]
    lines = ["## Operating points", "", f"Thresholds: {points.get('rule')}. Sensitivity and specificity at each "
             "threshold with 95% patient-level bootstrap intervals; on the set the thresholds were chosen on "
             f"(`{points.get('chosen_on')}`) the specificity is the target by construction.", "",
             "| finding | threshold | " + " | ".join(f"{s} sensitivity | {s} specificity" for s in sets) + " |",
             "|---|---:|" + "---|---|" * len(sets)]
    for label in LABELS:
        row = points["per_label"].get(label, {})
        threshold = "derived" if label == "No Finding" else f"{manifest.thresholds[label]:.3f}"
        lines.append(f"| {label} | {threshold} | "
                     + " | ".join(f"{_rate(row.get(s), 'sensitivity')} | {_rate(row.get(s), 'specificity')}"
                                  for s in sets) + " |")
    per_image = points.get("findings_per_image") or {}
    previous = (points.get("previous") or {}).get("findings_per_image") or {}
    if per_image:
        lines += ["", "Findings above threshold per image against what the images carry: " + "; ".join(
            f"{name} {v['flagged']:.2f} (the images carry {v['true']:.2f}"
            + (f"; the previous thresholds flagged {previous[name]['flagged']:.2f}" if name in previous else "") + ")"
            for name, v in per_image.items()) + "."]
    return lines + [""]


def write_model_card(artifact: Path) -> Path:
    manifest = read_manifest(artifact)
    training, metrics = manifest.training, manifest.metrics or {}
    split = training.get("split", {})
    config = training.get("config", {})
    baseline = training.get("baseline") or {}
    size = (Path(artifact) / "model.keras").stat().st_size / 1e6
    learnt = (f"{split.get('train', {}).get('patients', 0) + split.get('validation', {}).get('patients', 0)} "
              "training patients (train and validation splits pooled for cross-validation)"
              if training.get("folds") else f"{split.get('train', {}).get('patients')} training patients")
    parts = [
        f"# Model card: {manifest.name}", "",
        f"Version `{manifest.version}` · {manifest.architecture} · input {manifest.input_size[0]}×"
        f"{manifest.input_size[1]} greyscale (replicated to 3 channels), preprocessing `{manifest.preprocessing}` · "
        f"{size:.1f} MB", "",
        "**For trying the service only. For research and education only: not a medical device and not for "
        "diagnosis**, triage or any clinical decision. Its scores below are weak: treat its findings and "
        "heatmaps as a demonstration of the service, not as information about a patient.", "",
        "## What it was trained on", "",
        f"- Data: {training.get('data')} (NIH ChestX-ray14, official 2020 labels). Uploads of any size are "
        f"reduced to {manifest.input_size[0]}×{manifest.input_size[1]} before the model sees them.",
        "- Split by patient, stratified by finding (no patient in two splits): "
        + ", ".join(f"{name} {v['images']} images / {v['patients']} patients" for name, v in split.items())
        + f". The model learnt from the {learnt}.",
        _training_line(training, config),
        f"- Thresholds: {training.get('threshold_rule')}.",
        f"- Baseline beside it: {baseline.get('description', 'none')}, trained on the same "
        f"{baseline.get('trained_on_images', '?')} images.", "",
        "## How it scored", "",
        "AUROC per finding with 95% intervals from a patient-level bootstrap "
        f"({(metrics.get('test') or {}).get('bootstrap', {}).get('rounds', '?')} rounds), beside the baseline's. "
        "The mean is over findings with at least one positive in that set. \"Better than chance\": the interval "
        "lies above 0.5. Nothing was tuned on the test sets; the external set was used for no choice.", "",
    ]
    ece_of = (training.get("calibration") or {})
    for name, description in (("test", "Held-out patients of the same data set"),
                              ("external", f"External set {training.get('external_test')}, never used in training "
                                           "or for any choice")):
        if name in metrics:
            m = metrics[name]
            base = baseline.get(name)
            paired = (base or {}).get("model_minus_baseline")
            interval = (f" (95% CI {paired['ci_low']:+.3f} to {paired['ci_high']:+.3f}, paired patient-level "
                        "bootstrap)" if paired else "")
            beside = (f" The baseline: {fmt(base['mean_auroc'])} ({fmt(base['mean_auroc_ci'][0])}–"
                      f"{fmt(base['mean_auroc_ci'][1])}); difference {m['mean_auroc'] - base['mean_auroc']:+.3f}"
                      f"{interval}." if base else "")
            if paired and name == "external":
                verdict = ("beats it" if paired["ci_low"] > 0 else "is ahead of it, but the interval does not exclude "
                           "no difference" if paired["difference"] > 0 else "does **not** beat it")
                beside += f" On this set the model {verdict}."
            weak = not_better_than_chance(m)
            parts += [f"### {description}: {m['images']} images, {m['patients']} patients", "",
                      f"Mean AUROC **{fmt(m['mean_auroc'])}** (95% CI {fmt(m['mean_auroc_ci'][0])}–"
                      f"{fmt(m['mean_auroc_ci'][1])}).{beside}", "",
                      *_table(m, base, (ece_of.get(name) or {}).get("per_label_ece")), "",
                      f"Not better than chance here: {', '.join(weak) if weak else 'none'}.", ""]
    parts += _operating_points(manifest)
    parts += _calibration(training)
    parts += _input_gate(manifest.input_gate)
    parts += [
        "## Limitations", "",
        f"- Trained on {learnt} at {manifest.input_size[0]}×{manifest.input_size[1]}: little data at low "
        "resolution; findings with only a handful of positive patients have unreliable AUROCs and wide "
        "intervals, and a finding with no positives in a test set is not scored there.",
        "- The external set has one image per patient and few positives for most findings (see the positives "
        "column): its intervals are wide, and a finding's AUROC there rests on a handful of patients.",
        "- NIH labels were mined from radiology reports by NLP and are themselves noisy.",
        "- Heatmaps show where the model's evidence for a finding lies (class activation maps); they are "
        f"not segmentations and are at {manifest.input_size[0] // 8}×{manifest.input_size[1] // 8} resolution "
        "for this model.", "",
        "See `report.md` beside this card for the full tables (sensitivity and specificity at the thresholds) "
        "and the ROC plots.",
    ]
    path = Path(artifact) / "MODEL_CARD.md"
    path.write_text("\n".join(parts) + "\n")
    return path
