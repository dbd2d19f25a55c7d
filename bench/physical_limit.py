"""Benchmark 4: the physical limit. Xception's FLOPs per image at the served input size, divided by this
machine's measured peak, next to what the worker's forward pass reaches.

FLOPs are counted layer by layer (2 per multiply-add: convolutions, separable convolutions, dense).
Peak: the best of several float32 matrix products (4096×4096) in TensorFlow, the kernel family
convolutions run on, so it is an achievable peak, not a datasheet figure.

    .venv/bin/python bench/physical_limit.py [--input-size 299] [--batch 16]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import export_xception, machine, timed


def count_flops(model) -> int:
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.SeparableConv2D, keras.layers.Conv2D, keras.layers.Dense)):
            out_shape = layer.output.shape
            if isinstance(layer, keras.layers.Dense):
                total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
                continue
            positions = out_shape[1] * out_shape[2]
            if isinstance(layer, keras.layers.SeparableConv2D):
                kh, kw, cin, multiplier = layer.depthwise_kernel.shape
                total += 2 * positions * kh * kw * cin * multiplier
                total += 2 * positions * layer.pointwise_kernel.shape[2] * layer.pointwise_kernel.shape[3]
            else:
                kh, kw, cin, cout = layer.kernel.shape
                total += 2 * positions * kh * kw * cin * cout
    return total


def matmul_peak(n: int = 4096, repeats: int = 5) -> float:
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    product = tf.function(lambda: tf.matmul(a, b))
    product().numpy()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        product().numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input-size", type=int, default=299)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    import numpy as np

    from worker.artifact import load_artifact
    from worker.engine import InferenceEngine

    with tempfile.TemporaryDirectory() as folder:
        model, manifest = load_artifact(export_xception(Path(folder) / "m", args.input_size))
    flops = count_flops(model)
    peak = matmul_peak()
    engine = InferenceEngine(model, manifest, max_batch=args.batch)
    x = np.random.default_rng(0).uniform(-1, 1, (args.batch, args.input_size, args.input_size, 3)).astype(np.float32)
    reached = args.batch / timed(lambda: engine.forward(x))
    limit = peak / flops
    print(f"physical limit: Xception transfer at {args.input_size}x{args.input_size}; {machine()}")
    print("| quantity | value |")
    print("|---|---:|")
    print(f"| FLOPs per image (counted per layer) | {flops / 1e9:.2f} GFLOP |")
    print(f"| measured peak (float32 4096² matmul, TensorFlow, best of 5) | {peak / 1e9:.1f} GFLOP/s |")
    print(f"| limit = peak / FLOPs | {limit:.2f} images/s |")
    print(f"| reached: worker forward pass, batch {args.batch} | {reached:.2f} images/s |")
    print(f"| share of the limit | {100 * reached / limit:.0f}% ({reached * flops / 1e9:.1f} GFLOP/s sustained) |")


if __name__ == "__main__":
    main()
