"""Benchmark: ten epochs of head training with cached base features vs plain ``fit`` on the full model.

Same images, same frozen Xception-transfer model, same run. ImageNet weights cannot be downloaded here,
so the base has random weights: the timing is the same either way.

    .venv/bin/python bench/feature_cache.py [--images N] [--input-size S] [--epochs E]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import keras
    import numpy as np

    from shared.model.labels import LABELS
    from training.architectures import build_xception_transfer
    from training.data import Record, local_dataset
    from training.features import backbone, cached_features
    from training.inputs import make_dataset, targets
    from training.train import head_model, positive_weights, weighted_binary_crossentropy

    data = REPO.parent / "shared" / "data" / "nih" / "nih1000-64px"
    if data.exists():
        records = local_dataset(data / "images", data / "labels.csv")[: args.images]
        source = f"{len(records)} real NIH images from {data}"
    else:
        fixtures = sorted((REPO / "tests" / "fixtures" / "nih64").glob("*.png"))
        records = [Record(f"{i}", str(i), frozenset({LABELS[i % 15]}), fixtures[i % len(fixtures)]) for i in range(args.images)]
        source = f"{len(records)} images (the 4 test fixtures repeated)"
    size = (args.input_size, args.input_size)
    y = targets(records)
    loss = weighted_binary_crossentropy(*positive_weights(y))

    def fresh():
        keras.utils.set_random_seed(0)
        return build_xception_transfer(args.input_size, weights=None)

    # Decode once up front so both paths read the same in-memory pixels and neither pays for disk.
    dataset = make_dataset(records, size, "xception", args.batch_size, cache=True)
    for _ in dataset:
        pass

    model = fresh()
    model.compile(keras.optimizers.Adam(1e-3), loss)
    started = time.perf_counter()
    model.fit(dataset, epochs=args.epochs, shuffle=False, verbose=0)
    plain = time.perf_counter() - started

    model = fresh()
    base = backbone(model)
    with tempfile.TemporaryDirectory() as cache_dir:
        started = time.perf_counter()
        features = cached_features(base, records, size, "xception", args.batch_size, cache_dir=Path(cache_dir))
        extracted = time.perf_counter() - started
        head = head_model(model)
        head.compile(keras.optimizers.Adam(1e-3), loss)
        head.fit(features, y, batch_size=args.batch_size, epochs=args.epochs, shuffle=True, verbose=0)
        cached = time.perf_counter() - started

    print(f"feature caching benchmark: {source}, Xception transfer (frozen base) at {args.input_size}x{args.input_size}, "
          f"batch {args.batch_size}, {args.epochs} epochs, {keras.backend.backend()} backend on CPU")
    print(f"| path | seconds for {args.epochs} epochs | images/s |")
    print("|---|---:|---:|")
    print(f"| plain fit on the full model (baseline) | {plain:.1f} | {args.epochs * len(records) / plain:.1f} |")
    print(f"| cached: one base pass ({extracted:.1f} s) + head on features | {cached:.1f} | "
          f"{args.epochs * len(records) / cached:.1f} |")
    print(f"speed-up: {plain / cached:.1f}x; cached run / one pass over the images = {cached / extracted:.2f} "
          f"(features {features.shape})")
    np.testing.assert_equal(features.shape, (len(records), 2048))


if __name__ == "__main__":
    main()
