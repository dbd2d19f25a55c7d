"""Patient-level splits: all images of a patient fall in one split, so no patient leaks across them."""
from __future__ import annotations

import collections

import numpy as np

from shared.model.labels import LABELS
from training.data import Record

SPLITS = ("train", "validation", "test")


def patient_split(records: list[Record], fractions=(0.7, 0.15, 0.15), seed: int = 0) -> dict[str, list[Record]]:
    """Assign whole patients to splits, stratified by label: patients carrying the rarest labels are placed
    first, each into the split furthest below its share of that patient's rarest label (iterative
    stratification, Sechidis et al. 2011, at the patient level), so rare findings reach every split where
    the data allow it."""
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, received {fractions}")
    by_patient: dict[str, list[Record]] = collections.defaultdict(list)
    for record in records:
        by_patient[record.patient_id].append(record)
    rng = np.random.default_rng(seed)
    patients = list(by_patient)
    rng.shuffle(patients)
    images_total = len(records)

    def patient_labels(patient):
        # Patients, not images, are counted: one patient's 20 follow-up images are one piece of evidence.
        return collections.Counter({label: 1 for r in by_patient[patient] for label in r.labels})

    totals = collections.Counter()
    for patient in patients:
        totals.update(patient_labels(patient))

    def rarity(patient):
        return min(totals[label] for label in patient_labels(patient))

    patients.sort(key=rarity)  # stable: ties keep the seeded shuffle
    placed = {name: collections.Counter() for name in SPLITS}
    images = {name: 0 for name in SPLITS}
    split = {name: [] for name in SPLITS}
    for patient in patients:
        labels = patient_labels(patient)

        rarest = min(labels, key=lambda label: (totals[label], label))

        def deficit(name, fraction):
            # The split furthest below its share of this patient's rarest label, then of images.
            if fraction == 0:
                return (-np.inf, -np.inf)
            return (fraction * totals[rarest] - placed[name][rarest], fraction * images_total - images[name])

        name = max(zip(SPLITS, fractions), key=lambda pair: deficit(*pair))[0]
        placed[name].update(labels)
        images[name] += len(by_patient[patient])
        split[name].extend(by_patient[patient])
    return split


def label_counts(records: list[Record]) -> dict[str, int]:
    counts = collections.Counter(label for r in records for label in r.labels)
    return {label: counts.get(label, 0) for label in LABELS}


def describe(split: dict[str, list[Record]]) -> str:
    """A markdown table: images, patients and label counts per split."""
    names = list(split)
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    lines.append("| images | " + " | ".join(str(len(split[n])) for n in names) + " |")
    lines.append("| patients | " + " | ".join(str(len({r.patient_id for r in split[n]})) for n in names) + " |")
    counts = {n: label_counts(split[n]) for n in names}
    for label in LABELS:
        lines.append(f"| {label} | " + " | ".join(str(counts[n][label]) for n in names) + " |")
    return "\n".join(lines)
