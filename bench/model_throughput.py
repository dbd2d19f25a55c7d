"""Benchmark 1: the model alone, images/s at batch sizes 1, 8 and 32 and inputs 224 and 299.

Measures the worker's compiled forward pass (features + logits in one call, fixed batch shape, warmed
up) and, in the same run, the class activation maps of all 15 classes from those features.

    .venv/bin/python bench/model_throughput.py [--sizes 224 299] [--batches 1 8 32]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import export_xception, machine, timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 299])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()

    import keras
    import numpy as np

    from worker.artifact import load_artifact
    from worker.engine import InferenceEngine
    from worker.heatmaps import cam_maps

    print(f"model throughput: Xception transfer (GAP → Dense(15)), {keras.backend.backend()} on CPU; {machine()}")
    print("| input | batch | forward images/s | forward + 15 CAMs images/s |")
    print("|---:|---:|---:|---:|")
    rows = {}
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            model, manifest = load_artifact(export_xception(Path(folder) / "m", size))
        for batch in args.batches:
            engine = InferenceEngine(model, manifest, max_batch=batch)
            x = np.random.default_rng(0).uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
            forward = timed(lambda: engine.forward(x))
            with_maps = timed(lambda: cam_maps(engine.forward(x)[0], engine.dense_kernel))
            rows[(size, batch)] = batch / forward
            print(f"| {size} | {batch} | {batch / forward:.2f} | {batch / with_maps:.2f} |", flush=True)
    best = max(rows, key=rows.get)
    print(f"best: {rows[best]:.2f} images/s at input {best[0]}, batch {best[1]}; "
          f"batch {max(args.batches)} vs batch 1 at {args.sizes[-1]}: "
          f"{rows[(args.sizes[-1], max(args.batches))] / rows[(args.sizes[-1], 1)]:.2f}x")


if __name__ == "__main__":
    main()
