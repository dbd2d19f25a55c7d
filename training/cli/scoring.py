"""``xray-model`` commands that score: predict (a CSV of probabilities for a folder of images) and evaluate
(a model or any system's predictions CSV against NIH labels)."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from training.cli.command import Command

log = logging.getLogger(__name__)


def _predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)


def _predict(args) -> None:
    from training.predictions import load_served_model, predict_records, unlabelled_records, write_csv

    model, manifest = load_served_model(args.model)
    records = unlabelled_records(args.images)
    probabilities = predict_records(model, manifest, records)
    write_csv(args.out, [r.image_index for r in records], probabilities)
    log.info(f"wrote {args.out}: {len(records)} images, model {manifest.name} {manifest.version}")


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", type=Path, required=True, help="NIH-format label CSV (.csv or .csv.gz)")
    parser.add_argument("--predictions", type=Path,
                        help="CSV with 'Image Index' and prob_<Label> columns (e.g. from xray-model predict)")
    parser.add_argument("--model", type=Path, help="a model artifact folder (with --images)")
    parser.add_argument("--images", type=Path, help="folder of images for --model")
    parser.add_argument("--threshold", type=float, default=0.5, help="for a CSV; a model uses its own")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--min-positives", type=int, default=1,
                        help="labels with fewer positives are named and not scored (the service uses 5)")
    parser.add_argument("--json", type=Path, help="also write the result as JSON")


def _evaluate(args) -> None:
    from training.evaluation import evaluate_command  # no Keras: scoring a CSV starts in a second

    result = evaluate_command(labels=args.labels, predictions=args.predictions, model=args.model, images=args.images,
                              threshold=args.threshold, bootstrap=args.bootstrap,
                              min_positives=args.min_positives)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


COMMANDS = {
    "predict": Command("write a predictions CSV for a folder of images", _predict_arguments, _predict),
    "evaluate": Command(
        "score a model or a predictions CSV against NIH labels", _evaluate_arguments, _evaluate,
        description="Score a predictions CSV (any system's) or a model against an NIH label CSV: AUROC per label "
                    "with patient-level bootstrap intervals, and the mean over the labels scored. A CSV needs "
                    "'Image Index' and at least one prob_<Label> column; labels without a column are named "
                    "and not scored, other columns are named and ignored."),
}
