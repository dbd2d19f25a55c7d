"""``xray-model optimize``: faster runtimes for a model artifact, each proven equal to float32 first.

For every variant (worker/runtimes.py: TensorFlow with bf16 compute, OpenVINO at float32 and at bf16)
the check runs the artifact on real X-rays under float32 and under the variant and compares:

- every probability of every image: accepted when |Δp| ≤ 0.01;
- every class's activation map of every image (the raw map Σ_k W[k, c]·A_k before the display's ReLU and
  scaling, at the model's feature resolution): accepted when its Pearson correlation with the float32
  map is ≥ 0.99. The shown maps' largest difference (after ReLU and scaling to [0, 1]) is reported too.

The figures, the speed of each runtime on this machine and the verdicts go into the manifest's
``runtimes``; the OpenVINO IR is written beside the model (``openvino/``). A worker serves a variant
only if it was accepted here for this very model version.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path

import numpy as np

from shared.model.manifest import write_manifest
from training.inputs import load_model_input
from training.machine import describe_machine
from worker.heatmaps import normalise, raw_cams

log = logging.getLogger(__name__)
PROBABILITY_TOLERANCE = 0.01
MAP_CORRELATION = 0.99


def raw_outputs(engine, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities [N, C] and raw class activation maps [N, C, h, w] for preprocessed inputs."""
    probabilities, cams = [], []
    for start in range(0, len(inputs), engine.max_batch):
        features, logits = engine.forward(inputs[start:start + engine.max_batch])
        probabilities.append(1.0 / (1.0 + np.exp(-logits)))
        cams.append(raw_cams(features.astype(np.float64), engine.dense_kernel))
    return np.concatenate(probabilities), np.concatenate(cams)


def map_correlations(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Pearson correlation per image and class of two [N, C, h, w] map stacks; a map that is flat in both
    (nothing to correlate) counts as 1 when the two agree to 1e-6 of their scale, else 0."""
    a = reference.reshape(*reference.shape[:2], -1)
    b = other.reshape(*other.shape[:2], -1)
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    flat = norms < 1e-12
    correlations = np.divide((a * b).sum(axis=-1), norms, out=np.zeros(norms.shape), where=~flat)
    scale = np.abs(reference).max() + 1e-12
    agree = np.abs(reference - other).reshape(*reference.shape[:2], -1).max(axis=-1) <= 1e-6 * scale
    return np.where(flat, agree.astype(float), correlations)


def speed(engine, inputs: np.ndarray) -> float:
    """Images/s of the engine's forward pass at its largest batch (the check's images, repeated to fill it)."""
    from worker.runtimes import images_per_second

    return images_per_second(engine.forward, np.resize(inputs, (engine.max_batch, *inputs.shape[1:])), seconds=2.0)


def compare(reference: tuple[np.ndarray, np.ndarray], candidate: tuple[np.ndarray, np.ndarray]) -> dict:
    (p0, cam0), (p1, cam1) = reference, candidate
    correlations = map_correlations(cam0, cam1)
    max_dp = float(np.abs(p1 - p0).max())
    worst = float(correlations.min())
    return {
        "max_abs_probability_difference": round(max_dp, 6),
        "min_map_correlation": round(worst, 6),
        "mean_map_correlation": round(float(correlations.mean()), 6),
        "max_shown_map_difference": round(float(np.abs(normalise(cam1) - normalise(cam0)).max()), 6),
        "accepted": bool(max_dp <= PROBABILITY_TOLERANCE and worst >= MAP_CORRELATION),
    }


def optimize(artifact_dir: Path, images: list[Path], variants: tuple[str, ...] | None = None,
             batch_size: int = 16) -> dict:
    """Write and check the variants; returns the manifest's new ``runtimes`` entry."""
    from worker.artifact import load_artifact
    from worker.engine import InferenceEngine
    from worker.runtimes import FLOAT32, OPENVINO_IR, VARIANTS, recorded_name, usable_here

    variants = tuple(variants or VARIANTS)
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    if not images:
        raise ValueError("the check needs real X-rays: give --images (a folder of PNG or JPEG files)")
    artifact_dir = Path(artifact_dir)
    model, manifest = load_artifact(artifact_dir)
    reference_engine = InferenceEngine(model, manifest, batch_size)
    if not reference_engine.fast_cam:
        raise ValueError("only models with a global average pooling → dense head have variants: their maps come "
                         "from the same pass as the probabilities in every runtime")
    inputs = np.stack([load_model_input(path, manifest.input_size, manifest.preprocessing) for path in images])
    reference = raw_outputs(reference_engine, inputs)
    if any(name.startswith("openvino-") and usable_here(name) is None for name in variants):
        ir = artifact_dir / OPENVINO_IR
        ir.parent.mkdir(exist_ok=True)
        reference_engine.features_and_logits.export(str(ir), format="openvino", verbose=False)
    report = {
        "model_version": manifest.version,
        "checked_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "check": {"images": len(images), "source": images[0].parent.name,
                  "probability_tolerance": PROBABILITY_TOLERANCE, "map_correlation": MAP_CORRELATION},
        "machine": describe_machine(),
        "float32": {"runtime": recorded_name(FLOAT32),
                    "images_per_second": round(speed(reference_engine, inputs), 2)},
        "variants": {},
    }
    for name in variants:
        why = usable_here(name)
        if why:
            report["variants"][name] = {"accepted": False, "reason": why}
            continue
        engine = InferenceEngine(model, manifest, batch_size, runtime=name, artifact_dir=artifact_dir)
        figures = compare(reference, raw_outputs(engine, inputs))
        figures["images_per_second"] = round(speed(engine, inputs), 2)
        if name.startswith("openvino-"):
            figures["file"] = str(OPENVINO_IR)
        report["variants"][name] = figures
        log.info("%s: max |Δp| %.5f, min map correlation %.5f, %.1f images/s: %s", name,
                 figures["max_abs_probability_difference"], figures["min_map_correlation"],
                 figures["images_per_second"], "accepted" if figures["accepted"] else "REFUSED")
    write_manifest(artifact_dir, dataclasses.replace(manifest, runtimes=report))
    return report
