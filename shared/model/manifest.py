"""The model artifact's manifest: reading, checking and registering it. No TensorFlow here.

An artifact is a folder holding ``model.keras`` and ``manifest.json``. The manifest's version is a hash
of the model file's bytes, so a manifest that does not belong to its model is caught before serving.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from sqlalchemy.orm import Session

from shared.db.models import ModelVersion, utcnow
from shared.model.labels import LABELS

MODEL_FILE = "model.keras"
MANIFEST_FILE = "manifest.json"
PREPROCESSING = {
    # name: (scale, offset) applied to 0..255 pixel values
    "xception": (1 / 127.5, -1.0),  # keras.applications.xception.preprocess_input: [-1, 1]
    "unit": (1 / 255.0, 0.0),  # [0, 1], as the original hobby notebook did
}


UNTRAINED_WARNING = "This model is untrained (random weights): its predictions and heatmaps are meaningless."


class ArtifactError(Exception):
    """The model artifact is missing or inconsistent; the message says what to fix."""


@dataclasses.dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    architecture: str
    input_size: tuple[int, int]  # height, width
    preprocessing: str
    labels: tuple[str, ...]  # in the order of the model's outputs
    thresholds: dict[str, float]
    cam_layer: str
    logits_layer: str
    trained: bool
    training: dict
    metrics: dict | None
    # Faster runtimes verified for this model by `xray-model optimize`, with the check's figures
    # (worker/runtimes.py serves one only if it was accepted).
    runtimes: dict = dataclasses.field(default_factory=dict)
    # Per finding: how its threshold was chosen and its sensitivity and specificity with intervals on each
    # labelled set (training/operating_points.py); shown wherever a finding is read.
    operating_points: dict = dataclasses.field(default_factory=dict)
    # The input gate beside the model (shared/model/gate.py, gate.json): its version, how it was fitted and its
    # held-out figures, written by `xray-model gate`. Kept here so that rewriting the manifest keeps it.
    input_gate: dict = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["input_size"] = list(self.input_size)
        data["labels"] = list(self.labels)
        return data

    @property
    def warning(self) -> str | None:
        if self.trained:
            return None
        return UNTRAINED_WARNING


def file_version(model_path: Path) -> str:
    digest = hashlib.sha256()
    with open(model_path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256-" + digest.hexdigest()[:16]


def parse_manifest(data: dict) -> Manifest:
    required = ["name", "version", "architecture", "input_size", "preprocessing", "labels", "thresholds",
                "cam_layer", "logits_layer", "trained"]
    missing = [key for key in required if key not in data]
    if missing:
        raise ArtifactError(f"manifest.json lacks {', '.join(missing)}")
    labels = tuple(data["labels"])
    if sorted(labels) != sorted(LABELS):
        unknown = sorted(set(labels) - set(LABELS))
        absent = sorted(set(LABELS) - set(labels))
        raise ArtifactError(
            f"manifest labels must be the 15 NIH labels, each once; unknown: {unknown}, missing: {absent}, "
            f"count: {len(labels)}"
        )
    thresholds = {label: float(data["thresholds"].get(label, -1)) for label in labels}
    bad = [label for label, value in thresholds.items() if not 0.0 < value < 1.0]
    if bad:
        raise ArtifactError(f"manifest thresholds must lie strictly between 0 and 1; check {bad}")
    if data["preprocessing"] not in PREPROCESSING:
        raise ArtifactError(
            f"manifest preprocessing {data['preprocessing']!r} is not one of {sorted(PREPROCESSING)}"
        )
    size = data["input_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v >= 8 for v in size)):
        raise ArtifactError(f"manifest input_size must be [height, width] in pixels, got {size!r}")
    return Manifest(
        name=str(data["name"]),
        version=str(data["version"]),
        architecture=str(data["architecture"]),
        input_size=(size[0], size[1]),
        preprocessing=data["preprocessing"],
        labels=labels,
        thresholds=thresholds,
        cam_layer=str(data["cam_layer"]),
        logits_layer=str(data["logits_layer"]),
        trained=bool(data["trained"]),
        training=dict(data.get("training") or {}),
        metrics=data.get("metrics"),
        runtimes=dict(data.get("runtimes") or {}),
        operating_points=dict(data.get("operating_points") or {}),
        input_gate=dict(data.get("input_gate") or {}),
    )


def read_manifest(artifact_dir: Path, verify_hash: bool = True) -> Manifest:
    """The manifest of an artifact folder, checked against its model file."""
    artifact_dir = Path(artifact_dir)
    model_path = artifact_dir / MODEL_FILE
    manifest_path = artifact_dir / MANIFEST_FILE
    if not artifact_dir.is_dir():
        raise ArtifactError(
            f"no model artifact at {artifact_dir}: create one with `xray-model init` "
            f"or point XRAY_MODEL_DIR at a folder with {MODEL_FILE} and {MANIFEST_FILE}"
        )
    for path in (model_path, manifest_path):
        if not path.is_file():
            raise ArtifactError(f"the model artifact {artifact_dir} has no {path.name}")
    try:
        data = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{manifest_path} is not valid JSON: {exc}") from None
    manifest = parse_manifest(data)
    if verify_hash:
        actual = file_version(model_path)
        if actual != manifest.version:
            raise ArtifactError(
                f"{model_path} does not match its manifest: the file's version is {actual}, "
                f"the manifest says {manifest.version}; re-export the artifact"
            )
    return manifest


def write_manifest(artifact_dir: Path, manifest: Manifest) -> None:
    (Path(artifact_dir) / MANIFEST_FILE).write_text(json.dumps(manifest.to_json(), indent=2) + "\n")


def register(session: Session, manifest: Manifest) -> None:
    """Record (or refresh) the model version a worker is serving."""
    row = session.get(ModelVersion, manifest.version)
    now = utcnow()
    if row is None:
        session.add(
            ModelVersion(
                version=manifest.version,
                name=manifest.name,
                architecture=manifest.architecture,
                trained=manifest.trained,
                manifest=manifest.to_json(),
                registered_at=now,
                last_seen_at=now,
            )
        )
    else:
        row.last_seen_at = now
    session.flush()


def reliability_set(manifest: dict | None) -> str:
    """The evaluation a reader's reliability flags come from: the external set when the model was scored on
    one (images from outside its training population), else its held-out test patients."""
    return "external" if ((manifest or {}).get("metrics") or {}).get("external") else "test"


def label_quality(manifest: dict | None, split: str | None = None) -> dict[str, dict]:
    """Per label: the measured AUROC with its 95% interval from the manifest, and whether the model can
    be relied on for that finding at all (the interval lies above 0.5). No measurement: unreliable.
    ``split`` defaults to reliability_set: the flag a reader sees wherever a finding is shown."""
    split = split or reliability_set(manifest)
    per_label = ((manifest or {}).get("metrics") or {}).get(split, {}).get("per_label_auroc", {})
    points = ((manifest or {}).get("operating_points") or {}).get("per_label", {})
    quality = {}
    for label in LABELS:
        row = per_label.get(label) or {}
        auroc, low, high = row.get("auroc"), row.get("ci_low"), row.get("ci_high")
        quality[label] = {"auroc": auroc, "ci_low": low, "ci_high": high, "positives": row.get("positives"),
                          "reliable": low is not None and low > 0.5, "split": split,
                          "operating_point": (points.get(label) or {}).get(split)}
    return quality
