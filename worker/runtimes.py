"""The runtimes a worker can compute a model's forward pass with, and which one it serves.

Every runtime runs the same `.keras` artifact's features + logits in one call (the class activation
maps need both from the same pass) and returns float32 NumPy arrays:

- ``float32``: the Keras backend's own compiled call (worker/backends.py): TensorFlow, JAX or PyTorch.
- ``float16``: the backend with Keras' ``mixed_float16`` policy (float32 variables and logits), for GPUs.
- ``tensorflow-bf16``: TensorFlow with ``mixed_bfloat16`` compute on CPUs with bf16 instructions.
- ``openvino-float32`` / ``openvino-bf16``: the OpenVINO IR that ``xray-model optimize`` wrote beside the
  artifact, compiled for the CPU at that inference precision.

A variant other than float32 is served only when ``xray-model optimize`` accepted it for this very model
(its probabilities and maps checked against float32 on real X-rays; the figures are in the manifest's
``runtimes``). Every result records the runtime that produced it, e.g. ``openvino-bf16``.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shared.model.manifest import ArtifactError, Manifest
from worker.backends import backend, compiled_forward

log = logging.getLogger(__name__)

FLOAT32, FLOAT16 = "float32", "float16"
VARIANTS = ("tensorflow-bf16", "openvino-float32", "openvino-bf16")  # what `xray-model optimize` can verify
CHOICES = ("auto", FLOAT32, FLOAT16, *VARIANTS)
OPENVINO_IR = Path("openvino") / "features_and_logits.xml"
Forward = Callable[[np.ndarray], tuple[np.ndarray, ...]]


def recorded_name(runtime: str) -> str:
    """The name a result records: the backend for float32/float16 (``jax-float32``), else the variant's own."""
    return f"{backend()}-{runtime}" if runtime in (FLOAT32, FLOAT16) else runtime


def features_and_logits(model, manifest: Manifest):
    import keras

    return keras.Model(model.input, [model.get_layer(manifest.cam_layer).output,
                                     model.get_layer(manifest.logits_layer).output])


def with_policy(model, policy: str, keep_float32: tuple[str, ...] = ()):
    """The same model and weights computing under a mixed ``policy`` (float32 variables), except the named
    layers and the output layer, which stay float32 so logits and probabilities keep their precision."""
    config = model.get_config()
    keep = set(keep_float32) | {layer.name for layer in model.layers if layer.output is model.output}
    for layer in config["layers"]:
        if layer["name"] not in keep and layer["class_name"] != "InputLayer" and "dtype" in layer["config"]:
            layer["config"]["dtype"] = policy
    mixed = model.__class__.from_config(config)
    mixed.set_weights(model.get_weights())
    return mixed


def usable_here(runtime: str) -> str | None:
    """None when ``runtime`` can run in this process, else why not."""
    if runtime in (FLOAT32, FLOAT16):
        return None
    if runtime == "tensorflow-bf16" and backend() != "tensorflow":
        return f"it needs KERAS_BACKEND=tensorflow (this worker runs {backend()})"
    if runtime.startswith("openvino-"):
        try:
            import openvino  # noqa: F401
        except ImportError:
            return "the openvino package is not installed (pip install '.[worker]')"
    return None


def build_forward(runtime: str, model, manifest: Manifest, artifact_dir: Path | None) -> Forward:
    """The forward pass (batch → features, logits) of ``model`` under ``runtime``."""
    if runtime == FLOAT32:
        return compiled_forward(features_and_logits(model, manifest))
    if runtime in (FLOAT16, "tensorflow-bf16"):
        policy = "mixed_float16" if runtime == FLOAT16 else "mixed_bfloat16"
        mixed = with_policy(model, policy, keep_float32=(manifest.logits_layer,))
        return compiled_forward(features_and_logits(mixed, manifest))
    if runtime in ("openvino-float32", "openvino-bf16"):
        if artifact_dir is None or not (Path(artifact_dir) / OPENVINO_IR).is_file():
            raise ArtifactError(f"runtime {runtime} needs {OPENVINO_IR} in the artifact folder: run "
                                f"`xray-model optimize {artifact_dir}` first")
        return OpenVinoForward(Path(artifact_dir) / OPENVINO_IR, "bf16" if runtime.endswith("bf16") else "f32")
    raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(CHOICES)}")


