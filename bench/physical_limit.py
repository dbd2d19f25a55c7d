"""Benchmark 4: the physical limit. Xception's FLOPs per image at the served input size, divided by this
machine's measured peak, at float32 and at bf16, next to what each runtime's forward pass reaches.

FLOPs are counted layer by layer (2 per multiply-add: convolutions, separable convolutions, dense).
Peaks: the best of several square matrix products (2048, 4096 and 8192 on a side), in TensorFlow and in
OpenVINO (the kernel families the runtimes' convolutions run on), at float32 and at bf16: achievable peaks,
not datasheet figures.
Each runtime is measured on the variant `xray-model optimize` wrote and checked for the same model.

    .venv/bin/python bench/physical_limit.py [--input-size 299] [--batch 16]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import machine, optimized_xception, served_engine, timed


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


def tensorflow_matmul_peak(dtype: str, n: int = 4096, repeats: int = 3) -> float:
    import tensorflow as tf

    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)
    product = tf.function(lambda: tf.matmul(a, b))
    product().numpy()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        product().numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def openvino_matmul_peak(precision: str, n: int = 4096, repeats: int = 3) -> float:
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    a = ops.parameter([n, n], ov.Type.f32)
    b = ops.constant(np.random.default_rng(0).normal(size=(n, n)).astype(np.float32))
    compiled = ov.Core().compile_model(ov.Model([ops.matmul(a, b, False, False)], [a]), "CPU",
                                       {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"})
    x = np.random.default_rng(1).normal(size=(n, n)).astype(np.float32)
    compiled(x)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        compiled(x)
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input-size", type=int, default=299)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    import numpy as np

    from worker.artifact import load_artifact
    from worker.runtimes import FLOAT32, VARIANTS

    with tempfile.TemporaryDirectory() as folder:
        artifact = Path(folder) / "m"
        report = optimized_xception(artifact, args.input_size)
        model, _ = load_artifact(artifact)
        flops = count_flops(model)
        sizes = (2048, 4096, 8192)
        peaks = {("float32", "TensorFlow"): max(tensorflow_matmul_peak("float32", n) for n in sizes),
                 ("float32", "OpenVINO"): max(openvino_matmul_peak("f32", n) for n in sizes),
                 ("bf16", "TensorFlow"): max(tensorflow_matmul_peak("bfloat16", n) for n in sizes),
                 ("bf16", "OpenVINO"): max(openvino_matmul_peak("bf16", n) for n in sizes)}
        limits = {precision: max(peak for (p, _), peak in peaks.items() if p == precision) / flops
                  for precision in ("float32", "bf16")}
        x = np.random.default_rng(0).uniform(-1, 1, (args.batch, args.input_size, args.input_size, 3)).astype(np.float32)
        reached = {}
        for runtime in (FLOAT32, *VARIANTS):
            if runtime != FLOAT32 and not report["variants"][runtime].get("accepted"):
                continue
            engine = served_engine(artifact, runtime, args.batch)
            reached[engine.runtime] = args.batch / timed(lambda: engine.forward(x))
        served = served_engine(artifact, "auto", args.batch).runtime
    print(f"physical limit: Xception transfer at {args.input_size}x{args.input_size}, batch {args.batch}; {machine()}")
    print(f"FLOPs per image (counted per layer): {flops / 1e9:.2f} GFLOP")
    print("| measured peak (square matmul 2048–8192, best of 3 each) | GFLOP/s | limit images/s |")
    print("|---|---:|---:|")
    for (precision, library), peak in peaks.items():
        print(f"| {precision}, {library} | {peak / 1e9:.0f} | {peak / flops:.2f} |")
    print("| runtime | images/s | limit used (its precision's best peak) | share of the limit |")
    print("|---|---:|---|---:|")
    for runtime, rate in reached.items():
        precision = "bf16" if runtime.endswith("bf16") else "float32"
        mark = " (served: XRAY_RUNTIME=auto)" if runtime == served else ""
        print(f"| {runtime}{mark} | {rate:.2f} | {precision} {limits[precision]:.2f} | "
              f"{100 * rate / limits[precision]:.0f}% |")
    rate = reached[served]
    print(f"served runtime {served}: {rate:.2f} images/s = {100 * rate / limits['bf16']:.0f}% of the bf16 limit "
          f"(target ≥ 70%), {100 * rate / limits['float32']:.0f}% of the float32 limit")


if __name__ == "__main__":
    main()
