"""The train command end to end: data → patient split → train → thresholds on validation → held-out test
(and optional external) evaluation → artifact + report. (``xray-model evaluate`` is training/evaluation.py,
which needs no Keras.)"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from pathlib import Path

import numpy as np

from shared.labels import LABELS
from training.architectures import LOGITS_LAYER
from training.data import DataError, Record, kaggle_dataset, local_dataset
from training.export import export_artifact
from training.inputs import targets
from training.metrics import evaluate, youden_threshold
from training.model_card import write_model_card
from training.report import history_plot, metrics_table, roc_plot
from training.splits import describe, label_counts, patient_split
from training.train import TrainConfig, predict, train

log = logging.getLogger(__name__)
THRESHOLD_RULE = ("per label, the probability that maximises Youden's J (sensitivity + specificity − 1) on the "
                  "validation split; 0.5 where the validation split has no positive")


def load_records(*, images: Path | None = None, labels: Path | None = None,
                 kaggle: str | None = None) -> tuple[list[Record], str]:
    """The labelled records and a description of where they came from: kagglehub's ``kaggle`` set
    ("sample" or "full") when given, else the local ``images`` folder with its ``labels`` CSV."""
    if kaggle:
        return kaggle_dataset(kaggle), f"kagglehub nih-chest-xrays/{'sample' if kaggle == 'sample' else 'data'}"
    if not (images and labels):
        raise DataError("give --images and --labels (a local NIH folder and its label CSV), or --kaggle sample|full")
    return local_dataset(images, labels), f"{_shown(images)} with labels {_shown(labels)}"


def _shown(path: Path) -> str:
    """A path as the person typed it relative to here, never this machine's absolute layout."""
    return os.path.relpath(path) if Path(path).is_absolute() else str(path)


def choose_thresholds(y: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    return {label: youden_threshold(y[:, c], probabilities[:, c]) for c, label in enumerate(LABELS)}


def _summary(result: dict) -> dict:
    """What the manifest keeps of an evaluation (the report has the rest)."""
    return {
        "images": result["images"], "patients": result["patients"],
        "mean_auroc": result["mean_auroc"], "mean_auroc_ci": result["mean_auroc_ci"],
        "per_label_auroc": {label: {k: (None if isinstance(v, float) and math.isnan(v) else v)
                                    for k, v in row.items() if k in ("auroc", "ci_low", "ci_high", "positives")}
                            for label, row in result["per_label"].items()},
        "bootstrap": result["bootstrap"],
    }


def run_training(config: TrainConfig, *, out: Path, name: str = "starter", images: Path | None = None,
                 labels: Path | None = None, kaggle: str | None = None, external_images: Path | None = None,
                 external_labels: Path | None = None,
                 split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                 bootstrap: int = 1000, progress: bool = True, feature_cache_dir: Path | None = None) -> dict:
    """Train ``config`` on the data named as in load_records, split by patient with ``config.seed``,
    evaluate on the test split (and the external set if given), and write the artifact to ``out``.
    progress: Keras and bootstrap progress bars. Returns each evaluated set's result."""
    started = time.monotonic()
    records, source = load_records(images=images, labels=labels, kaggle=kaggle)
    split = patient_split(records, tuple(split_fractions), seed=config.seed)
    print("Patient-level split (no patient in two splits):\n" + describe(split))
    model, history = train(config, split["train"], split["validation"], progress=progress,
                           feature_cache_dir=feature_cache_dir)
    size = (config.input_size, config.input_size)

    y_val = targets(split["validation"])
    thresholds = choose_thresholds(y_val, predict(model, split["validation"], size, config.preprocessing,
                                                  progress=progress))
    evaluations = {}
    sets = {"test": split["test"]}
    if external_images:
        sets["external"] = local_dataset(external_images, external_labels)
    for set_name, subset in sets.items():  # not `name`: that is the artifact's
        probabilities = predict(model, subset, size, config.preprocessing, progress=progress)
        evaluations[set_name] = (evaluate(targets(subset), probabilities, thresholds, progress=progress,
                                          groups=np.array([r.patient_id for r in subset]), rounds=bootstrap),
                                 targets(subset), probabilities)
        print(f"\n{set_name}: {len(subset)} images, mean AUROC {evaluations[set_name][0]['mean_auroc']:.3f}")
        print(metrics_table(evaluations[set_name][0]))

    training = {
        "data": source,
        "split": {part: {"images": len(rs), "patients": len({r.patient_id for r in rs}), "labels": label_counts(rs)}
                  for part, rs in split.items()},
        "external_test": _shown(external_images) if external_images else None,
        "config": dataclasses.asdict(config),
        "epochs_run": len(history.get("loss", [])),
        "best_val_mean_auroc": max(history.get("val_mean_auroc", [math.nan])),
        "threshold_rule": THRESHOLD_RULE,
        "seconds": round(time.monotonic() - started, 1),
    }
    manifest = export_artifact(
        model, out, name=name, architecture=config.arch, preprocessing=config.preprocessing,
        labels=LABELS, thresholds=thresholds, cam_layer=config.cam_layer, logits_layer=LOGITS_LAYER, trained=True,
        training=training, metrics={s: _summary(result) for s, (result, _, _) in evaluations.items()},
    )
    write_report(Path(out), manifest, split, evaluations, history)
    write_model_card(Path(out))
    print(f"\nwrote {out}: {manifest.name} {manifest.version}; report in {Path(out) / 'report.md'}")
    return {s: result for s, (result, _, _) in evaluations.items()}


def write_report(out: Path, manifest, split, evaluations, history) -> None:
    history_plot(history, out / "training_history.png")
    parts = [f"# Training report: {manifest.name} `{manifest.version}`", "",
             "Research and education only; not for diagnosis.", "",
             f"- data: {manifest.training['data']}", f"- architecture: {manifest.architecture}, input "
             f"{manifest.input_size[0]}×{manifest.input_size[1]}, preprocessing {manifest.preprocessing}",
             f"- epochs run: {manifest.training['epochs_run']} (early stopping on validation mean AUROC)",
             f"- thresholds: {THRESHOLD_RULE}", "", "## Patient-level split", "", describe(split), "",
             "![training history](training_history.png)", ""]
    for name, (result, y, probabilities) in evaluations.items():
        roc_plot(y, probabilities, out / f"roc_{name}.png", f"{manifest.name}: ROC on the {name} set")
        parts += [f"## {name.capitalize()} set ({result['images']} images, {result['patients']} patients)", "",
                  "95% intervals: patient-level bootstrap, "
                  f"{result['bootstrap']['rounds']} rounds.", "", metrics_table(result), "",
                  f"![ROC curves](roc_{name}.png)", ""]
    (out / "report.md").write_text("\n".join(parts))
