"""Benchmark: the worker's forward pass (features + logits, fixed batch shape, warmed up) and the 15 CAMs
under each Keras backend the worker supports, on this machine, in one run; TensorFlow is the baseline.

Each backend runs in its own process (Keras picks its backend at import) via bench/model_throughput.py.

    .venv/bin/python bench/backends.py [--size 299] [--batches 1 16]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

from _common import machine

HERE = Path(__file__).resolve().parent


def throughput(backend: str, size: int, batches: list[int]) -> dict[int, tuple[float, float]]:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(HERE.parent), "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    run = subprocess.run([sys.executable, str(HERE / "model_throughput.py"), "--sizes", str(size), "--batches",
                          *map(str, batches)], env=env, capture_output=True, text=True, timeout=1800)
    if run.returncode != 0:
        raise SystemExit(f"{backend}: {run.stderr[-2000:]}")
    rows = re.findall(r"^\| (\d+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \|$", run.stdout, re.MULTILINE)
    return {int(batch): (float(forward), float(maps)) for _, batch, forward, maps in rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=299)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    backends = ["tensorflow"] + [b for b in ("jax", "torch") if importlib.util.find_spec(b)]
    print(f"Keras backends: Xception transfer at {args.size}, forward + 15 CAMs, CPU; {machine()}")
    print("| backend | batch | forward images/s | forward + CAMs images/s | vs TensorFlow |")
    print("|---|---:|---:|---:|---:|")
    baseline = {}
    for backend in backends:
        for batch, (forward, maps) in throughput(backend, args.size, args.batches).items():
            baseline.setdefault(batch, maps)
            print(f"| {backend} | {batch} | {forward:.2f} | {maps:.2f} | {maps / baseline[batch]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
