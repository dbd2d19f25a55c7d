"""Patient-level k-fold training for little data: k members, each trained on k−1 folds and stopped early
on its own held-out fold, give out-of-fold (OOF) predictions for every training image. Thresholds and
temperatures come from those OOF predictions (all training patients, not 43 validation ones), and the
members become one served model (architectures.build_ensemble)."""
from __future__ import annotations

import dataclasses
import logging

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from shared.model.labels import LABELS
from training.data import Record
from training.inputs import targets
from training.train import TrainConfig, predict_logits, train

log = logging.getLogger(__name__)


def _strata(records: list[Record]) -> np.ndarray:
    """Each image's rarest label (counted over images), so every fold gets some of each finding."""
    counts = targets(records).sum(axis=0)
    return np.array([min((counts[LABELS.index(label)], LABELS.index(label)) for label in r.labels)[1] for r in records])


def patient_folds(records: list[Record], k: int, seed: int = 0) -> list[np.ndarray]:
    """k arrays of record indices; all images of a patient fall in one fold."""
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, received {k}")
    groups = np.array([r.patient_id for r in records])
    if len(set(groups)) < k:
        raise ValueError(f"{len(set(groups))} patients cannot fill {k} folds")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [held_out for _, held_out in splitter.split(np.zeros(len(records)), _strata(records), groups)]


@dataclasses.dataclass
class CrossValidation:
    members: list  # keras models, one per fold and repeat
    oof_logits: np.ndarray  # [N, 15]: each image scored by the members that did not train on it (mean over repeats)
    histories: list[dict]
    folds: list[np.ndarray]  # the first repeat's folds

    @property
    def epochs_run(self) -> list[int]:
        return [len(h.get("loss", [])) for h in self.histories]


def cross_validate(config: TrainConfig, records: list[Record], progress: bool = False) -> CrossValidation:
    """config.folds members per repeat; each of config.repeats repeats deals the patients into new folds
    (and seeds its members afresh), so the ensemble averages models that saw different patient mixes."""
    size = (config.input_size, config.input_size)
    oof = np.zeros((len(records), len(LABELS)), np.float32)
    members, histories, first_folds = [], [], None
    for repeat in range(config.repeats):
        folds = patient_folds(records, config.folds, config.seed + 1000 * repeat)
        first_folds = first_folds or folds
        for k, held_out in enumerate(folds):
            inside = np.setdiff1d(np.arange(len(records)), held_out)
            # Different initialisation and augmentation for every member.
            member_config = dataclasses.replace(config, seed=config.seed + 1000 * repeat + k)
            model, history = train(member_config, [records[i] for i in inside], [records[i] for i in held_out],
                                   progress=progress)
            oof[held_out] += predict_logits(model, [records[i] for i in held_out], size,
                                            config.preprocessing) / config.repeats
            log.info("repeat %d, fold %d/%d: %d epochs, best held-out mean AUROC %.3f", repeat + 1, k + 1,
                     len(folds), len(history["loss"]), max(history["val_mean_auroc"]))
            members.append(model)
            histories.append(history)
    return CrossValidation(members, oof, histories, first_folds)
