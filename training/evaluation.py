"""``xray-model evaluate``: score a predictions CSV (ours or another system's) or a model against NIH labels.

Scoring a CSV is arithmetic on numbers already computed, so this module imports neither Keras nor
TensorFlow (their start-up takes seconds); only the ``model`` path loads them, when it is taken.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from shared.model.labels import LABELS
from training.data import DataError, Record, read_label_table
from shared.stats.metrics import evaluate
from training.predictions import PredictionTable, read_csv
from training.report import metrics_table

log = logging.getLogger(__name__)


def _model_predictions(model: Path, images: Path, table: dict[str, Record]) -> tuple[PredictionTable, dict, str]:
    from training.predictions import load_served_model, predict_records, unlabelled_records

    loaded, manifest = load_served_model(model)
    records = [r for r in unlabelled_records(images) if r.image_index in table]
    probabilities = predict_records(loaded, manifest, records)
    predictions = PredictionTable([r.image_index for r in records], LABELS, probabilities)
    return predictions, manifest.thresholds, f"{manifest.name} {manifest.version}"


def evaluate_command(*, labels: Path, predictions: Path | None = None, model: Path | None = None,
                     images: Path | None = None, threshold: float = 0.5, bootstrap: int = 1000,
                     progress: bool = True, min_positives: int = 1) -> dict:
    """Score ``predictions`` (a CSV) or ``model`` on ``images`` against the label CSV ``labels``; print a
    summary and the per-label table and return the result in JSON types. Labels the predictions have no
    column for are named in ``labels_missing`` and left out of the table and the mean, since a system
    cannot be scored on what it does not predict. ``threshold`` applies to a CSV; a model uses its own.
    ``min_positives``: labels with fewer positives are named in ``labels_too_few`` and not scored (the service's
    batch evaluations use shared.stats.evaluation.MIN_POSITIVES)."""
    table = read_label_table(labels)
    if predictions:
        predicted = read_csv(predictions)
        thresholds, what = {label: threshold for label in predicted.labels}, str(predictions)
    elif model and images:
        predicted, thresholds, what = _model_predictions(model, images, table)
    else:
        raise DataError("give --predictions CSV, or --model DIR with --images DIR")
    names = predicted.names
    unknown = [n for n in names if n not in table]
    if unknown:
        raise DataError(f"{len(unknown)} predicted image(s) are not in {labels}, e.g. {unknown[:3]}")
    if not names:
        raise DataError("nothing to evaluate: no predicted image is in the label file")
    columns = [LABELS.index(label) for label in predicted.labels]
    y = np.stack([table[n].target() for n in names])[:, columns]
    result = evaluate(y, predicted.probabilities, thresholds, groups=np.array([table[n].patient_id for n in names]),
                      rounds=bootstrap, progress=progress, labels=predicted.labels, min_positives=min_positives)
    result["labels_missing"] = list(predicted.missing_labels)
    result["columns_ignored"] = list(predicted.ignored_columns)
    log.info(f"{what} on {len(names)} images ({result['patients']} patients): mean AUROC {result['mean_auroc']:.3f} "
          f"over {len(result['labels_scored'])} label(s) with positives")
    if predicted.missing_labels:
        log.info(f"not scored (no prob_<Label> column in the predictions): {', '.join(predicted.missing_labels)}; "
              f"scored {len(predicted.labels)} of {len(LABELS)} labels")
    if result.get("labels_too_few"):
        log.info(f"not scored (fewer than {min_positives} positives): {', '.join(result['labels_too_few'])}")
    if predicted.ignored_columns:
        log.info(f"ignored column(s), neither 'Image Index' nor prob_<Label> for a known label: "
              f"{', '.join(predicted.ignored_columns)}")
    log.info(metrics_table(result))
    return json.loads(json.dumps(result, default=float))
