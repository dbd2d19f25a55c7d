"""Agreement between two readers (or a reader and the truth file) on one finding: Cohen's κ from
scikit-learn, on the images both said present or absent ("unsure" is no answer)."""
from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import cohen_kappa_score


def cohen_kappa(a, b) -> dict:
    """κ of two equal-length sequences of True/False/None (None: unsure or not read), with the number of
    images both answered and the raw agreement. κ is NaN when fewer than two images were answered by both,
    or when both gave one and the same answer throughout (chance agreement is then 1: κ is undefined)."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    n = len(pairs)
    if n == 0:
        return {"kappa": math.nan, "images": 0, "agreement": math.nan}
    first, second = np.array([p[0] for p in pairs], bool), np.array([p[1] for p in pairs], bool)
    agreement = float((first == second).mean())
    if n < 2 or len(set(first.tolist()) | set(second.tolist())) < 2:
        return {"kappa": math.nan, "images": n, "agreement": agreement}
    return {"kappa": float(cohen_kappa_score(first, second)), "images": n, "agreement": agreement}
