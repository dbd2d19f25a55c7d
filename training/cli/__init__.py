"""``xray-model``: build, train, evaluate, import and check model artifacts. One entry, subcommands:

    xray-model init --arch xception-transfer --weights none --out var/models/untrained
    xray-model train --images DIR --labels CSV --out models/starter [--kaggle sample|full] [--folds 5]
    xray-model baseline --images DIR --labels CSV [--external-images DIR --external-labels CSV]
    xray-model predict --model models/starter --images DIR --out predictions.csv
    xray-model evaluate --labels CSV (--predictions predictions.csv | --model DIR --images DIR)
    xray-model import-hobby notebook_model.keras --out models/hobby
    xray-model check models/starter
    xray-model export --tflite models/starter --images DIR
    xray-model operating-points models/starter --images DIR --labels CSV [--external-images DIR ...]
    xray-model optimize models/starter --images DIR
    xray-model gate models/starter --images DIR --labels CSV [--external-images DIR --external-labels CSV]

Each subcommand is a ``Command`` (its arguments and what it does) in the module of what it works on:
training/cli/fitting.py (train, baseline), training/cli/scoring.py (predict, evaluate) and
training/cli/artifacts.py (init, check, import-hobby, export, optimize, gate, push). What a command says to the person
goes through logging, as plain lines on standard output (training/console.py).
"""
from __future__ import annotations

import argparse
import sys

from shared.model.manifest import ArtifactError
from training.cli import artifacts, fitting, scoring
from training.console import show_on_standard_output
from training.data import DataError

COMMANDS = {**artifacts.COMMANDS, **fitting.COMMANDS, **scoring.COMMANDS}
ORDER = ("init", "train", "baseline", "predict", "evaluate", "operating-points", "import-hobby", "check", "export",
         "optimize", "gate", "push")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="xray-model", description="Build, train, evaluate and check model artifacts.")
    sub = root.add_subparsers(dest="command", required=True)
    for name in ORDER:
        command = COMMANDS[name]
        command.add_arguments(sub.add_parser(name, help=command.help, description=command.description))
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    show_on_standard_output()
    try:
        COMMANDS[args.command].run(args)
    except (ArtifactError, DataError, ValueError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
