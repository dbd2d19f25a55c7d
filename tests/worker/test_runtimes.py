"""Faster runtimes (bf16 compute, OpenVINO) are verified against float32 on real X-rays before a worker may
serve them, the worker serves the fastest verified one, and every result names the runtime that made it."""
import json
import logging
import shutil

import numpy as np
import pytest

from shared.model.manifest import ArtifactError, read_manifest
from tests.helpers import (FIXTURES, REDIS_URL, REPO, SHARED_DATA, TokenClient, WorkerProcess, api_token,
                           real_xray_bytes, service_env, submit_and_wait)
from worker import runtimes

STARTER = REPO / "models" / "starter"


def _check_images() -> list:
    """Real X-rays: 16 of the full-resolution NIH sample where it is beside the repo, else the 64 px fixtures."""
    full = SHARED_DATA / "nih-fullres-sample" / "images"
    return sorted(full.glob("*.png"))[:16] if full.is_dir() else sorted((FIXTURES / "nih64").glob("*.png"))


@pytest.fixture(scope="module")
def optimized(tmp_path_factory):
    """A copy of the trained starter model with every variant written and checked (its probabilities are
    far from 0.5, so agreement within 0.01 is a real check)."""
    from training.optimize import optimize

    path = tmp_path_factory.mktemp("optimized") / "starter"
    shutil.copytree(STARTER, path)
    report = optimize(path, _check_images(), batch_size=8)
    return path, report


@pytest.mark.slow  # optimizes a model (about 20 s) or starts a worker
def test_optimize_accepts_variants_that_agree_with_float32_and_records_the_figures(optimized):
    path, report = optimized
    manifest = read_manifest(path)
    assert manifest.runtimes == report  # the manifest keeps the figures; the version is unchanged
    assert report["model_version"] == manifest.version
    assert report["check"]["images"] == len(_check_images())
    assert (path / runtimes.OPENVINO_IR).is_file() and (path / runtimes.OPENVINO_IR).with_suffix(".bin").is_file()
    assert set(report["variants"]) == set(runtimes.VARIANTS)
    for name, figures in report["variants"].items():
        assert figures["accepted"], (name, figures)
        assert figures["max_abs_probability_difference"] <= 0.01
        assert figures["min_map_correlation"] >= 0.99
        assert figures["images_per_second"] > 0
    # OpenVINO at float32 is the same computation: far tighter than the bounds
    assert report["variants"]["openvino-float32"]["max_abs_probability_difference"] < 1e-4
    assert runtimes.accepted_variants(manifest) == list(runtimes.VARIANTS)


@pytest.mark.slow  # optimizes a model (about 20 s) or starts a worker
@pytest.mark.parametrize("name", runtimes.VARIANTS + ("float16",))
def test_every_runtime_gives_the_float32_findings_and_maps_within_bounds(optimized, name):
    from shared.imaging.images import decode_image
    from worker.artifact import load_artifact
    from worker.engine import InferenceEngine

    path, _ = optimized
    model, manifest = load_artifact(path)
    greys = [decode_image(p.read_bytes(), 10**8) for p in _check_images()[:8]]
    reference = InferenceEngine(model, manifest, 8).analyse(greys)
    engine = InferenceEngine(model, manifest, 8, runtime=name, artifact_dir=path)
    assert engine.runtime == (f"tensorflow-{name}" if name == "float16" else name)
    spread = []
    for ref, got in zip(reference, engine.analyse(greys)):
        for label, p in ref.probabilities.items():
            assert abs(got.probabilities[label] - p) <= 0.01
            shown, expected = got.heatmaps[label].ravel(), ref.heatmaps[label].ravel()
            if expected.std() > 0 and shown.std() > 0:  # the shown maps (ReLU, scaled to [0, 1]) look alike
                assert np.corrcoef(shown, expected)[0, 1] >= 0.95
            else:
                assert np.abs(shown - expected).max() < 0.2
            spread.append(p)
    assert np.ptp(spread) > 0.2  # a trained model: probabilities far apart, so the bound has teeth


def test_the_mixed_policies_keep_the_logits_in_float32():
    from worker.artifact import load_artifact

    model, manifest = load_artifact(STARTER)
    for policy, dtype in (("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")):
        mixed = runtimes.with_policy(model, policy, keep_float32=(manifest.logits_layer,))
        assert mixed.get_layer(manifest.cam_layer).compute_dtype == dtype
        assert mixed.get_layer(manifest.logits_layer).compute_dtype == "float32"


def test_a_variant_outside_the_bounds_is_refused():
    from training.optimize import compare

    rng = np.random.default_rng(0)
    probabilities = rng.uniform(0.05, 0.95, (6, 15))
    cams = rng.normal(size=(6, 15, 4, 4))
    assert compare((probabilities, cams), (probabilities + 0.009, cams * 1.5 + 0.1))["accepted"]
    shifted = compare((probabilities, cams), (probabilities + 0.02, cams))
    assert not shifted["accepted"] and shifted["max_abs_probability_difference"] == pytest.approx(0.02)
    noisy = cams.copy()
    noisy[2, 7] = rng.normal(size=(4, 4))  # one class's map of one image goes its own way
    refused = compare((probabilities, cams), (probabilities, noisy))
    assert not refused["accepted"] and refused["min_map_correlation"] < 0.99


