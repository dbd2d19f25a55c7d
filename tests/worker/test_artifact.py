import json
import shutil
import subprocess
import sys

import pytest

from shared.model.manifest import ArtifactError
from tests.helpers import REPO, service_env
from training import architectures
from training.untrained import init_model
from worker.artifact import load_artifact


def test_tiny_artifact_loads_with_its_manifest(tiny_model):
    model, manifest = load_artifact(tiny_model)
    assert model.output_shape == (None, 15) and manifest.cam_layer == "cam_features"


def test_model_that_disagrees_with_the_manifest_is_refused(tmp_path, tiny_model):
    target = tmp_path / "a"
    shutil.copytree(tiny_model, target)
    data = json.loads((target / "manifest.json").read_text())
    data["cam_layer"] = "no_such_layer"
    (target / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="no_such_layer"):
        load_artifact(target)


def test_imagenet_weights_offline_fail_with_a_clear_message(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: [Errno -2] Name or service not known")

    monkeypatch.setattr("keras.src.applications.xception.file_utils.get_file", offline)
    with pytest.raises(architectures.WeightsUnavailable, match="--weights none"):
        architectures.build_xception_transfer(71, weights="imagenet")


@pytest.mark.slow
def test_model_init_writes_a_servable_xception_artifact(tmp_path):
    manifest = init_model("xception-transfer", 71, "none", tmp_path / "x")
    model, loaded = load_artifact(tmp_path / "x")
    assert loaded == manifest and loaded.cam_layer == "block14_sepconv2_act" and loaded.preprocessing == "xception"
    assert model.input_shape == (None, 71, 71, 3)


@pytest.mark.slow  # starts real processes
def test_worker_refuses_to_start_without_a_model(tmp_path):
    env = service_env(XRAY_VAR_DIR=str(tmp_path), XRAY_MODEL_DIR=str(tmp_path / "missing"))
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker.main", "worker", "--concurrency=1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "refusing to start" in result.stdout + result.stderr
    assert "xray-model init" in result.stdout + result.stderr


@pytest.mark.slow  # starts real processes
def test_worker_stops_when_the_model_disagrees_with_its_manifest(tmp_path, tiny_model):
    target = tmp_path / "model"
    shutil.copytree(tiny_model, target)
    data = json.loads((target / "manifest.json").read_text())
    data["cam_layer"] = "no_such_layer"  # the hash still matches: only loading the model finds this
    (target / "manifest.json").write_text(json.dumps(data))
    env = service_env(XRAY_VAR_DIR=str(tmp_path), XRAY_MODEL_DIR=str(target))
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker.main", "worker", "--concurrency=1", "--without-mingle",
         "--without-gossip"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert "refusing to serve" in result.stdout + result.stderr
    assert "no_such_layer" in result.stdout + result.stderr
