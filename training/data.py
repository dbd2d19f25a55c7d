"""NIH ChestX-ray14 data: label tables, image discovery, and the two sources (kagglehub, local folder).

A label table is the NIH CSV: ``Image Index``, ``Finding Labels`` (joined by ``|``, "No Finding" for
none), ``Patient ID``, ... Images are found recursively, since the full set spreads them over
``images_0NN/images/``.
"""
from __future__ import annotations

import csv
import dataclasses
import gzip
import io
from pathlib import Path

import numpy as np

from shared.model.labels import LABELS, NO_FINDING

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
KAGGLE_DATASETS = {"sample": "nih-chest-xrays/sample", "full": "nih-chest-xrays/data"}


class DataError(Exception):
    """The data cannot be used as given; the message says what to fix."""


@dataclasses.dataclass(frozen=True)
class Record:
    image_index: str
    patient_id: str
    labels: frozenset[str]
    path: Path | None = None

    def target(self) -> np.ndarray:
        return np.array([label in self.labels for label in LABELS], dtype=np.float32)


def parse_finding_labels(text: str) -> frozenset[str]:
    """'Effusion|Mass' → {Effusion, Mass}; 'No Finding' → {No Finding}; unknown names are an error."""
    labels = frozenset(part.strip() for part in text.split("|") if part.strip())
    unknown = labels - set(LABELS)
    if unknown:
        raise DataError(f"unknown finding label(s) {sorted(unknown)} in {text!r}")
    if not labels:
        raise DataError("empty 'Finding Labels' value")
    if NO_FINDING in labels and len(labels) > 1:
        raise DataError(f"'No Finding' together with findings in {text!r}")
    return labels


def _open_text(path: Path):
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_label_table(path: Path) -> dict[str, Record]:
    """Image Index → Record, from an NIH-format CSV (plain or .gz)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"label file {path} does not exist")
    with _open_text(path) as handle:
        reader = csv.DictReader(handle)
        missing = {"Image Index", "Finding Labels", "Patient ID"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path} lacks the column(s) {sorted(missing)}; is it an NIH label CSV?")
        table = {}
        for line, row in enumerate(reader, start=2):
            try:
                labels = parse_finding_labels(row["Finding Labels"])
            except DataError as exc:
                raise DataError(f"{path}, line {line}: {exc}") from None
            table[row["Image Index"]] = Record(row["Image Index"], row["Patient ID"].strip(), labels)
    return table


def find_images(folder: Path) -> dict[str, Path]:
    """File name → path for every PNG/JPEG below folder (recursively)."""
    found = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.setdefault(path.name, path)
    return found


def local_dataset(images_folder: Path, labels_csv: Path) -> list[Record]:
    """Records for the labelled images present in a folder; images without labels are ignored."""
    images = find_images(images_folder)
    if not images:
        raise DataError(f"no PNG or JPEG images below {images_folder}")
    table = read_label_table(labels_csv)
    records = [dataclasses.replace(table[name], path=path) for name, path in images.items() if name in table]
    if not records:
        raise DataError(f"none of the {len(images)} images below {images_folder} is listed in {labels_csv}")
    return sorted(records, key=lambda r: r.image_index)


def kaggle_dataset(which: str) -> list[Record]:
    """Download (or reuse kagglehub's cache of) the NIH sample or full set and return its records."""
    if which not in KAGGLE_DATASETS:
        raise DataError(f"unknown Kaggle dataset {which!r}; choose one of {sorted(KAGGLE_DATASETS)}")
    try:
        import kagglehub
    except ImportError:
        raise DataError("kagglehub is not installed: pip install kagglehub") from None
    try:
        root = Path(kagglehub.dataset_download(KAGGLE_DATASETS[which]))
    except Exception as exc:
        raise DataError(
            f"could not download {KAGGLE_DATASETS[which]} with kagglehub ({type(exc).__name__}: {exc}). "
            "This needs network access and Kaggle credentials; offline, use --images and --labels on a local copy"
        ) from exc
    candidates = sorted(root.rglob("Data_Entry_2017*.csv")) + sorted(root.rglob("sample_labels.csv"))
    if not candidates:
        raise DataError(f"no NIH label CSV found in the downloaded dataset at {root}")
    return local_dataset(root, candidates[0])
