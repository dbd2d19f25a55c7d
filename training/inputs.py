"""tf.data input pipelines: parallel decode with the service's own decoder and preprocessing (so training
sees exactly the pixels the worker will), optional in-memory cache, augmentation and prefetch."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from shared.images import decode_image
from shared.preprocess import model_input
from training.data import Record

MAX_PIXELS = 100_000_000


def load_model_input(path: Path | str, input_size: tuple[int, int], preprocessing: str) -> np.ndarray:
    grey = decode_image(Path(path).read_bytes(), MAX_PIXELS)
    return model_input(grey, input_size, preprocessing)


def targets(records: list[Record]) -> np.ndarray:
    return np.stack([r.target() for r in records])


def augmenter(seed: int = 0) -> keras.Sequential:
    """Small shifts, zooms and contrast changes. No flips: the heart's side is anatomy, not noise."""
    return keras.Sequential(
        [
            keras.layers.RandomTranslation(0.06, 0.06, fill_mode="nearest", seed=seed),
            keras.layers.RandomZoom(0.1, fill_mode="nearest", seed=seed + 1),
            keras.layers.RandomContrast(0.2, seed=seed + 2),
        ],
        name="augmentation",
    )


def make_dataset(records: list[Record], input_size: tuple[int, int], preprocessing: str, batch_size: int,
                 shuffle: bool = False, augment: bool = False, cache: bool = True, seed: int = 0) -> tf.data.Dataset:
    if not records:
        raise ValueError("make_dataset received no records")
    height, width = input_size
    paths = tf.constant([str(r.path) for r in records])
    labels = tf.constant(targets(records))

    def load(path, target):
        image = tf.numpy_function(
            lambda p: load_model_input(p.decode(), input_size, preprocessing), [path], tf.float32, stateful=False
        )
        image.set_shape((height, width, 3))
        return image, target

    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        dataset = dataset.cache()  # decoded once; later epochs read memory
    if shuffle:
        dataset = dataset.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if augment:
        layers = augmenter(seed)
        dataset = dataset.map(lambda x, y: (layers(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
