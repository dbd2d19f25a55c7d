"""Train/serve skew, measured: can a classifier tell the training images (NIH's own 64×64 PNGs) from
full-resolution X-rays as the service reduces them? If the service's decode and resize made pixels the
model never saw in training (aliasing, another intensity scale, colour channels), a linear model on a few
image statistics would separate the two sets; an AUROC near 0.5 says they look alike to it."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from training.inputs import served_grey


def image_statistics(image: np.ndarray) -> np.ndarray:
    """Brightness, contrast, edge energy (sharpness, aliasing) and a 16-bin histogram of one [0, 1] image."""
    laplacian = cv2.Laplacian(image, cv2.CV_32F)
    histogram = np.histogram(image, bins=16, range=(0.0, 1.0))[0] / image.size
    return np.r_[image.mean(), image.std(), laplacian.std(), np.abs(laplacian).mean(),
                 np.abs(np.diff(image, axis=0)).mean(), np.abs(np.diff(image, axis=1)).mean(), histogram]


def domain_auroc(training_images: Sequence[Path], other_images: Sequence[Path], side: int = 64,
                 reduce_other: Callable[[Path, int], np.ndarray] = served_grey, seed: int = 0) -> float:
    """Cross-validated AUROC of a class-balanced logistic regression telling ``other_images`` (reduced by
    ``reduce_other``: the service's path unless a test swaps it) from ``training_images`` (reduced by the
    service's path); 0.5: indistinguishable."""
    x = np.stack([image_statistics(served_grey(p, side)) for p in training_images]
                 + [image_statistics(reduce_other(p, side)) for p in other_images])
    y = np.r_[np.zeros(len(training_images)), np.ones(len(other_images))]
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=5000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(roc_auc_score(y, cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]))
