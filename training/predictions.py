"""Predictions as CSV (``Image Index`` + one ``prob_<Label>`` column per label), so our models and other
systems can be scored on the same images by ``xray-model evaluate``."""
from __future__ import annotations

import csv
import dataclasses
import logging
from pathlib import Path

import numpy as np

from shared.model.labels import LABELS
from shared.model.manifest import MODEL_FILE, Manifest, read_manifest
from training.data import DataError, Record, find_images

log = logging.getLogger(__name__)
COLUMNS = ["Image Index"] + [f"prob_{label}" for label in LABELS]


def load_served_model(artifact_dir: Path):
    import keras

    manifest = read_manifest(artifact_dir)
    return keras.saving.load_model(Path(artifact_dir) / MODEL_FILE, compile=False), manifest


def to_label_order(probabilities: np.ndarray, manifest_labels: tuple[str, ...]) -> np.ndarray:
    """Reorder model outputs (manifest order) into the service's LABELS order."""
    index = [manifest_labels.index(label) for label in LABELS]
    return np.asarray(probabilities)[:, index]


def predict_records(model, manifest: Manifest, records: list[Record], batch_size: int = 64) -> np.ndarray:
    from training.train import predict

    raw = predict(model, records, manifest.input_size, manifest.preprocessing, batch_size)
    return to_label_order(raw, manifest.labels)


def unlabelled_records(folder: Path) -> list[Record]:
    images = find_images(folder)
    if not images:
        raise DataError(f"no PNG or JPEG images below {folder}")
    return [Record(name, "", frozenset(), path) for name, path in sorted(images.items())]


def write_csv(path: Path, names: list[str], probabilities: np.ndarray) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for name, row in zip(names, probabilities):
            writer.writerow([name] + [f"{p:.6f}" for p in row])


@dataclasses.dataclass(frozen=True)
class PredictionTable:
    """A predictions CSV as read: other systems may predict only some of our labels (CheXNet-style CSVs
    have the 14 findings and no "No Finding"), so the labels it covers travel with the numbers."""

    names: list[str]
    labels: tuple[str, ...]  # the labels it has a column for, in LABELS order
    probabilities: np.ndarray  # [images, len(labels)]
    ignored_columns: tuple[str, ...] = ()

    @property
    def missing_labels(self) -> tuple[str, ...]:
        return tuple(label for label in LABELS if label not in self.labels)


def read_csv(path: Path) -> PredictionTable:
    """Reads ``Image Index`` and every ``prob_<Label>`` column present; other columns are ignored (and
    listed, so a misspelt label column is visible rather than silently unscored)."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        if COLUMNS[0] not in fields:
            raise DataError(f"{path} lacks the column 'Image Index' (its columns: {fields})")
        labels = tuple(label for label in LABELS if f"prob_{label}" in fields)
        if not labels:
            raise DataError(f"{path} has no prediction column: expected one or more of {COLUMNS[1:]}")
        ignored = tuple(f for f in fields if f not in COLUMNS)
        names, rows = [], []
        for row in reader:
            names.append(row["Image Index"])
            rows.append([float(row[f"prob_{label}"]) for label in labels])
    return PredictionTable(names, labels, np.array(rows, dtype=np.float64).reshape(-1, len(labels)), ignored)
