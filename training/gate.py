"""Fitting and measuring the input gate (shared/model/gate.py): ``xray-model gate``.

The learned part is a multinomial logistic regression over the gate's image features (standardised) and
their squares, fitted on every example the rules let through, with classes weighted by their counts so that 1,000 X-rays
do not drown a dozen CT slices; and a one-class part, the Ledoit-Wolf Mahalanobis distance to the real and
mildly varied chest X-rays. Their thresholds come from X-rays the fit did not see: an inner cross-validation
by patient gives every X-ray and its mild variants a held-out probability and distance, and each threshold
is set where QUANTILE of them (one in 200) would be refused, the probability threshold never above one half.
The variants count because 1,000 X-rays of 264 patients show less variety (framing, exposure, a child in a
large field) than the X-rays of many patients the service will see.

Figures are only ever reported on examples the gate was not fitted on. ``held_out_checks`` refits the
whole gate (thresholds included) once per fold of a grouped cross-validation: a patient's X-rays and
everything made from them are held out together, and each source of pictures (a scikit-image file, a pydicom
file) or generated kind (all the screenshots) is held out as a whole, so every picture is judged by a gate
that never saw its kind. The full-resolution X-rays are never fitted on.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import warnings

import numpy as np

from shared.model.gate import CLASSES, FEATURE_NAMES, FORMAT, RESULTS, Gate, InputCheck
from shared.model.gate_features import features_of_small, small
from shared.model.gate_rules import RULES, refusal
from training.gate_data import CHEST, OTHER, TRANSFORMED, VARIANT, Sample

QUANTILE = 0.005  # the share of held-out real X-rays each learned threshold would refuse
REGULARISATION = 0.3  # inverse strength of the logistic regression's L2 penalty (scikit-learn's C)


@dataclasses.dataclass
class Table:
    """Examples measured once: their features, and whether the rules let them through."""

    samples: list[Sample]
    values: np.ndarray  # [examples, features]
    passes_rules: np.ndarray  # [examples] bool

    @classmethod
    def of(cls, samples: list[Sample]) -> Table:
        values, passes = [], []
        for sample in samples:
            levels = small(sample.seen.grey)
            passes.append(refusal(sample.seen, RULES, levels) is None)
            values.append(features_of_small(levels))
        return cls(samples, np.array(values), np.array(passes))

    def joined(self, other: Table | None) -> Table:
        if other is None:
            return self
        return Table(self.samples + other.samples, np.concatenate([self.values, other.values]),
                     np.concatenate([self.passes_rules, other.passes_rules]))

    def subset(self, indices) -> Table:
        indices = np.asarray(indices, dtype=int)
        return Table([self.samples[i] for i in indices], self.values[indices], self.passes_rules[indices])


def _rounded(array: np.ndarray) -> list:
    """Six significant digits: enough for the decisions, a gate.json of tens of kilobytes."""
    return np.vectorize(lambda value: float(f"{value:.6g}"), otypes=[float])(np.asarray(array)).tolist()


def _fit_parts(table: Table):
    """Standardisation, classifier and chest-likeness fitted on the examples the rules let through."""
    from sklearn.covariance import LedoitWolf
    from sklearn.linear_model import LogisticRegression

    keep = table.passes_rules & np.array([s.fit and s.expected in CLASSES for s in table.samples])
    values = table.values[keep]
    labels = np.array([CLASSES.index(s.expected) for s, k in zip(table.samples, keep) if k])
    mean, scale = values.mean(axis=0), values.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    standard = (values - mean) / scale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs's convergence notes; max_iter is generous
        classifier = LogisticRegression(C=REGULARISATION, class_weight="balanced", max_iter=5000)
        classifier.fit(np.hstack([standard, standard * standard]), labels)
    coefficients = np.zeros((len(CLASSES), 2 * len(FEATURE_NAMES)))
    intercepts = np.full(len(CLASSES), -50.0)  # a class with no examples in this fold is never chosen
    coefficients[classifier.classes_], intercepts[classifier.classes_] = classifier.coef_, classifier.intercept_
    chest = LedoitWolf().fit(standard[labels == 0])
    return {
        "classifier": {"classes": list(CLASSES), "mean": _rounded(mean), "scale": _rounded(scale),
                       "coefficients": _rounded(coefficients), "intercepts": _rounded(intercepts)},
        "chest_likeness": {"mean": _rounded(chest.location_), "precision": _rounded(chest.precision_)},
    }


def _groups_in_folds(table: Table, folds: int, seed: int) -> np.ndarray:
    """A fold for every example: whole groups, spread so that each fold gets its share of every family."""
    by_family = collections.defaultdict(set)
    for sample in table.samples:
        by_family[sample.family if sample.family != VARIANT else TRANSFORMED].add(sample.group)
    fold_of = {}
    for family in sorted(by_family):
        groups = sorted(by_family[family] - set(fold_of),
                        key=lambda group: hashlib.sha256(f"{seed}:{group}".encode()).hexdigest())
        for index, group in enumerate(groups):
            fold_of[group] = index % folds
    return np.array([fold_of[s.group] for s in table.samples])


def _thresholds(table: Table, folds: int, seed: int) -> dict:
    """Held-out probability and distance of the real X-rays (inner folds by patient) → the two thresholds."""
    fold = _groups_in_folds(table, folds, seed)
    probabilities, distances = [], []
    for index in range(folds):
        held_out = np.flatnonzero(fold == index)
        parts = _fit_parts(table.subset(np.flatnonzero(fold != index)))
        gate = Gate.from_dict(_gate_data(parts, {"min_ok_probability": 0.0, "max_distance": 1e9}))
        for i in held_out:
            sample = table.samples[i]
            if sample.family in (CHEST, VARIANT) and sample.fit and table.passes_rules[i]:
                p, d = gate.learned.judge(table.values[i])
                probabilities.append(p[0])
                distances.append(d)
    return {"min_ok_probability": float(f"{min(0.5, np.quantile(probabilities, QUANTILE)):.6g}"),
            "max_distance": float(f"{np.quantile(distances, 1 - QUANTILE):.6g}")}


def _gate_data(parts: dict, thresholds: dict, fitted: dict | None = None) -> dict:
    return {"format": FORMAT, "feature_names": list(FEATURE_NAMES), "rules": dict(RULES), **parts,
            "thresholds": thresholds, "fitted": fitted or {}}


def fit_gate(table: Table, inner_folds: int = 5, seed: int = 0) -> Gate:
    """The gate fitted on every example of the table marked for fitting, its thresholds held out by patient."""
    fitted = [s for s, keep in zip(table.samples, table.passes_rules) if keep and s.fit]
    counts = collections.Counter(s.expected for s in fitted)
    summary = {"method": "multinomial logistic regression (class-balanced, C=%g) on standardised image features and "
                         "their squares, and Ledoit-Wolf Mahalanobis distance to the chest X-rays on the features; "
                         "each threshold at the %g quantile of "
                         "held-out real X-rays and their mild variants (%d folds by patient)"
                         % (REGULARISATION, QUANTILE, inner_folds),
               "examples": dict(sorted(counts.items())),
               "chest_patients": len({s.group for s in fitted if s.family == CHEST})}
    data = _gate_data(_fit_parts(table), _thresholds(table, inner_folds, seed), summary)
    return Gate.from_dict(data)


def held_out_checks(table: Table, folds: int = 5, inner_folds: int = 5, seed: int = 0) -> list[InputCheck]:
    """Every example's check by a gate fitted without its group (see the module's docstring)."""
    fold = _groups_in_folds(table, folds, seed)
    checks: list[InputCheck | None] = [None] * len(table.samples)
    for index in range(folds):
        gate = fit_gate(table.subset(np.flatnonzero((fold != index) & np.array([s.fit for s in table.samples]))),
                        inner_folds, seed)
        for i in np.flatnonzero(fold == index):
            checks[i] = gate.check(table.samples[i].seen)
    return checks


def confusion(samples: list[Sample], checks: list[InputCheck]) -> dict[str, dict[str, int]]:
    """Kind → result → count, kinds in the order they first appear."""
    table: dict[str, collections.Counter] = {}
    for sample, check in zip(samples, checks):
        table.setdefault(sample.kind, collections.Counter())[check.result] += 1
    return {kind: dict(counts) for kind, counts in table.items()}


def confusion_lines(table: dict[str, dict[str, int]]) -> list[str]:
    """The confusion table as aligned text: one row a kind, one column a result."""
    width = max(len(kind) for kind in table) + 2
    lines = ["".ljust(width) + "".join(f"{result:>17}" for result in RESULTS)]
    for kind, counts in table.items():
        lines.append(kind.ljust(width) + "".join(f"{counts.get(result, 0):>17}" for result in RESULTS))
    return lines


def shares(table: Table, checks: list[InputCheck]) -> dict[str, dict]:
    """The figures the gate is held to: real X-rays gated (target at most 1%), pictures that are no X-ray gated
    (at least 95%; also counted among those the rules let through, which only the learned part can refuse),
    transformed X-rays gated (at least 80%); with how many got exactly the expected result."""
    def figure(indices) -> dict:
        gated = sum(not checks[i].ok for i in indices)
        return {"gated": gated, "of": len(indices), "share": round(gated / max(len(indices), 1), 4),
                "expected_result": sum(checks[i].result == table.samples[i].expected for i in indices)}

    family = np.array([sample.family for sample in table.samples])
    return {"real_xrays_gated": figure(np.flatnonzero(family == CHEST)),
            "not_xrays_gated": figure(np.flatnonzero(family == OTHER)),
            "not_xrays_past_the_rules_gated": figure(np.flatnonzero((family == OTHER) & table.passes_rules)),
            "transformed_xrays_gated": figure(np.flatnonzero(family == TRANSFORMED))}


TARGETS = {"real_xrays_gated": (0.01, "at most"), "not_xrays_gated": (0.95, "at least"),
           "transformed_xrays_gated": (0.80, "at least")}


def target_lines(figures: dict) -> list[str]:
    lines = []
    for name, figure in figures.items():
        if not figure["of"]:
            continue
        line = f"{name.replace('_', ' ')}: {figure['gated']} of {figure['of']} ({figure['share']:.2%})"
        if name in TARGETS:
            limit, side = TARGETS[name]
            met = figure["share"] <= limit if side == "at most" else figure["share"] >= limit
            line += f"; target {side} {limit:.0%}: {'met' if met else 'NOT MET'}"
        lines.append(line)
    return lines
