"""The same `.keras` artifact under every Keras backend the worker supports (TensorFlow, JAX, PyTorch; on
the CPU here): the same probabilities (within 1e-4) and the same class activation maps, from the engine and
from a real Celery worker serving jobs, on real X-rays."""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import (REDIS_URL, REPO, SHARED_DATA, TokenClient, WorkerProcess, api_token,
                           real_xray_bytes, service_env, submit_and_wait)

pytestmark = pytest.mark.slow  # each check starts fresh processes with a whole backend: not for the fast lane
BACKENDS = ["jax", "torch"]
STARTER = REPO / "models" / "starter"  # a k-fold ensemble: nested member models joined under one CAM layer


def _installed(backend: str) -> None:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (the 'backends' extra: pip install -e '.[backends]')")


def _images(tmp_path) -> list[str]:
    paths = [tmp_path / name for name, _ in real_xray_bytes(4)]
    for path, (_, data) in zip(paths, real_xray_bytes(4)):
        path.write_bytes(data)
    full = SHARED_DATA / "nih-fullres-sample" / "images"
    return [str(p) for p in paths] + ([str(p) for p in sorted(full.glob("*.png"))[:4]] if full.is_dir() else [])


def _probe(backend: str, artifact, images: list[str], out) -> dict:
    env = service_env(KERAS_BACKEND=backend)
    run = subprocess.run([sys.executable, "-m", "tests.worker.backend_probe", str(artifact), str(out), *images],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = dict(np.load(out))
    assert str(result["backend"]) == backend
    return result


@pytest.fixture(scope="module")
def xception(tmp_path_factory):
    """Xception (depthwise separable convolutions, batch normalisation) at 71 px with random weights."""
    from training.untrained import init_model

    path = tmp_path_factory.mktemp("models") / "xception71"
    init_model("xception-transfer", 71, "none", path, name="xception-71-test")
    return path


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("which", ["starter", "xception"])
def test_every_backend_gives_the_same_probabilities_and_maps(backend, which, xception, tmp_path):
    _installed(backend)
    artifact = STARTER if which == "starter" else xception
    images = _images(tmp_path)
    reference = _probe("tensorflow", artifact, images, tmp_path / "tensorflow.npz")
    other = _probe(backend, artifact, images, tmp_path / f"{backend}.npz")
    assert np.abs(other["probabilities"] - reference["probabilities"]).max() <= 1e-4
    assert np.abs(other["maps"] - reference["maps"]).max() <= 1e-3
    if which != "xception":  # a trained model: the probabilities are far from 0.5, so the check has teeth
        assert np.ptp(reference["probabilities"]) > 0.2


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_celery_worker_on_jax_or_torch_serves_jobs_like_the_tensorflow_one(backend, own_pg_url, own_queue, tmp_path):
    _installed(backend)
    from web import create_app

    queue = own_queue
    settings = {"database_url": own_pg_url, "broker_url": REDIS_URL, "queue_name": queue, "var_dir": tmp_path,
                "storage_dir": tmp_path / "storage", "model_dir": STARTER, "secret_key": "k" * 48}
    env = service_env(DATABASE_URL=own_pg_url, CELERY_BROKER_URL=REDIS_URL, XRAY_QUEUE=queue,
                      XRAY_VAR_DIR=str(tmp_path), XRAY_STORAGE_DIR=str(tmp_path / "storage"),
                      XRAY_MODEL_DIR=str(STARTER), KERAS_BACKEND=backend)
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        assert f" with {backend}-float32 on cpu" in worker.log()
        client = TokenClient(create_app({**settings, "TESTING": True}).test_client(), api_token(own_pg_url, "bk"))
        files = real_xray_bytes(4)
        batch = submit_and_wait(client, files)
        assert batch["counts"]["succeeded"] == 4
        paths = []
        for name, data in files:
            (tmp_path / name).write_bytes(data)
            paths.append(str(tmp_path / name))
        reference = _probe("tensorflow", STARTER, paths, tmp_path / "reference.npz")
        labels = list(reference["labels"])
        for job in batch["jobs"]:
            served = client.get(job["url"]).get_json()
            row = [name for name, _ in files].index(served["filename"])
            got = np.array([{f["label"]: f["probability"] for f in served["findings"]}[label] for label in labels])
            assert np.abs(got - reference["probabilities"][row]).max() <= 1e-4
    finally:
        worker.stop()
