"""tf.data input pipelines: parallel decode with the service's own decoder and preprocessing (so training
sees exactly the pixels the worker will), optional in-memory cache, augmentation and prefetch."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from shared.imaging.images import decode_image
from shared.model.preprocess import model_input
from training.data import Record

MAX_PIXELS = 100_000_000


def load_model_input(path: Path | str, input_size: tuple[int, int], preprocessing: str) -> np.ndarray:
    grey = decode_image(Path(path).read_bytes(), MAX_PIXELS)
    return model_input(grey, input_size, preprocessing)


def served_grey(path: Path | str, side: int) -> np.ndarray:
    """The grey [0, 1] pixels [side, side] the worker feeds a "unit" model of that input side."""
    return load_model_input(path, (side, side), "unit")[:, :, 0]


def targets(records: list[Record]) -> np.ndarray:
    return np.stack([r.target() for r in records])


def augmenter(seed: int = 0, strength: str = "radiograph") -> keras.Sequential:
    """Changes a radiograph can plausibly have: small rotations and shifts (positioning), crops and zooms
    (collimation, patient size), contrast (exposure). No flips: the heart's side is anatomy, not noise.
    "mild" is the original recipe (shifts, zoom, contrast)."""
    steps = [
        keras.layers.RandomTranslation(0.06, 0.06, fill_mode="nearest", seed=seed),
        keras.layers.RandomZoom(0.1, fill_mode="nearest", seed=seed + 1),
        keras.layers.RandomContrast(0.2, seed=seed + 2),
    ]
    if strength == "radiograph":
        steps = [keras.layers.RandomRotation(7 / 360, fill_mode="nearest", seed=seed + 3),
                 keras.layers.RandomZoom((-0.15, 0.05), fill_mode="nearest", seed=seed + 4)] + steps
    return keras.Sequential(steps, name="augmentation")


def gamma_and_noise(images: tf.Tensor, seed: int, noise: float = 0.02, log_gamma: float = 0.3) -> tf.Tensor:
    """A random gamma per image (exposure and detector response curves differ) and a little Gaussian
    noise (quantum noise), on [0, 1] pixels; values stay in [0, 1]."""
    count = tf.shape(images)[0]
    gamma = tf.exp(tf.random.uniform([count, 1, 1, 1], -log_gamma, log_gamma, seed=seed))
    images = tf.pow(tf.clip_by_value(images, 1e-6, 1.0), gamma)
    images = images + tf.random.normal(tf.shape(images), stddev=noise, seed=seed + 1)
    return tf.clip_by_value(images, 0.0, 1.0)


def mixup(images: tf.Tensor, *columns: tf.Tensor, alpha: float, seed: int):
    """Each image blended with another of its batch, x = λ·x_i + (1 − λ)·x_j with λ ~ Beta(α, α), and its
    targets (and weights) blended alike (Zhang et al. 2018): the model cannot be sure of any one image,
    which regularises a network trained on a few hundred patients."""
    count = tf.shape(images)[0]
    a = tf.random.gamma([count], alpha, seed=seed)
    b = tf.random.gamma([count], alpha, seed=seed + 1)
    lam = a / (a + b)
    partner = tf.random.shuffle(tf.range(count), seed=seed + 2)

    def blend(t):
        shape = tf.concat([[count], tf.ones([tf.rank(t) - 1], tf.int32)], axis=0)
        weight = tf.reshape(lam, shape)
        return weight * t + (1.0 - weight) * tf.gather(t, partner)

    return (blend(images), *map(blend, columns))


def make_dataset(records: list[Record], input_size: tuple[int, int], preprocessing: str, batch_size: int,
                 shuffle: bool = False, augment: bool | str = False, cache: bool = True,
                 seed: int = 0, weights: np.ndarray | None = None, mixup_alpha: float = 0.0) -> tf.data.Dataset:
    """augment: False, True or "mild" (shifts, zoom, contrast), or "radiograph" (also rotations, crops,
    gamma and noise; gamma and noise only for [0, 1] "unit" pixels). weights: one per record; the dataset
    then yields (image, target, weight), which Keras applies to each image's loss. mixup_alpha > 0 blends
    each training batch after augmentation (mixup)."""
    if not records:
        raise ValueError("make_dataset received no records")
    height, width = input_size
    paths = tf.constant([str(r.path) for r in records])
    labels = tf.constant(targets(records))

    def load(path, target, *weight):
        image = tf.numpy_function(
            lambda p: load_model_input(p.decode(), input_size, preprocessing), [path], tf.float32, stateful=False
        )
        image.set_shape((height, width, 3))
        return (image, target, *weight)

    columns = (paths, labels) if weights is None else (paths, labels, tf.constant(weights, tf.float32))
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        dataset = dataset.cache()  # decoded once; later epochs read memory
    if shuffle:
        dataset = dataset.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if augment:
        strength = "mild" if augment is True else augment
        layers = augmenter(seed, strength)
        photometric = strength == "radiograph" and preprocessing == "unit"

        def augmented(x, *rest):
            x = layers(x, training=True)
            return (gamma_and_noise(x, seed) if photometric else x, *rest)

        dataset = dataset.map(augmented, num_parallel_calls=tf.data.AUTOTUNE)
    if mixup_alpha > 0:
        dataset = dataset.map(lambda *batch: mixup(*batch, alpha=mixup_alpha, seed=seed + 10),
                              num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
