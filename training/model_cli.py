"""``xray-model``: build, train, evaluate, import and check model artifacts. One entry, subcommands:

    xray-model init --arch xception-transfer --weights none --out var/models/untrained
    xray-model train --images DIR --labels CSV --out models/starter [--kaggle sample|full] [--folds 5]
    xray-model baseline --images DIR --labels CSV [--external-images DIR --external-labels CSV]
    xray-model predict --model models/starter --images DIR --out predictions.csv
    xray-model evaluate --labels CSV (--predictions predictions.csv | --model DIR --images DIR)
    xray-model import-hobby notebook_model.keras --out models/hobby
    xray-model check models/starter
    xray-model export --tflite models/starter --images DIR
    xray-model optimize models/starter [--images DIR]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from shared.model.labels import LABELS
from shared.model.manifest import ArtifactError, read_manifest
from training.data import DataError

# The real full-resolution NIH X-rays beside the repository (see ../shared/data/nih/README.md).
DEFAULT_CHECK_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "nih" / "nih-fullres-sample" / "images"


def init_model(arch: str, input_size: int, weights: str, out: Path, name: str | None = None):
    from training.architectures import ARCHITECTURES, LOGITS_LAYER, build_xception_transfer
    from training.export import export_artifact

    architecture = ARCHITECTURES[arch]
    if arch == "xception-transfer":
        model = build_xception_transfer(input_size, weights=None if weights == "none" else weights)
    else:
        if weights != "none":
            raise ValueError(f"the {arch} architecture has no pretrained weights; use --weights none")
        model = architecture.build(input_size)
    return export_artifact(
        model,
        out,
        name=name or f"{arch}-untrained",
        architecture=arch,
        preprocessing=architecture.preprocessing,
        labels=LABELS,
        thresholds={label: 0.5 for label in LABELS},
        cam_layer=architecture.cam_layer,
        logits_layer=LOGITS_LAYER,
        # An ImageNet base with a random head is still untrained for chest X-rays.
        trained=False,
        training={"data": "none", "weights": f"{weights} base, random head" if weights != "none" else "random"},
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xray-model", description="Build, train, evaluate and check model artifacts.")
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="build an untrained model artifact")
    init.add_argument("--arch", choices=["xception-transfer", "small-cnn"], default="xception-transfer")
    init.add_argument("--input-size", type=int, default=299)
    init.add_argument("--weights", default="imagenet", help="'imagenet' (needs network) or 'none'")
    init.add_argument("--out", type=Path, required=True)
    init.add_argument("--name")
    init.add_argument("--if-missing", action="store_true", help="do nothing when --out already holds a valid artifact")

    train = sub.add_parser("train", help="train on NIH data, evaluate on held-out patients, export an artifact")
    source = train.add_argument_group("data (a local folder with an NIH label CSV, or kagglehub)")
    source.add_argument("--images", type=Path, help="folder searched recursively for PNG/JPEG files")
    source.add_argument("--labels", type=Path, help="NIH-format label CSV (.csv or .csv.gz)")
    source.add_argument("--kaggle", choices=["sample", "full"], help="download nih-chest-xrays/sample or /data")
    source.add_argument("--external-images", type=Path, help="an extra test set, never used for training")
    source.add_argument("--external-labels", type=Path)
    train.add_argument("--arch", choices=["small-cnn", "xception-transfer"], default="small-cnn")
    train.add_argument("--weights", default="none", help="xception-transfer base: 'imagenet' or 'none'")
    train.add_argument("--input-size", type=int, default=64)
    train.add_argument("--width", type=int, default=32, help="small-cnn: filters in the first block")
    train.add_argument("--epochs", type=int, default=40)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--patience", type=int, default=8, help="epochs without a better validation AUROC")
    train.add_argument("--no-augment", dest="augment", action="store_false")
    train.add_argument("--augment", dest="augment", choices=["mild", "radiograph"], default=True,
                       help="mild: shifts, zoom, contrast; radiograph: also rotations, crops, gamma, noise")
    train.add_argument("--dropout", type=float, default=0.0, help="small-cnn: spatial dropout inside the trunk")
    train.add_argument("--context", type=int, default=0,
                       help="small-cnn: dilated convolutions before the heatmap layer (a wider view per map cell)")
    train.add_argument("--weight-decay", type=float, default=1e-4)
    train.add_argument("--label-smoothing", type=float, default=0.0)
    train.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA",
                       help="blend training images and their labels in pairs, λ ~ Beta(ALPHA, ALPHA) (0: off)")
    train.add_argument("--patient-weighting", action="store_true",
                       help="weigh each patient the same (1 / its images) in the loss and in early stopping, so a "
                            "patient with 60 follow-up images does not count 60 times")
    train.add_argument("--folds", type=int, default=0,
                       help="small-cnn: k > 1 trains a patient-level k-fold ensemble over the train and validation "
                            "patients, calibrates it on the out-of-fold predictions and serves it as one model")
    train.add_argument("--repeats", type=int, default=1,
                       help="with --folds K: deal the patients into K folds this many times, with fresh seeds "
                            "(K × repeats members, out-of-fold predictions averaged over the repeats)")
    train.add_argument("--cv-only", action="store_true",
                       help="with --folds K: cross-validate the recipe on the training patients and print its "
                            "out-of-fold AUROC beside the baseline's on the same folds; no artifact, no test set "
                            "(how to choose between recipes)")
    train.add_argument("--fine-tune-blocks", type=int, default=0)
    train.add_argument("--split", type=float, nargs=3, default=(0.7, 0.15, 0.15), metavar=("TRAIN", "VAL", "TEST"))
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds for the intervals")
    train.add_argument("--name", default="starter")
    train.add_argument("--out", type=Path, help="the artifact folder (required unless --cv-only)")
    train.add_argument("--json", type=Path, help="with --cv-only: also write the figures as JSON")

    baseline = sub.add_parser(
        "baseline", help="train and score the PCA + logistic-regression baseline on the pipeline's patient split",
        description="PCA (64 components) of 32×32 pixels + class-balanced logistic regression per finding, trained "
                    "on the training patients (train and validation splits) of the same patient split as "
                    "`xray-model train`, scored on its test patients and an optional external set.")
    baseline.add_argument("--images", type=Path, required=True)
    baseline.add_argument("--labels", type=Path, required=True)
    baseline.add_argument("--external-images", type=Path)
    baseline.add_argument("--external-labels", type=Path)
    baseline.add_argument("--split", type=float, nargs=3, default=(0.7, 0.15, 0.15), metavar=("TRAIN", "VAL", "TEST"))
    baseline.add_argument("--seed", type=int, default=0)
    baseline.add_argument("--bootstrap", type=int, default=1000)
    baseline.add_argument("--json", type=Path, help="also write the results as JSON")

    predict = sub.add_parser("predict", help="write a predictions CSV for a folder of images")
    predict.add_argument("--model", type=Path, required=True)
    predict.add_argument("--images", type=Path, required=True)
    predict.add_argument("--out", type=Path, required=True)

    evaluate = sub.add_parser(
        "evaluate", help="score a model or a predictions CSV against NIH labels",
        description="Score a predictions CSV (any system's) or a model against an NIH label CSV: AUROC per label "
                    "with patient-level bootstrap intervals, and the mean over the labels scored. A CSV needs "
                    "'Image Index' and at least one prob_<Label> column; labels without a column are named "
                    "and not scored, other columns are named and ignored.")
    evaluate.add_argument("--labels", type=Path, required=True, help="NIH-format label CSV (.csv or .csv.gz)")
    evaluate.add_argument("--predictions", type=Path,
                          help="CSV with 'Image Index' and prob_<Label> columns (e.g. from xray-model predict)")
    evaluate.add_argument("--model", type=Path, help="a model artifact folder (with --images)")
    evaluate.add_argument("--images", type=Path, help="folder of images for --model")
    evaluate.add_argument("--threshold", type=float, default=0.5, help="for a CSV; a model uses its own")
    evaluate.add_argument("--bootstrap", type=int, default=1000)
    evaluate.add_argument("--json", type=Path, help="also write the result as JSON")

    hobby = sub.add_parser("import-hobby", help="import a .keras file made by the original hobby notebook")
    hobby.add_argument("source", type=Path)
    hobby.add_argument("--out", type=Path, required=True)

    check = sub.add_parser("check", help="check an artifact folder the way a worker does at start")
    check.add_argument("path", type=Path)

    export = sub.add_parser("export", help="export an artifact for phones: TensorFlow Lite, checked on real X-rays")
    export.add_argument("path", type=Path, help="the model artifact folder")
    export.add_argument("--tflite", action="store_true", required=True, help="TensorFlow Lite (float16 and int8)")
    export.add_argument("--images", type=Path, required=True, help="real X-rays (a folder) for the agreement check")
    export.add_argument("--limit", type=int, default=64, help="at most this many images for the check")

    optimize = sub.add_parser(
        "optimize", help="write faster runtimes (bf16, OpenVINO) beside an artifact, each checked on real X-rays",
        description="Write and check faster runtimes for the worker: TensorFlow with bf16 compute and OpenVINO at "
                    "float32 and bf16. Each is accepted only when, on the real X-rays given, every probability is "
                    "within 0.01 of float32 and every class's map correlates >= 0.99 with the float32 map; the "
                    "figures go into the manifest and the worker serves the fastest accepted one (XRAY_RUNTIME=auto).")
    optimize.add_argument("path", type=Path, help="the model artifact folder")
    optimize.add_argument("--images", type=Path, default=DEFAULT_CHECK_IMAGES,
                          help="real X-rays for the check (default: %(default)s)")
    optimize.add_argument("--limit", type=int, default=64, help="at most this many images for the check")
    optimize.add_argument("--variants", nargs="+", help="only these (default: all)")
    optimize.add_argument("--batch-size", type=int, default=16)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        COMMANDS[args.command](args)
    except (ArtifactError, DataError, ValueError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")


def _init(args) -> None:
    if args.if_missing:
        try:
            manifest = read_manifest(args.out)
            print(f"model artifact already present: {args.out} ({manifest.name} {manifest.version})")
            return
        except ArtifactError:
            pass
    try:
        manifest = init_model(args.arch, args.input_size, args.weights, args.out, args.name)
    except Exception as exc:
        sys.exit(f"error: {exc}")
    print(f"wrote {args.out}: {manifest.name} {manifest.version} (untrained: predictions are meaningless)")


def _check(args) -> None:
    manifest = read_manifest(args.path)
    print(f"{args.path}: {manifest.name} {manifest.version} ({'trained' if manifest.trained else 'UNTRAINED'})")


def _train(args) -> None:
    from shared.ops.config import load_settings
    from training.pipeline import run_training
    from training.train import TrainConfig

    if bool(args.external_images) != bool(args.external_labels):
        raise DataError("an external test set needs both --external-images and --external-labels")
    if not args.out and not args.cv_only:
        raise ValueError("give --out (where the artifact goes), or --cv-only to cross-validate without one")
    config = TrainConfig(arch=args.arch, input_size=args.input_size, weights=args.weights, epochs=args.epochs,
                         batch_size=args.batch_size, learning_rate=args.learning_rate, patience=args.patience,
                         augment=args.augment, seed=args.seed, width=args.width, fine_tune_blocks=args.fine_tune_blocks,
                         dropout=args.dropout, context=args.context, weight_decay=args.weight_decay,
                         label_smoothing=args.label_smoothing, mixup=args.mixup,
                         patient_weighting=args.patient_weighting,
                         folds=args.folds, repeats=args.repeats)
    if config.folds and config.arch != "small-cnn":
        raise ValueError("--folds trains an ensemble of small-cnn members; use it with --arch small-cnn")
    if config.repeats != 1 and config.folds < 2:
        raise ValueError(f"--repeats {config.repeats} repeats a k-fold ensemble; give --folds K (K >= 2) with it")
    if args.cv_only:
        from training.pipeline import load_records
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


def _baseline(args) -> None:
    from training.baseline import run_baseline

    if bool(args.external_images) != bool(args.external_labels):
        raise DataError("an external test set needs both --external-images and --external-labels")
    results = run_baseline(images=args.images, labels=args.labels, external_images=args.external_images,
                           external_labels=args.external_labels, split_fractions=tuple(args.split), seed=args.seed,
                           bootstrap=args.bootstrap)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))


def _predict(args) -> None:
    from training.predictions import load_served_model, predict_records, unlabelled_records, write_csv

    model, manifest = load_served_model(args.model)
    records = unlabelled_records(args.images)
    probabilities = predict_records(model, manifest, records)
    write_csv(args.out, [r.image_index for r in records], probabilities)
    print(f"wrote {args.out}: {len(records)} images, model {manifest.name} {manifest.version}")


def _evaluate(args) -> None:
    from training.evaluation import evaluate_command  # no Keras: scoring a CSV starts in a second

    result = evaluate_command(labels=args.labels, predictions=args.predictions, model=args.model, images=args.images,
                              threshold=args.threshold, bootstrap=args.bootstrap)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


def _import_hobby(args) -> None:
    from training.hobby import import_hobby_model

    manifest = import_hobby_model(args.source, args.out)
    print(f"wrote {args.out}: {manifest.name} {manifest.version} (labels in the notebook's order, threshold 0.4)")


def _export(args) -> None:
    from training.data import find_images
    from training.tflite import export_tflite

    images = sorted(find_images(args.images).values())[:args.limit]
    report = export_tflite(args.path, images)
    for variant, figures in report["variants"].items():
        print(f"{args.path / figures['file']}: {figures['bytes'] / 1024:.0f} kB; on {report['check_images']} real X-rays "
              f"the probabilities differ from the Keras model's by at most {figures['max_abs_probability_difference']:.4f} "
              f"(mean {figures['mean_abs_probability_difference']:.5f})")
    print(f"labels, thresholds and preprocessing: {args.path / 'tflite.json'}")


def _optimize(args) -> None:
    from training.data import find_images
    from training.optimize import optimize

    if not args.images.is_dir():
        raise DataError(f"no folder of real X-rays at {args.images}: give --images")
    images = sorted(find_images(args.images).values())[:args.limit]
    report = optimize(args.path, images, variants=args.variants, batch_size=args.batch_size)
    print(f"checked on {report['check']['images']} real X-rays ({report['check']['source']}); {report['machine']}")
    print(f"{report['float32']['runtime']}: {report['float32']['images_per_second']:.1f} images/s (the reference)")
    for name, figures in report["variants"].items():
        if "reason" in figures:
            print(f"{name}: not checked: {figures['reason']}")
            continue
        print(f"{name}: {figures['images_per_second']:.1f} images/s, max |Δp| {figures['max_abs_probability_difference']:.5f}"
              f", min map correlation {figures['min_map_correlation']:.5f}: "
              f"{'accepted' if figures['accepted'] else 'REFUSED (outside the bounds: |Δp| <= 0.01, correlation >= 0.99)'}")
    print(f"written to {args.path / 'manifest.json'} (runtimes); workers with XRAY_RUNTIME=auto serve the fastest accepted")


COMMANDS = {"init": _init, "check": _check, "train": _train, "baseline": _baseline, "predict": _predict,
            "evaluate": _evaluate, "import-hobby": _import_hobby, "export": _export, "optimize": _optimize}

if __name__ == "__main__":
    main()
