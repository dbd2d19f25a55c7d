"""One compiled forward pass per Keras backend, and each backend's process settings.

The worker serves the same `.keras` artifact whichever backend Keras runs on (``KERAS_BACKEND``, read
when Keras is first imported): TensorFlow on the CPU machines and in the images, JAX or PyTorch on GPU
machines that have no TensorFlow. Each returns NumPy arrays, so nothing after the forward pass knows
which backend ran it. One worker process per GPU (``CUDA_VISIBLE_DEVICES``): memory is taken as needed,
not all at start, so a process never starves the others on its GPU.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np


def prepare_environment() -> None:
    """Before Keras (and the backend) is imported: JAX would otherwise reserve 75% of GPU memory at once."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def backend() -> str:
    import keras

    return keras.backend.backend()


def configure(threads: int) -> None:
    """GPU memory grows as needed; ``threads`` > 0 bounds CPU threads per process."""
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
        if threads > 0:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, threads // 2))
    elif name == "torch" and threads > 0:
        import torch

        torch.set_num_threads(threads)


def device_name() -> str:
    """Where the forward pass runs, for the log: "cpu" or the accelerator's name."""
    name = backend()
    if name == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    if name == "jax":
        import jax

        device = jax.devices()[0]
        return "cpu" if device.platform == "cpu" else device.device_kind
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name if gpus else "cpu"


def compiled_forward(model) -> Callable[[np.ndarray], tuple[np.ndarray, ...]]:
    """``model`` (inputs → several outputs) as a function of a NumPy batch returning NumPy arrays."""
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        # One trace per batch shape, and the engine uses only a few fixed shapes (1, 2, 4, ... max_batch):
        # TensorFlow's "triggered tf.function retracing" warning about them is expected, not a problem.
        logging.getLogger("tensorflow").addFilter(_NotRetracingWarnings())
        traced = tf.function(lambda x: model(x, training=False))
        return lambda batch: tuple(np.asarray(out) for out in traced(tf.constant(batch)))
    if name == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        fixed = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def run(trainable, fixed, batch):
            outputs, _ = model.stateless_call(trainable, fixed, batch, training=False)
            return outputs

        return lambda batch: tuple(np.asarray(out) for out in run(trainable, fixed, batch))
    if name == "torch":
        import torch

        device = next((v.value.device for v in model.weights), torch.device("cpu"))

        def run(batch):
            with torch.inference_mode():
                outputs = model(torch.as_tensor(batch, device=device), training=False)
            return tuple(out.detach().cpu().numpy() for out in outputs)

        return run
    raise ValueError(f"KERAS_BACKEND={name!r}: the worker runs on tensorflow, jax or torch")


class _NotRetracingWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()