class OpenVinoForward:
    """An OpenVINO IR compiled for the CPU, once per batch shape (static shapes run faster than a dynamic
    one, and the engine only ever uses a few: powers of two up to its largest batch)."""

    def __init__(self, ir: Path, precision: str):
        import openvino as ov

        self.core = ov.Core()
        self.ir = ir
        # OpenVINO picks bf16 by itself on CPUs that have it: float32 must be asked for. LATENCY puts every
        # core into the one request the worker has in flight (THROUGHPUT would split the cores into streams
        # for parallel requests, and a lone request then runs on one core: half the speed on 2 cores).
        self.config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        self.compiled: dict[tuple[int, ...], object] = {}

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        shape = tuple(batch.shape)
        if shape not in self.compiled:
            model = self.core.read_model(self.ir)
            model.reshape(list(shape))
            self.compiled[shape] = self.core.compile_model(model, "CPU", self.config)
        outputs = self.compiled[shape](np.ascontiguousarray(batch, dtype=np.float32))
        return tuple(np.asarray(outputs[i]) for i in range(len(outputs)))


def accepted_variants(manifest: Manifest) -> list[str]:
    """The variants `xray-model optimize` accepted for this model, as the manifest records them."""
    if (manifest.runtimes or {}).get("model_version") != manifest.version:
        return []  # checked for another model file (the manifest was copied or the model retrained)
    variants = manifest.runtimes.get("variants", {})
    return [name for name in VARIANTS if variants.get(name, {}).get("accepted")]


def candidates(setting: str, manifest: Manifest, gpu: bool) -> list[str]:
    """The runtimes a worker may serve for the XRAY_RUNTIME ``setting`` (several only for "auto")."""
    if setting not in CHOICES:
        raise ArtifactError(f"XRAY_RUNTIME={setting!r} is not one of {', '.join(CHOICES)}")
    if setting in (FLOAT32, FLOAT16):
        return [setting]
    accepted = accepted_variants(manifest)
    if setting != "auto":
        if setting not in accepted:
            raise ArtifactError(f"XRAY_RUNTIME={setting} was not verified for model {manifest.version}: run "
                                f"`xray-model optimize` on the artifact (it checks each variant on real X-rays)")
        why = usable_here(setting)
        if why:
            raise ArtifactError(f"XRAY_RUNTIME={setting} cannot run here: {why}")
        return [setting]
    if gpu:
        return [FLOAT32]  # the CPU variants would leave the GPU idle
    return [FLOAT32] + [name for name in accepted if usable_here(name) is None]


def images_per_second(forward: Forward, batch: np.ndarray, seconds: float = 1.0) -> float:
    """``forward`` on ``batch`` after a warm-up call, at least twice and for about ``seconds``."""
    return fastest({"": forward}, batch, seconds, min_rounds=2)[1][""]


def fastest(forwards: dict[str, Forward], batch: np.ndarray, seconds: float = 1.0,
            min_rounds: int = 3) -> tuple[str, dict[str, float]]:
    """Time each runtime's forward pass on ``batch``; the fastest one's name and everyone's images/s.

    After one warm-up call each, the runtimes take turns, one call each per round (the order rotating), until
    each has run ``min_rounds`` times and ``seconds`` in all; a runtime's figure is its images over its total
    time. Taking turns spreads load that comes and goes (another worker starting, a neighbour's job) over every
    runtime alike: timed one after another, a burst fell on one of them, and a busy machine once had a worker
    serve a runtime at 6.3 images/s beside one doing 11.5. Its total, not its best call, is what counts: a
    runtime whose threads wait on each other when a core is taken is slow on most calls, not on all.
    """
    names = list(forwards)
    for name in names:
        forwards[name](batch)
    spent, runs = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0)
    turn = 0
    while min(runs.values()) < min_rounds or min(spent.values()) < seconds:
        for name in names[turn % len(names):] + names[:turn % len(names)]:
            started = time.perf_counter()
            forwards[name](batch)
            spent[name] += time.perf_counter() - started
            runs[name] += 1
        turn += 1
    speeds = {name: len(batch) * runs[name] / spent[name] for name in names}
    return max(speeds, key=speeds.get), speeds
