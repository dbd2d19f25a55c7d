"""Predictions as CSV (``Image Index`` + one ``prob_<Label>`` column per label), so our models and other
systems can be scored on the same images by ``xray-model evaluate``."""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from shared.labels import LABELS
from shared.model_manifest import MODEL_FILE, Manifest, read_manifest
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


def read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path} lacks the column(s) {missing}")
        names, rows = [], []
        for row in reader:
            names.append(row["Image Index"])
            rows.append([float(row[f"prob_{label}"]) for label in LABELS])
    return names, np.array(rows, dtype=np.float64).reshape(-1, len(LABELS))