def test_flat_maps_count_as_agreeing_only_when_equal():
    from training.optimize import map_correlations

    flat = np.zeros((1, 2, 3, 3))
    assert map_correlations(flat, flat).tolist() == [[1.0, 1.0]]
    other = flat.copy()
    other[0, 1] = 5.0  # flat too, at another level
    assert map_correlations(flat, other).tolist() == [[1.0, 0.0]]


@pytest.mark.slow  # optimizes a model (about 20 s) or starts a worker
def test_which_runtimes_a_worker_may_serve(optimized, tmp_path):
    path, _ = optimized
    manifest = read_manifest(path)
    assert runtimes.candidates("auto", manifest, gpu=False) == ["float32", *runtimes.VARIANTS]
    assert runtimes.candidates("auto", manifest, gpu=True) == ["float32"]
    assert runtimes.candidates("openvino-bf16", manifest, gpu=False) == ["openvino-bf16"]
    with pytest.raises(ArtifactError, match="not one of"):
        runtimes.candidates("int4", manifest, gpu=False)
    plain = read_manifest(STARTER)  # never optimized
    assert runtimes.candidates("auto", plain, gpu=False) == ["float32"]
    with pytest.raises(ArtifactError, match="was not verified for model .*xray-model optimize"):
        runtimes.candidates("openvino-bf16", plain, gpu=False)
    # the figures belong to one model file: a retrained model in the same folder has no verified variants
    copy = tmp_path / "retrained"
    shutil.copytree(path, copy)
    data = json.loads((copy / "manifest.json").read_text())
    data["runtimes"]["model_version"] = "sha256-0000000000000000"
    (copy / "manifest.json").write_text(json.dumps(data))
    assert runtimes.accepted_variants(read_manifest(copy)) == []


@pytest.mark.slow  # optimizes a model (about 20 s) or starts a worker
def test_auto_serves_the_fastest_verified_runtime_timed_at_start(optimized, caplog):
    from shared.ops.config import load_settings
    from worker.artifact import load_artifact
    from worker.runtime import serving_engine

    path, _ = optimized
    model, manifest = load_artifact(path)
    with caplog.at_level(logging.INFO, logger="worker.runtime"):
        engine = serving_engine(load_settings(model_dir=path, runtime="auto", batch_size=8), model, manifest)
    timed = next(r.getMessage() for r in caplog.records if "runtimes timed at start" in r.getMessage())
    speeds = {part.rsplit(" ", 2)[0]: float(part.rsplit(" ", 2)[1])
              for part in timed.split(": ", 1)[1].split("; ")[0].split(", ")}
    assert set(speeds) == {"float32", *runtimes.VARIANTS}
    best = max(speeds, key=speeds.get)
    assert engine.runtime == runtimes.recorded_name(best)
    assert timed.endswith(f"serving {best}")


@pytest.mark.slow  # optimizes a model (about 20 s) or starts a worker
def test_a_worker_records_the_runtime_of_every_result(optimized, own_pg_url, own_queue, tmp_path):
    from web import create_app

    path, report = optimized
    queue = own_queue
    settings = {"database_url": own_pg_url, "broker_url": REDIS_URL, "queue_name": queue, "var_dir": tmp_path,
                "storage_dir": tmp_path / "storage", "model_dir": path, "secret_key": "k" * 48}
    env = service_env(DATABASE_URL=own_pg_url, CELERY_BROKER_URL=REDIS_URL, XRAY_QUEUE=queue,
                      XRAY_VAR_DIR=str(tmp_path), XRAY_STORAGE_DIR=str(tmp_path / "storage"),
                      XRAY_MODEL_DIR=str(path), XRAY_RUNTIME="openvino-bf16")
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        assert " with openvino-bf16 on cpu" in worker.log()
        app = create_app({**settings, "TESTING": True})
        client = TokenClient(app.test_client(), api_token(own_pg_url, "rt"))
        batch = submit_and_wait(client, real_xray_bytes(3))
        assert batch["counts"]["succeeded"] == 3
        for job in batch["jobs"]:
            assert client.get(job["url"]).get_json()["runtime"] == "openvino-bf16"
        csv_text = client.get(f"/api/v1/batches/{batch['id']}/export.csv").get_data(as_text=True)
        assert csv_text.splitlines()[0].split(",").index("runtime") > 0
        assert csv_text.count("openvino-bf16") == 3
        # the model card shows the check's figures for each runtime
        from tests.web.test_accounts import sign_in

        card = sign_in(app, "rt-reader").get(f"/models/{read_manifest(path).version}").get_data(as_text=True)
        assert "Runtimes checked against float32" in card
        for name, figures in report["variants"].items():
            assert f"<td>{name}</td>" in card and f"{figures['min_map_correlation']:.4f}" in card
    finally:
        worker.stop()


def test_runtimes_timed_at_start_take_turns_so_a_passing_burst_of_load_falls_on_all_of_them():
    """Two runtimes, "a" a third faster than "b"; another process takes the cores for the first 0.3 s (every call
    then takes 4× as long). Timed one after another, the burst fell on "a" alone and "b" won; taking turns,
    each gets its share of it and the faster one wins."""
    import time as clock

    began = clock.perf_counter()

    def runtime(seconds):
        def forward(batch):
            slow = 4.0 if clock.perf_counter() - began < 0.3 else 1.0
            clock.sleep(seconds * slow)
            return batch, batch
        return forward

    batch = np.zeros((4, 2, 2, 3), np.float32)
    chosen, speeds = runtimes.fastest({"a": runtime(0.010), "b": runtime(0.015)}, batch, seconds=0.6)
    assert chosen == "a" and speeds["a"] > speeds["b"]
