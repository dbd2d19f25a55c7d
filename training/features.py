"""Frozen-base feature caching: the base's pooled features are computed once per image set and kept
on disk, so training the head for many epochs never runs the base again."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import keras
import numpy as np

from shared.ops.config import load_settings
from training.data import Record
from training.inputs import make_dataset


def backbone(model: keras.Model) -> keras.Model:
    """The model up to the pooled features that feed the logits layer."""
    return keras.Model(model.input, model.get_layer("global_average_pooling").output, name="backbone")


def _cache_key(base: keras.Model, records: list[Record], input_size, preprocessing: str) -> str:
    digest = hashlib.sha256()
    for weights in base.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    digest.update(repr((tuple(input_size), preprocessing)).encode())
    for record in records:
        digest.update(str(record.path).encode())
        digest.update(str(Path(record.path).stat().st_mtime_ns).encode())
    return digest.hexdigest()[:24]


def cached_features(base: keras.Model, records: list[Record], input_size, preprocessing: str, batch_size: int,
                    cache_dir: Path | None = None) -> np.ndarray:
    """cache_dir None: the configured folder (XRAY_FEATURE_CACHE), read now so a changed setting counts."""
    cache_dir = Path(cache_dir) if cache_dir is not None else load_settings().feature_cache_dir
    path = cache_dir / f"{_cache_key(base, records, input_size, preprocessing)}.npy"
    if path.exists():
        return np.load(path)
    dataset = make_dataset(records, input_size, preprocessing, batch_size, cache=False)
    features = np.asarray(base.predict(dataset, verbose="auto"), dtype=np.float32)  # progress bar: one pass
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, features)
    os.replace(tmp, path)
    return features
