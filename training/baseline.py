"""The bar a trained model must clear: PCA (64 components) of 32×32 pixels + a class-balanced logistic
regression per label (scikit-learn). It sees the pixels through the service's own decode and resize, so
it is scored on exactly the footing of the CNN, and it is cheap enough to train beside every run."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shared.model.labels import LABELS
from training.data import Record, local_dataset
from training.inputs import served_grey, targets

log = logging.getLogger(__name__)

SIDE = 32
COMPONENTS = 64
DESCRIPTION = (f"PCA ({COMPONENTS} components) of {SIDE}×{SIDE} greyscale pixels + logistic regression per "
               "finding, class-balanced (scikit-learn)")


def pixels(records: list[Record]) -> np.ndarray:
    """[N, SIDE*SIDE] grey values in [0, 1], decoded and resized as the worker does."""
    return np.stack([served_grey(r.path, SIDE).ravel() for r in records])


class PixelBaseline:
    """One PCA shared by all labels, one logistic regression per label; a label with no positive (or no
    negative) in training predicts its training rate."""

    def __init__(self, components: int = COMPONENTS, seed: int = 0):
        self.components, self.seed = components, seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> PixelBaseline:
        components = min(self.components, len(x) - 1, x.shape[1])
        self.projection = make_pipeline(StandardScaler(), PCA(components, random_state=self.seed)).fit(x)
        z = self.projection.transform(x)
        self.heads = []
        for c in range(y.shape[1]):
            if 0 < y[:, c].sum() < len(y):
                head = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=self.seed)
                self.heads.append(head.fit(z, y[:, c]))
            else:
                self.heads.append(float(y[:, c].mean()))
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """[N, labels] probabilities in LABELS order."""
        z = self.projection.transform(x)
        return np.stack([head.predict_proba(z)[:, 1] if not isinstance(head, float) else np.full(len(z), head)
                         for head in self.heads], axis=1)


def train_baseline(records: list[Record], seed: int = 0) -> PixelBaseline:
    y = targets(records)
    assert y.shape[1] == len(LABELS)
    return PixelBaseline(seed=seed).fit(pixels(records), y)


def run_baseline(*, images: Path, labels: Path, external_images: Path | None = None,
                 external_labels: Path | None = None, split_fractions=(0.7, 0.15, 0.15), seed: int = 0,
                 bootstrap: int = 1000) -> dict:
    """``xray-model baseline``: fit on the training patients of the pipeline's patient split (train and
    validation: a baseline needs no validation), print and return the test (and external) results."""
    from shared.stats.metrics import evaluate
    from training.report import metrics_table
    from training.splits import patient_split

    split = patient_split(local_dataset(images, labels), tuple(split_fractions), seed=seed)
    model = train_baseline(split["train"] + split["validation"], seed=seed)
    sets = {"test": split["test"]}
    if external_images:
        sets["external"] = local_dataset(external_images, external_labels)
    results = {}
    for name, subset in sets.items():
        results[name] = evaluate(targets(subset), model.predict_proba(pixels(subset)), {label: 0.5 for label in LABELS},
                                 groups=np.array([r.patient_id for r in subset]), rounds=bootstrap)
        log.info(f"\n{DESCRIPTION}\n{name}: {len(subset)} images, {results[name]['patients']} patients, mean AUROC "
              f"{results[name]['mean_auroc']:.3f}\n" + metrics_table(results[name]))
    return results
