"""The GPU part of bench/gpu_check.sh, run once per Keras backend (KERAS_BACKEND=tensorflow, jax or torch) in
that backend's own environment. Prints one Markdown row per precision and batch size: images/s of the served
Xception's forward pass (features and logits, as the worker runs it) and, for float16, how far its
probabilities stray from float32 on the real X-rays (max and mean |Δp|).

Refuses at once, with exit status 3, when the backend sees no GPU: these figures mean nothing on a CPU.

    KERAS_BACKEND=jax python bench/gpu_check.py [--input-size 299] [--batches 16 64 256] [--seconds 3]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import export_xception, real_xrays

NO_GPU = 3


def xray_inputs(engine, paths) -> "np.ndarray":  # noqa: F821
    """The X-rays as the worker feeds them: decoded, checked and preprocessed by the same code."""
    import numpy as np

    from shared.imaging.images import decode_image
    from shared.ops.config import load_settings

    settings = load_settings()
    return np.stack([engine.preprocess(decode_image(p.read_bytes(), settings.max_image_pixels,
                                                    settings.max_decoded_bytes)) for p in paths])


def probabilities(forward, inputs, batch: int = 16):
    import numpy as np

    out = []
    for start in range(0, len(inputs), batch):
        chunk = inputs[start:start + batch]
        padded = np.resize(chunk, (batch, *chunk.shape[1:])) if len(chunk) < batch else chunk
        _, logits = forward(padded)
        out.append(1.0 / (1.0 + np.exp(-np.asarray(logits[:len(chunk)], dtype=np.float64))))
    return np.concatenate(out)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input-size", type=int, default=299)
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    from worker import backends

    backends.prepare_environment()
    backends.configure(0)
    device = backends.device_name()
    if device == "cpu":
        print(f"gpu_check: KERAS_BACKEND={backends.backend()} sees no GPU (its CUDA build, driver and device are "
              "needed): no figures on a CPU", file=sys.stderr)
        return NO_GPU
    import numpy as np

    from worker.artifact import load_artifact
    from worker.engine import InferenceEngine
    from worker.runtimes import FLOAT16, FLOAT32, build_forward, images_per_second

    paths = real_xrays()
    with tempfile.TemporaryDirectory() as folder:
        artifact = export_xception(Path(folder) / "model", args.input_size)
        model, manifest = load_artifact(artifact)
        engine = InferenceEngine(model, manifest, max_batch=1)
        inputs = xray_inputs(engine, paths)
        forwards = {precision: build_forward(precision, model, manifest, artifact) for precision in (FLOAT32, FLOAT16)}
        reference = probabilities(forwards[FLOAT32], inputs)
        for precision, forward in forwards.items():
            drift = np.abs(probabilities(forward, inputs) - reference)
            for batch in args.batches:
                x = np.resize(inputs, (batch, *inputs.shape[1:])).astype(np.float32)
                try:
                    rate = f"{images_per_second(forward, x, args.seconds):.1f}"
                except Exception as exc:  # e.g. out of memory at 256: say so in the row, go on
                    rate = f"failed ({type(exc).__name__})"
                print(f"| {backends.backend()} | {device} | {precision} | {batch} | {rate} | "
                      f"{drift.max():.4f} | {drift.mean():.5f} |", flush=True)
    print(f"(|Δp|: against {backends.backend()} float32 on {len(paths)} real X-rays, {paths[0].parent})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
