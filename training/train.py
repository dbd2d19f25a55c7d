"""Training: class-weighted loss, early stopping on validation AUROC, and (for a frozen base) a head
trained on cached base features, so ten epochs cost little more than one pass over the images."""
from __future__ import annotations

import collections
import dataclasses
import logging
from pathlib import Path

import keras
import numpy as np
from keras import ops

from shared.model.labels import LABELS
from training.architectures import ARCHITECTURES, LOGITS_LAYER, build_small_cnn, build_xception_transfer
from training.data import Record
from training.features import backbone, cached_features
from training.inputs import make_dataset, targets
from shared.stats.metrics import auroc

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The model and optimiser options; recorded as they are in the manifest, so no machine paths here."""

    arch: str = "small-cnn"
    input_size: int = 64
    weights: str = "none"  # xception-transfer only: "imagenet" or "none"
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 8
    augment: bool | str = True  # True/"mild" or "radiograph" (training/inputs.py)
    seed: int = 0
    width: int = 32  # small-cnn filters
    dropout: float = 0.0  # small-cnn: spatial dropout inside the trunk
    context: int = 0  # small-cnn: dilated convolutions before the heatmap layer (architectures.py)
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    mixup: float = 0.0  # > 0: the alpha of mixup's Beta(alpha, alpha) blending of training images (inputs.py)
    patient_weighting: bool = False  # each patient weighs the same in the loss and in early stopping
    folds: int = 0  # small-cnn: k > 1 trains a k-fold ensemble by patient (training/crossval.py)
    repeats: int = 1  # with folds: deal the patients into k folds this many times (k × repeats members)
    fine_tune_blocks: int = 0  # xception-transfer: unfreeze this many top blocks after the head
    operating_specificity: float = 0.90  # each finding's threshold keeps this specificity on held-out predictions
    cache_features: bool = True  # xception-transfer with a frozen base

    @property
    def preprocessing(self) -> str:
        return ARCHITECTURES[self.arch].preprocessing

    @property
    def cam_layer(self) -> str:
        return ARCHITECTURES[self.arch].cam_layer


def patient_weights(records: list[Record]) -> np.ndarray:
    """One weight per image, 1 / (the patient's images), scaled to a mean of 1: a patient with 60 follow-up
    images (the NIH sets have several) then counts as much as a patient with one, instead of 60 times as much.
    The service meets one image per patient far more often than a 60th look at the same chest."""
    counts = collections.Counter(r.patient_id for r in records)  # linear: the full NIH set has 112,120 images
    weights = np.array([1.0 / counts[r.patient_id] for r in records], np.float32)
    return weights / weights.mean()


def positive_weights(y: np.ndarray, sample_weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """'Balanced' weights per label: positives and negatives each carry half of the loss (counted with the
    images' sample weights when given)."""
    w = np.ones(len(y), np.float32) if sample_weights is None else np.asarray(sample_weights, np.float32)
    n = w.sum()
    positives = (w[:, None] * y).sum(axis=0)
    negatives = n - positives
    w_pos = np.where(positives > 0, n / (2.0 * np.maximum(positives, 1)), 1.0)
    w_neg = np.where(negatives > 0, n / (2.0 * np.maximum(negatives, 1)), 1.0)
    return w_pos.astype(np.float32), w_neg.astype(np.float32)


def weighted_binary_crossentropy(w_pos: np.ndarray, w_neg: np.ndarray, label_smoothing: float = 0.0):
    """Class-balanced cross-entropy; label smoothing pulls targets towards 0.5 (NIH labels are mined from
    reports and noisy, so the model should not be pushed to certainty)."""
    w_pos, w_neg = ops.convert_to_tensor(w_pos), ops.convert_to_tensor(w_neg)

    def loss(y_true, y_pred):
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
        y_pred = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        per_label = -(w_pos * y_true * ops.log(y_pred) + w_neg * (1.0 - y_true) * ops.log(1.0 - y_pred))
        return ops.mean(per_label, axis=-1)

    return loss


def mean_auroc(y: np.ndarray, probabilities: np.ndarray, weights: np.ndarray | None = None) -> float:
    scores = [auroc(y[:, c], probabilities[:, c], weights) for c in range(y.shape[1])]
    finite = [s for s in scores if np.isfinite(s)]
    return float(np.mean(finite)) if finite else float("nan")


class ValidationAuroc(keras.callbacks.Callback):
    """Adds val_mean_auroc (exact, over labels with positives; weighted per image when weights are given)
    to the epoch logs for early stopping."""

    def __init__(self, inputs, y: np.ndarray, weights: np.ndarray | None = None):
        super().__init__()
        self.inputs, self.y, self.weights = inputs, y, weights

    def on_epoch_end(self, epoch, logs=None):
        probabilities = self.model.predict(self.inputs, verbose=0)
        logs = logs if logs is not None else {}
        logs["val_mean_auroc"] = mean_auroc(self.y, probabilities, self.weights)
        log.info("epoch %d: val_mean_auroc %.4f", epoch + 1, logs["val_mean_auroc"])


def _callbacks(validation_inputs, y_val, patience, weights=None):
    return [
        ValidationAuroc(validation_inputs, y_val, weights),
        keras.callbacks.EarlyStopping(monitor="val_mean_auroc", mode="max", patience=patience,
                                      restore_best_weights=True, verbose=0),
    ]


def build(config: TrainConfig) -> keras.Model:
    keras.utils.set_random_seed(config.seed)
    if config.arch == "small-cnn":
        return build_small_cnn(config.input_size, width=config.width, dropout=config.dropout,
                               context=config.context)
    return build_xception_transfer(config.input_size, weights=None if config.weights == "none" else config.weights)


def train(config: TrainConfig, train_records: list[Record], validation_records: list[Record], progress: bool = False,
          feature_cache_dir: Path | None = None):
    """Returns the trained model (best validation epoch) and its history. feature_cache_dir: where cached
    base features go (None: the configured XRAY_FEATURE_CACHE folder)."""
    model = build(config)
    size = (config.input_size, config.input_size)
    y_train, y_val = targets(train_records), targets(validation_records)
    w_train, w_val = ((patient_weights(train_records), patient_weights(validation_records))
                      if config.patient_weighting else (None, None))
    loss = weighted_binary_crossentropy(*positive_weights(y_train, w_train), label_smoothing=config.label_smoothing)
    verbose = 1 if progress else 0  # Keras progress bars on every epoch
    frozen = config.arch == "xception-transfer"
    if frozen and config.cache_features and not config.augment:
        history = train_head_on_cached_features(model, config, train_records, validation_records, loss, verbose,
                                                feature_cache_dir)
    else:
        train_ds = make_dataset(train_records, size, config.preprocessing, config.batch_size, shuffle=True,
                                augment=config.augment, seed=config.seed, weights=w_train, mixup_alpha=config.mixup)
        val_ds = make_dataset(validation_records, size, config.preprocessing, config.batch_size)
        model.compile(keras.optimizers.AdamW(config.learning_rate, weight_decay=config.weight_decay), loss)
        history = model.fit(train_ds, epochs=config.epochs,
                            callbacks=_callbacks(val_ds, y_val, config.patience, w_val),
                            shuffle=False, verbose=verbose).history  # train_ds shuffles itself
    if frozen and config.fine_tune_blocks > 0:
        history = fine_tune(model, config, train_records, validation_records, loss, verbose)
    return model, history


def head_model(model: keras.Model) -> keras.Model:
    """The trainable head alone (features → logits → sigmoid), sharing the full model's Dense layer."""
    dense = model.get_layer(LOGITS_LAYER)
    features = keras.Input((dense.kernel.shape[0],), name="pooled_features")
    probabilities = keras.layers.Activation("sigmoid")(dense(features))
    return keras.Model(features, probabilities, name="head")


def train_head_on_cached_features(model, config, train_records, validation_records, loss, verbose, cache_dir=None):
    size = (config.input_size, config.input_size)
    base = backbone(model)
    x_train = cached_features(base, train_records, size, config.preprocessing, config.batch_size, cache_dir)
    x_val = cached_features(base, validation_records, size, config.preprocessing, config.batch_size, cache_dir)
    head = head_model(model)  # shares weights with model: training it trains the full model's head
    head.compile(keras.optimizers.AdamW(config.learning_rate, weight_decay=1e-4), loss)
    return head.fit(x_train, targets(train_records), batch_size=config.batch_size, epochs=config.epochs,
                    shuffle=True, callbacks=_callbacks(x_val, targets(validation_records), config.patience),
                    verbose=verbose).history


def fine_tune(model, config, train_records, validation_records, loss, verbose):
    """Unfreeze the top Xception blocks and continue at a tenth of the learning rate."""
    blocks = {f"block{14 - i}" for i in range(config.fine_tune_blocks)}
    for layer in model.layers:
        if any(layer.name.startswith(b + "_") for b in blocks):
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    size = (config.input_size, config.input_size)
    train_ds = make_dataset(train_records, size, config.preprocessing, config.batch_size, shuffle=True,
                            augment=config.augment, seed=config.seed)
    val_ds = make_dataset(validation_records, size, config.preprocessing, config.batch_size)
    model.compile(keras.optimizers.Adam(config.learning_rate / 10), loss)
    return model.fit(train_ds, epochs=config.epochs, callbacks=_callbacks(val_ds, targets(validation_records), config.patience),
                     shuffle=False, verbose=verbose).history


def predict(model: keras.Model, records: list[Record], input_size: tuple[int, int], preprocessing: str,
            batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Probabilities [N, 15] in the model's output order."""
    dataset = make_dataset(records, input_size, preprocessing, batch_size, cache=False)
    return np.asarray(model.predict(dataset, verbose=1 if progress else 0))


def predict_logits(model: keras.Model, records: list[Record], input_size: tuple[int, int], preprocessing: str,
                   batch_size: int = 64) -> np.ndarray:
    """The pre-sigmoid outputs [N, 15] (what temperature scaling divides)."""
    logits = keras.Model(model.input, model.get_layer(LOGITS_LAYER).output)
    return predict(logits, records, input_size, preprocessing, batch_size)


assert len(LABELS) == 15
