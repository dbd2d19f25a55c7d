"""``xray-model`` commands that fit models: train (one model or a k-fold ensemble, or cross-validation of a
recipe alone) and baseline (the PCA + logistic-regression bar every model must clear)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.cli.command import Command
from training.data import DataError


def _data_arguments(parser: argparse.ArgumentParser, required: bool = False) -> None:
    what = "data (a local folder with an NIH label CSV" + (")" if required else ", or kagglehub)")
    source = parser.add_argument_group(what)
    source.add_argument("--images", type=Path, required=required, help="folder searched recursively for PNG/JPEG files")
    source.add_argument("--labels", type=Path, required=required, help="NIH-format label CSV (.csv or .csv.gz)")
    if not required:
        source.add_argument("--kaggle", choices=["sample", "full"], help="download nih-chest-xrays/sample or /data")
    source.add_argument("--external-images", type=Path, help="an extra test set, never used for training")
    source.add_argument("--external-labels", type=Path)
    parser.add_argument("--split", type=float, nargs=3, default=(0.7, 0.15, 0.15), metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds for the intervals")


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    _data_arguments(parser)
    parser.add_argument("--arch", choices=["small-cnn", "xception-transfer"], default="small-cnn")
    parser.add_argument("--weights", default="none", help="xception-transfer base: 'imagenet' or 'none'")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=32, help="small-cnn: filters in the first block")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=8, help="epochs without a better validation AUROC")
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument("--augment", dest="augment", choices=["mild", "radiograph"], default=True,
                        help="mild: shifts, zoom, contrast; radiograph: also rotations, crops, gamma, noise")
    parser.add_argument("--dropout", type=float, default=0.0, help="small-cnn: spatial dropout inside the trunk")
    parser.add_argument("--context", type=int, default=0,
                        help="small-cnn: dilated convolutions before the heatmap layer (a wider view per map cell)")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA",
                        help="blend training images and their labels in pairs, λ ~ Beta(ALPHA, ALPHA) (0: off)")
    parser.add_argument("--patient-weighting", action="store_true",
                        help="weigh each patient the same (1 / its images) in the loss and in early stopping, so a "
                             "patient with 60 follow-up images does not count 60 times")
    parser.add_argument("--folds", type=int, default=0,
                        help="small-cnn: k > 1 trains a patient-level k-fold ensemble over the train and validation "
                             "patients, calibrates it on the out-of-fold predictions and serves it as one model")
    parser.add_argument("--repeats", type=int, default=1,
                        help="with --folds K: deal the patients into K folds this many times, with fresh seeds "
                             "(K × repeats members, out-of-fold predictions averaged over the repeats)")
    parser.add_argument("--cv-only", action="store_true",
                        help="with --folds K: cross-validate the recipe on the training patients and print its "
                             "out-of-fold AUROC beside the baseline's on the same folds; no artifact, no test set "
                             "(how to choose between recipes)")
    parser.add_argument("--fine-tune-blocks", type=int, default=0)
    parser.add_argument("--specificity", type=float, default=0.90,
                        help="each finding's threshold keeps this specificity on the held-out predictions (out of "
                             "fold with --folds, else the validation split)")
    parser.add_argument("--name", default="starter")
    parser.add_argument("--out", type=Path, help="the artifact folder (required unless --cv-only)")
    parser.add_argument("--json", type=Path, help="with --cv-only: also write the figures as JSON")


def _config(args):
    from training.train import TrainConfig

    config = TrainConfig(arch=args.arch, input_size=args.input_size, weights=args.weights, epochs=args.epochs,
                         batch_size=args.batch_size, learning_rate=args.learning_rate, patience=args.patience,
                         augment=args.augment, seed=args.seed, width=args.width, fine_tune_blocks=args.fine_tune_blocks,
                         dropout=args.dropout, context=args.context, weight_decay=args.weight_decay,
                         label_smoothing=args.label_smoothing, mixup=args.mixup,
                         patient_weighting=args.patient_weighting, folds=args.folds, repeats=args.repeats,
                         operating_specificity=args.specificity)
    if not 0.5 <= config.operating_specificity < 1.0:
        raise ValueError(f"--specificity is a target between 0.5 and 1 (e.g. 0.9), got {config.operating_specificity}")
    if config.folds and config.arch != "small-cnn":
        raise ValueError("--folds trains an ensemble of small-cnn members; use it with --arch small-cnn")
    if config.repeats != 1 and config.folds < 2:
        raise ValueError(f"--repeats {config.repeats} repeats a k-fold ensemble; give --folds K (K >= 2) with it")
    return config


def _external_pair(args) -> None:
    if bool(args.external_images) != bool(args.external_labels):
        raise DataError("an external test set needs both --external-images and --external-labels")


def _train(args) -> None:
    from shared.ops.config import load_settings
    from training.pipeline import load_records, run_training

    _external_pair(args)
    if not args.out and not args.cv_only:
        raise ValueError("give --out (where the artifact goes), or --cv-only to cross-validate without one")
    config = _config(args)
    if args.cv_only:
        from training.selection import cross_validation_report

        if config.folds < 2:
            raise ValueError("--cv-only cross-validates: give --folds K (K >= 2) with it")
        records, _ = load_records(images=args.images, labels=args.labels, kaggle=args.kaggle)
        result = cross_validation_report(config, records, tuple(args.split))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2, default=float))
        return
    run_training(config, out=args.out, name=args.name, images=args.images, labels=args.labels, kaggle=args.kaggle,
                 external_images=args.external_images, external_labels=args.external_labels,
                 split_fractions=tuple(args.split), bootstrap=args.bootstrap,
                 feature_cache_dir=load_settings().feature_cache_dir)


def _baseline_arguments(parser: argparse.ArgumentParser) -> None:
    _data_arguments(parser, required=True)
    parser.add_argument("--json", type=Path, help="also write the results as JSON")


def _baseline(args) -> None:
    from training.baseline import run_baseline

    _external_pair(args)
    results = run_baseline(images=args.images, labels=args.labels, external_images=args.external_images,
                           external_labels=args.external_labels, split_fractions=tuple(args.split), seed=args.seed,
                           bootstrap=args.bootstrap)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))


COMMANDS = {
    "train": Command("train on NIH data, evaluate on held-out patients, export an artifact", _train_arguments, _train),
    "baseline": Command(
        "train and score the PCA + logistic-regression baseline on the pipeline's patient split", _baseline_arguments,
        _baseline,
        description="PCA (64 components) of 32×32 pixels + class-balanced logistic regression per finding, trained "
                    "on the training patients (train and validation splits) of the same patient split as "
                    "`xray-model train`, scored on its test patients and an optional external set."),
}
