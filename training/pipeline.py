"""The train and evaluate commands end to end: data → patient split → train → thresholds on validation →
held-out test (and optional external) evaluation → artifact + report."""
from __future__ import annotations

import dataclasses
import json
import os
import logging
import math
import time
from pathlib import Path

import numpy as np

from shared.labels import LABELS
from training.architectures import LOGITS_LAYER
from training.data import DataError, Record, kaggle_dataset, local_dataset, read_label_table
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


def load_records(args) -> tuple[list[Record], str]:
    if args.kaggle:
        return kaggle_dataset(args.kaggle), f"kagglehub nih-chest-xrays/{'sample' if args.kaggle == 'sample' else 'data'}"
    if not (args.images and args.labels):
        raise DataError("give --images and --labels (a local NIH folder and its label CSV), or --kaggle sample|full")
    return local_dataset(args.images, args.labels), f"{_shown(args.images)} with labels {_shown(args.labels)}"


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


def run_training(args) -> dict:
    started = time.monotonic()
    records, source = load_records(args)
    split = patient_split(records, tuple(args.split), seed=args.seed)
    print("Patient-level split (no patient in two splits):\n" + describe(split))
    config = TrainConfig(arch=args.arch, input_size=args.input_size, weights=args.weights, epochs=args.epochs,
                         batch_size=args.batch_size, learning_rate=args.learning_rate, patience=args.patience,
                         augment=args.augment, seed=args.seed, width=args.width, fine_tune_blocks=args.fine_tune_blocks)
    progress = getattr(args, "progress", True)
    model, history = train(config, split["train"], split["validation"], progress=progress)
    size = (config.input_size, config.input_size)

    y_val = targets(split["validation"])
    thresholds = choose_thresholds(y_val, predict(model, split["validation"], size, config.preprocessing,
                                                  progress=progress))
    evaluations = {}
    sets = {"test": split["test"]}
    if args.external_images:
        sets["external"] = local_dataset(args.external_images, args.external_labels)
    for name, subset in sets.items():
        probabilities = predict(model, subset, size, config.preprocessing, progress=progress)
        evaluations[name] = (evaluate(targets(subset), probabilities, thresholds, progress=progress,
                                      groups=np.array([r.patient_id for r in subset]), rounds=args.bootstrap),
                             targets(subset), probabilities)
        print(f"\n{name}: {len(subset)} images, mean AUROC {evaluations[name][0]['mean_auroc']:.3f}")
        print(metrics_table(evaluations[name][0]))

    training = {
        "data": source,
        "split": {name: {"images": len(rs), "patients": len({r.patient_id for r in rs}), "labels": label_counts(rs)}
                  for name, rs in split.items()},
        "external_test": _shown(args.external_images) if args.external_images else None,
        "config": dataclasses.asdict(config),
        "epochs_run": len(history.get("loss", [])),
        "best_val_mean_auroc": max(history.get("val_mean_auroc", [math.nan])),
        "threshold_rule": THRESHOLD_RULE,
        "seconds": round(time.monotonic() - started, 1),
    }
    manifest = export_artifact(
        model, args.out, name=args.name, architecture=config.arch, preprocessing=config.preprocessing,
        labels=LABELS, thresholds=thresholds, cam_layer=config.cam_layer, logits_layer=LOGITS_LAYER, trained=True,
        training=training, metrics={name: _summary(result) for name, (result, _, _) in evaluations.items()},
    )
    write_report(Path(args.out), manifest, split, evaluations, history)
    write_model_card(Path(args.out))
    print(f"\nwrote {args.out}: {manifest.name} {manifest.version}; report in {Path(args.out) / 'report.md'}")
    return {name: result for name, (result, _, _) in evaluations.items()}


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


def evaluate_command(args) -> dict:
    table = read_label_table(args.labels)
    if args.predictions:
        from training.predictions import read_csv

        names, probabilities = read_csv(args.predictions)
        thresholds = {label: args.threshold for label in LABELS}
        what = str(args.predictions)
    elif args.model and args.images:
        from training.predictions import load_served_model, predict_records, unlabelled_records

        model, manifest = load_served_model(args.model)
        records = [r for r in unlabelled_records(args.images) if r.image_index in table]
        probabilities = predict_records(model, manifest, records)
        names, thresholds = [r.image_index for r in records], manifest.thresholds
        what = f"{manifest.name} {manifest.version}"
    else:
        raise DataError("give --predictions CSV, or --model DIR with --images DIR")
    unknown = [n for n in names if n not in table]
    if unknown:
        raise DataError(f"{len(unknown)} predicted image(s) are not in {args.labels}, e.g. {unknown[:3]}")
    if not names:
        raise DataError("nothing to evaluate: no predicted image is in the label file")
    y = np.stack([table[n].target() for n in names])
    result = evaluate(y, probabilities, thresholds, groups=np.array([table[n].patient_id for n in names]),
                      rounds=args.bootstrap, progress=True)
    print(f"{what} on {len(names)} images ({result['patients']} patients): mean AUROC {result['mean_auroc']:.3f}")
    print(metrics_table(result))
    return json.loads(json.dumps(result, default=float))
