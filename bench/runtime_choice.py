"""Benchmark: does XRAY_RUNTIME=auto pick a fast runtime on a busy machine?

Another process keeps one core busy (a Python loop) for the whole run. Ten times, a fresh process starts as
a worker does (worker/runtime.choose_runtime: the runtimes verified for the model, timed at start, taking
turns) and says what it would serve. Then, under the same load, one more process times every runtime for
longer (--reference-seconds each, taking turns): that is the reference each choice is judged by. A choice
passes when its reference speed is within 10% of the fastest runtime's.

    .venv/bin/python bench/runtime_choice.py [--starts 10] [--input-size 299] [--batch 16] [--reference-seconds 20]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, machine, optimized_xception

START = """
import json, logging, sys
sys.path.insert(0, {bench!r})
import _common  # noqa: F401  (the repository on the path, TensorFlow quiet)
from shared.ops.config import load_settings
from worker import backends
from worker.artifact import load_artifact
from worker.runtime import choose_runtime
from worker.runtimes import fastest
backends.prepare_environment()
settings = load_settings(model_dir={artifact!r}, runtime="auto", batch_size={batch})
model, manifest = load_artifact(settings.model_dir)
if not {reference}:
    chosen, _, speeds = choose_runtime(settings, model, manifest)
else:  # every runtime, timed for longer
    import numpy as np
    from worker.runtimes import build_forward, candidates
    names = candidates("auto", manifest, gpu=False)
    forwards = {{name: build_forward(name, model, manifest, settings.model_dir) for name in names}}
    sample = np.random.default_rng(1).uniform(-1, 1, ({batch}, *manifest.input_size, 3)).astype(np.float32)
    chosen, speeds = fastest(forwards, sample, seconds={seconds})
print("CHOICE " + json.dumps({{"chosen": chosen, "speeds": speeds}}))
"""


def start(artifact: Path, batch: int, reference: bool = False, seconds: float = 20.0) -> dict:
    code = START.format(bench=str(REPO / "bench"), artifact=str(artifact), batch=batch, reference=reference,
                        seconds=seconds)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return json.loads(out.rsplit("CHOICE ", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--input-size", type=int, default=299)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--reference-seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        artifact = Path(folder) / "model"
        optimized_xception(artifact, args.input_size)
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            starts = [start(artifact, args.batch) for _ in range(args.starts)]
            reference = start(artifact, args.batch, reference=True, seconds=args.reference_seconds)["speeds"]
        finally:
            busy.kill()
    best = max(reference, key=reference.get)
    names = sorted(reference)
    print(f"runtime choice under load: another process keeps one core busy; Xception transfer at {args.input_size}, "
          f"batch {args.batch}; {machine()}")
    print(f"reference (every runtime {args.reference_seconds:.0f} s, taking turns, same load): " +
          ", ".join(f"{name} {reference[name]:.2f}" for name in names) + f" images/s; fastest {best}")
    print("| start | chosen | " + " | ".join(f"{name} at start" for name in names) + " | chosen's reference speed "
          "| of the fastest |")
    print("|---:|---|" + "---:|" * len(names) + "---:|---:|")
    passed = 0
    for number, choice in enumerate(starts, 1):
        share = reference[choice["chosen"]] / reference[best]
        passed += share >= 0.9
        print(f"| {number} | {choice['chosen']} | " + " | ".join(f"{choice['speeds'].get(name, 0):.2f}" for name in names)
              + f" | {reference[choice['chosen']]:.2f} | {100 * share:.0f}% |")
    print(f"{passed} of {len(starts)} starts chose a runtime within 10% of the fastest (target: {len(starts)} of "
          f"{len(starts)})")


if __name__ == "__main__":
    main()
