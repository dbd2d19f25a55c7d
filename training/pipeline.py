"""The train command end to end: data → patient split → train (one model, or a k-fold ensemble with
calibration) → thresholds → held-out test (and optional external) evaluation beside the PCA baseline →
artifact + report. (``xray-model evaluate`` is training/evaluation.py,
which needs no Keras.)"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from pathlib import Path

import numpy as np

from shared.model.labels import LABELS
from training.architectures import LOGITS_LAYER, build_ensemble
from training.baseline import DESCRIPTION as BASELINE
from training.baseline import pixels, train_baseline
from shared.stats.calibration import calibration_summary, fit_scaling
from training.crossval import cross_validate
from training.data import DataError, Record, kaggle_dataset, local_dataset
from training.export import export_artifact
from training.inputs import targets
from training import operating_points
from shared.stats.metrics import evaluate, mean_difference
from training.model_card import write_model_card
from training.report import comparison_table, history_plot, metrics_table, roc_plot
from training.splits import describe, label_counts, patient_split
from training.train import TrainConfig, mean_auroc, patient_weights, predict, train

log = logging.getLogger(__name__)
THRESHOLD_RULE = ("per finding, the lowest probability that keeps specificity at {target:.2f} on the {on}; "
                  "\"No Finding\" is derived (no finding above its threshold)")
ON_VALIDATION, ON_OOF = "validation split", "calibrated out-of-fold predictions of all training patients"
CALIBRATION = ("per label, a temperature and an offset (Platt scaling: logit / T + b) fitted on the out-of-fold "
               "logits by negative log-likelihood")


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


def _split_summary(split: dict[str, list[Record]]) -> dict:
    return {part: {"images": len(rs), "patients": len({r.patient_id for r in rs}), "labels": label_counts(rs)}
            for part, rs in split.items()}


@dataclasses.dataclass(frozen=True)
class Fitted:
    """What fitting hands the rest of the pipeline."""

    model: object  # the Keras model to serve
    uncalibrated: object | None  # a k-fold ensemble before calibration (for the calibration figures); else None
    thresholds: dict[str, float]
    learnt: list[Record]  # the records it learnt from: the baseline learns from the same
    histories: list[dict]  # one per member
    facts: dict  # what the manifest records about the fitting
    threshold_rule: str
    chosen_on: dict  # the held-out predictions the thresholds were chosen on: {"set", "y", "probabilities", "groups"}


@dataclasses.dataclass(frozen=True)
class Scored:
    """One evaluated set: its figures, and the labels and probabilities they came from (for the plots)."""

    result: dict
    y: np.ndarray
    probabilities: np.ndarray


def _fit(config: TrainConfig, split: dict[str, list[Record]], progress: bool, feature_cache_dir: Path | None) -> Fitted:
    size = (config.input_size, config.input_size)
    if config.folds > 1:
        learnt = split["train"] + split["validation"]  # k-fold: every training patient is held out once
        cv = cross_validate(config, learnt, progress=progress)
        y = targets(learnt)
        temperatures, offsets = fit_scaling(cv.oof_logits, y)
        oof = _sigmoid(cv.oof_logits / temperatures + offsets)
        facts = {"folds": config.folds, "repeats": config.repeats, "epochs_run": cv.epochs_run,
                 "oof_mean_auroc": mean_auroc(y, oof),
                 # Each patient weighing the same: the figure for a population of one image per patient.
                 "oof_mean_auroc_per_patient": mean_auroc(y, oof, patient_weights(learnt)),
                 "temperatures": dict(zip(LABELS, map(float, temperatures))),
                 "offsets": dict(zip(LABELS, map(float, offsets))),
                 "oof_ece": {"before": calibration_summary(y, _sigmoid(cv.oof_logits), LABELS)["mean_ece"],
                             "after": calibration_summary(y, oof, LABELS)["mean_ece"]}}
        thresholds = operating_points.choose_thresholds(y, oof, config.operating_specificity)
        return Fitted(build_ensemble(cv.members, temperatures, offsets), build_ensemble(cv.members), thresholds,
                      learnt, cv.histories, facts, THRESHOLD_RULE.format(target=config.operating_specificity, on=ON_OOF),
                      {"set": "out_of_fold", "y": y, "probabilities": oof, "groups": _patients(learnt)})
    model, history = train(config, split["train"], split["validation"], progress=progress,
                           feature_cache_dir=feature_cache_dir)
    y = targets(split["validation"])
    probabilities = predict(model, split["validation"], size, config.preprocessing, progress=progress)
    thresholds = operating_points.choose_thresholds(y, probabilities, config.operating_specificity)
    facts = {"epochs_run": len(history.get("loss", [])),
             "best_val_mean_auroc": max(history.get("val_mean_auroc", [math.nan]))}
    return Fitted(model, None, thresholds, split["train"], [history], facts,
                  THRESHOLD_RULE.format(target=config.operating_specificity, on=ON_VALIDATION),
                  {"set": "validation", "y": y, "probabilities": probabilities, "groups": _patients(split["validation"])})


def _patients(records: list[Record]) -> np.ndarray:
    return np.array([r.patient_id for r in records])


def operating_point_summary(fitted_rule: str, target: float, chosen_on: dict, thresholds: dict[str, float],
                            scored: dict[str, "Scored"], groups: dict[str, np.ndarray], rounds: int) -> dict:
    """The manifest's operating_points: the rule, and per finding its sensitivity and specificity with
    intervals where the thresholds were chosen and on every evaluated set; findings flagged per image."""
    sets = {chosen_on["set"]: (chosen_on["y"], chosen_on["probabilities"], chosen_on["groups"]),
            **{name: (s.y, s.probabilities, groups[name]) for name, s in scored.items()}}
    measured = {name: operating_points.measure(y, p, thresholds, g, rounds=rounds) for name, (y, p, g) in sets.items()}
    return {"rule": fitted_rule, "target_specificity": target, "chosen_on": chosen_on["set"],
            "per_label": {label: {name: figures[label] for name, figures in measured.items()} for label in LABELS},
            "findings_per_image": {name: operating_points.findings_per_image(y, p, thresholds)
                                   for name, (y, p, _) in sets.items()}}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def run_training(config: TrainConfig, *, out: Path, name: str = "starter", images: Path | None = None,
                 labels: Path | None = None, kaggle: str | None = None, external_images: Path | None = None,
                 external_labels: Path | None = None,
                 split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                 bootstrap: int = 1000, progress: bool = True, feature_cache_dir: Path | None = None) -> dict:
    """Train ``config`` on the data named as in load_records, split by patient with ``config.seed``,
    evaluate on the test split (and the external set if given) beside the PCA baseline trained on the
    same patients, and write the artifact to ``out``. With ``config.folds`` > 1 the train and validation
    patients are one k-fold pool (training/crossval.py). progress: Keras and bootstrap progress bars.
    Returns each evaluated set's result, the baseline's as ``baseline_<set>``."""
    started = time.monotonic()
    records, source = load_records(images=images, labels=labels, kaggle=kaggle)
    split = patient_split(records, tuple(split_fractions), seed=config.seed)
    log.info("Patient-level split (no patient in two splits):\n" + describe(split))
    fitted = _fit(config, split, progress, feature_cache_dir)
    model, thresholds = fitted.model, fitted.thresholds
    baseline = train_baseline(fitted.learnt, seed=config.seed)
    size = (config.input_size, config.input_size)

    sets = {"test": split["test"]}
    if external_images:
        sets["external"] = local_dataset(external_images, external_labels)
    evaluations, baseline_results, calibration, groups_of = {}, {}, {}, {}
    for set_name, subset in sets.items():  # not `name`: that is the artifact's
        y, groups = targets(subset), _patients(subset)
        groups_of[set_name] = groups
        probabilities = predict(model, subset, size, config.preprocessing, progress=progress)
        evaluations[set_name] = Scored(evaluate(y, probabilities, thresholds, groups=groups, rounds=bootstrap,
                                                progress=progress, keep_rounds=True), y, probabilities)
        baseline_results[set_name] = evaluate(y, baseline.predict_proba(pixels(subset)), {l: 0.5 for l in LABELS},
                                              groups=groups, rounds=bootstrap, keep_rounds=True)
        after = calibration_summary(y, probabilities, LABELS)
        before = (calibration_summary(y, predict(fitted.uncalibrated, subset, size, config.preprocessing), LABELS)
                  if fitted.uncalibrated is not None else None)
        calibration[set_name] = {"mean_ece_before": before["mean_ece"] if before else None,
                                 "mean_ece_after": after["mean_ece"], "per_label_ece": after["per_label_ece"]}
        log.info(f"\n{set_name}: {len(subset)} images, mean AUROC {evaluations[set_name].result['mean_auroc']:.3f} "
              f"(baseline {baseline_results[set_name]['mean_auroc']:.3f})")
        log.info(comparison_table(evaluations[set_name].result, baseline_results[set_name]))

    training = {
        "data": source,
        "split": _split_summary(split),
        "external_test": _shown(external_images) if external_images else None,
        "config": dataclasses.asdict(config),
        **fitted.facts,
        "threshold_rule": fitted.threshold_rule,
        "baseline": {"description": BASELINE, "trained_on_images": len(fitted.learnt),
                     **{s: {**_summary(result), "model_minus_baseline": mean_difference(evaluations[s].result, result)}
                        for s, result in baseline_results.items()}},
        "calibration": {"method": CALIBRATION if fitted.uncalibrated is not None else "none", **calibration},
        "seconds": round(time.monotonic() - started, 1),
    }
    manifest = export_artifact(
        model, out, name=name, architecture=f"{config.arch}-ensemble" if config.folds > 1 else config.arch,
        preprocessing=config.preprocessing, labels=LABELS, thresholds=thresholds, cam_layer=config.cam_layer,
        logits_layer=LOGITS_LAYER, trained=True, training=training,
        metrics={s: _summary(scored.result) for s, scored in evaluations.items()},
        operating_points=operating_point_summary(fitted.threshold_rule, config.operating_specificity, fitted.chosen_on,
                                                 thresholds, evaluations, groups_of, bootstrap),
    )
    write_report(Path(out), manifest, split, evaluations, baseline_results, fitted.histories)
    write_model_card(Path(out))
    log.info(f"\nwrote {out}: {manifest.name} {manifest.version}; report in {Path(out) / 'report.md'}")
    log.info(f"it has no input gate yet (only the rules check its images): fit one with `xray-model gate {out} "
             "--images ... --labels ...`")
    return {**{s: scored.result for s, scored in evaluations.items()},
            **{f"baseline_{s}": result for s, result in baseline_results.items()}}


def write_report(out: Path, manifest, split, evaluations: dict[str, Scored], baseline_results, histories) -> None:
    history_plot(histories, out / "training_history.png")
    training = manifest.training
    calibration = training["calibration"]
    parts = [f"# Training report: {manifest.name} `{manifest.version}`", "",
             "Research and education only; not for diagnosis.", "",
             f"- data: {training['data']}", f"- architecture: {manifest.architecture}, input "
             f"{manifest.input_size[0]}×{manifest.input_size[1]}, preprocessing {manifest.preprocessing}",
             f"- epochs run: {training['epochs_run']} (early stopping on held-out mean AUROC)",
             f"- thresholds: {training['threshold_rule']}",
             f"- baseline: {training['baseline']['description']}, trained on the same "
             f"{training['baseline']['trained_on_images']} images",
             f"- calibration: {calibration['method']}", "", "## Patient-level split", "", describe(split), "",
             "![training history](training_history.png)", ""]
    if "oof_mean_auroc" in training:
        repeats = f" × {training['repeats']} repeats" if training.get("repeats", 1) > 1 else ""
        per_patient = (f" ({training['oof_mean_auroc_per_patient']:.3f} with each patient weighing the same)"
                       if "oof_mean_auroc_per_patient" in training else "")
        parts += [f"Out-of-fold mean AUROC over the {training['folds']} folds{repeats}: "
                  f"{training['oof_mean_auroc']:.3f}{per_patient}; "
                  f"out-of-fold mean ECE {training['oof_ece']['before']:.3f} before and "
                  f"{training['oof_ece']['after']:.3f} after calibration (fitted on these same predictions).", ""]
    for name, scored in evaluations.items():
        result = scored.result
        roc_plot(scored.y, scored.probabilities, out / f"roc_{name}.png", f"{manifest.name}: ROC on the {name} set")
        ece = calibration[name]
        before = f"{ece['mean_ece_before']:.3f} before, " if ece["mean_ece_before"] is not None else ""
        # None: no finding has both classes in this set (a tiny one, e.g. a reader's few labelled images).
        after = "n/a" if ece["mean_ece_after"] is None else f"{ece['mean_ece_after']:.3f}"
        parts += [f"## {name.capitalize()} set ({result['images']} images, {result['patients']} patients)", "",
                  "95% intervals: patient-level bootstrap, "
                  f"{result['bootstrap']['rounds']} rounds.", "", metrics_table(result), "",
                  "The model beside the baseline (AUROC, 95% interval):", "",
                  comparison_table(result, baseline_results[name]), "",
                  f"Mean expected calibration error ({before}{after} as served).", "",
                  f"![ROC curves](roc_{name}.png)", ""]
    (out / "report.md").write_text("\n".join(parts))
