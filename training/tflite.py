"""On-device export: a model artifact as TensorFlow Lite (float16, and dynamic-range int8) with its labels,
thresholds and preprocessing beside it, checked against the Keras model on real X-rays.

The .tflite models give the 15 probabilities for one preprocessed image [1, H, W, 3] (the same transform
as the service: shared/model/preprocess.py). ``tflite.json`` names the resize (area when shrinking, bilinear
when enlarging: a plain bilinear shrink flips decisions) and the tested numpy reference of the whole transform
(shared/model/reference_preprocess.py) a phone app can port. The check's figures (largest probability difference per variant,
on how many images) are written into ``tflite.json`` with everything a phone app needs.
"""
from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from shared.model.reference_preprocess import RESIZE
from training.inputs import load_model_input

log = logging.getLogger(__name__)
VARIANTS = ("float16", "int8")


def convert(model, variant: str) -> bytes:
    import tensorflow as tf

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    with tempfile.TemporaryDirectory() as folder:
        model.export(f"{folder}/saved_model", format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(f"{folder}/saved_model")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # alone: dynamic-range int8 weights
        if variant == "float16":
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


def interpreter(tflite_model: bytes):
    """A TFLite interpreter (LiteRT where installed, else TensorFlow's own)."""
    import warnings

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TensorFlow's "tf.lite.Interpreter is deprecated": it still runs the model
        runner = Interpreter(model_content=tflite_model)
    runner.allocate_tensors()
    return runner


def run_tflite(runner, batch: np.ndarray) -> np.ndarray:
    """Probabilities [N, labels] for preprocessed images [N, H, W, 3], one image at a time."""
    source, target = runner.get_input_details()[0], runner.get_output_details()[0]
    out = []
    for image in batch:
        runner.set_tensor(source["index"], image[None].astype(np.float32))
        runner.invoke()
        out.append(runner.get_tensor(target["index"])[0])
    return np.array(out)


def load_inputs(paths: list[Path], manifest) -> np.ndarray:
    return np.stack([load_model_input(p, manifest.input_size, manifest.preprocessing) for p in paths])


def export_tflite(artifact_dir: Path, images: list[Path], variants=VARIANTS) -> dict:
    """Write model-<variant>.tflite and tflite.json beside the artifact; returns what tflite.json says."""
    from worker.artifact import load_artifact

    artifact_dir = Path(artifact_dir)
    model, manifest = load_artifact(artifact_dir)
    if not images:
        raise ValueError("the agreement check needs real X-rays: give --images (a folder of PNG/JPEG files)")
    batch = load_inputs(images, manifest)
    reference = np.asarray(model.predict(batch, verbose=0), dtype=np.float64)
    report = {"model": manifest.name, "version": manifest.version, "labels": list(manifest.labels),
              "thresholds": manifest.thresholds, "input_size": list(manifest.input_size),
              "preprocessing": manifest.preprocessing, "resize": RESIZE,
              "input": "float32 [1, height, width, 3], grey resized as 'resize' says, repeated, scaled as "
              "'preprocessing' says (reference in plain numpy: shared/model/reference_preprocess.py)", "output": "15 probabilities in 'labels' order",
              "check_images": len(images), "variants": {}}
    for variant in variants:
        data = convert(model, variant)
        path = artifact_dir / f"model-{variant}.tflite"
        path.write_bytes(data)
        difference = np.abs(run_tflite(interpreter(data), batch) - reference)
        report["variants"][variant] = {"file": path.name, "bytes": len(data),
                                       "max_abs_probability_difference": float(difference.max()),
                                       "mean_abs_probability_difference": float(difference.mean())}
        log.info("%s: %d bytes, largest probability difference %.4f over %d images", path.name, len(data),
                 difference.max(), len(images))
    (artifact_dir / "tflite.json").write_text(json.dumps(report, indent=1) + "\n")
    return report
