"""Choosing a recipe by patient-level cross-validation alone (``xray-model train --folds K --cv-only``): the
k-fold members' out-of-fold (OOF) AUROC on the training patients beside the PCA baseline's on the same
folds, with nothing written and no test or external image touched, so recipes can be compared on the
figure that is allowed to choose between them. Each patient weighs the same in the headline figure
(1 / its images): the service meets one image per patient far more often than a 60th follow-up."""
from __future__ import annotations

import logging

import numpy as np

from shared.model.labels import LABELS
from training.baseline import PixelBaseline, pixels
from training.crossval import cross_validate
from training.inputs import targets
from shared.stats.metrics import auroc
from training.splits import patient_split
from training.train import TrainConfig, mean_auroc, patient_weights

log = logging.getLogger(__name__)


def baseline_oof(records, folds: list[np.ndarray], seed: int = 0) -> np.ndarray:
    """The PCA baseline's out-of-fold probabilities on the same patient folds as the model's."""
    x, y = pixels(records), targets(records)
    scores = np.zeros_like(y)
    for held_out in folds:
        inside = np.setdiff1d(np.arange(len(records)), held_out)
        scores[held_out] = PixelBaseline(seed=seed).fit(x[inside], y[inside]).predict_proba(x[held_out])
    return scores


def cross_validation_report(config: TrainConfig, records, split_fractions=(0.7, 0.15, 0.15),
                            progress: bool = False) -> dict:
    """Cross-validate ``config`` over the training patients (train and validation splits of the pipeline's
    patient split, as ``xray-model train --folds`` does), print and return the OOF figures."""
    split = patient_split(records, tuple(split_fractions), seed=config.seed)
    pool = split["train"] + split["validation"]
    cv = cross_validate(config, pool, progress=progress)
    baseline = baseline_oof(pool, cv.folds, config.seed)
    y, weights = targets(pool), patient_weights(pool)
    patients = {label: len({r.patient_id for r in pool if label in r.labels}) for label in LABELS}
    rows = {label: {"patients": patients[label],
                    "model": auroc(y[:, c], cv.oof_logits[:, c], weights),
                    "baseline": auroc(y[:, c], baseline[:, c], weights)} for c, label in enumerate(LABELS)}
    result = {"images": len(pool), "patients": len({r.patient_id for r in pool}), "folds": config.folds,
              "repeats": config.repeats, "epochs_run": cv.epochs_run,
              "model_mean_auroc": mean_auroc(y, cv.oof_logits, weights),
              "baseline_mean_auroc": mean_auroc(y, baseline, weights),
              "model_mean_auroc_images": mean_auroc(y, cv.oof_logits), "per_label": rows}
    lines = [f"Out-of-fold AUROC over {result['patients']} training patients ({result['images']} images), "
             f"{config.folds} folds × {config.repeats}, each patient weighing the same; epochs {cv.epochs_run}", "",
             "| finding | positive patients | model | baseline |", "|---|---:|---:|---:|"]
    lines += [f"| {label} | {row['patients']} | {row['model']:.3f} | {row['baseline']:.3f} |" for label, row in rows.items()]
    lines.append(f"| **mean** | | **{result['model_mean_auroc']:.3f}** | {result['baseline_mean_auroc']:.3f} |")
    log.info("\n".join(lines) + f"\n(counting images instead of patients, the model's mean is "
                             f"{result['model_mean_auroc_images']:.3f})")
    return result
