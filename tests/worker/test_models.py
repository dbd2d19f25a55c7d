"""The versions a worker process serves (worker/models.py), on Postgres with real tiny Keras models stored the
way the registry stores them: lazy loads, an LRU of at most XRAY_MAX_LOADED_MODELS, pinned and pooled
workers, metrics by version, and a forward pass that never mixes versions."""
from __future__ import annotations

import shutil
import uuid

import pytest
from prometheus_client import REGISTRY

from shared.db.models import Job
from shared.jobs import lifecycle
from shared.model.manifest import read_manifest
from shared.model.registry import version_dir
from shared.ops.config import load_settings
from tests.helpers import ensure_user, quiet_cv2, real_xray_bytes
from worker.models import NotServedHere
from worker.runtime import build_context


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Three small models in a registry's storage folder: {version: folder}."""
    from training.untrained import init_model

    storage = tmp_path_factory.mktemp("registry-storage")
    versions = {}
    for name in ("one", "two", "three"):
        folder = tmp_path_factory.mktemp("made") / name
        init_model("small-cnn", 64, "none", folder, name=name)
        version = read_manifest(folder).version
        shutil.copytree(folder, version_dir(storage, version))
        versions[version] = version_dir(storage, version)
    return storage, versions


def _loaded_gauge(version: str) -> float | None:
    return REGISTRY.get_sample_value("xray_model_loaded", {"version": version})


def _context(pg_url, tiny_model, storage, **settings):
    return build_context(load_settings(database_url=pg_url, storage_dir=storage, model_dir=tiny_model, **settings),
                         worker_name=f"models-test-{uuid.uuid4().hex[:6]}")


def test_versions_load_on_first_use_and_the_least_recently_used_goes_first(pg_url, tiny_model, stored):
    storage, versions = stored
    one, two, three = versions
    ctx = _context(pg_url, tiny_model, storage, model_pinned=False, max_loaded_models=2)
    folder = ctx.models.folder_version
    assert ctx.models.loaded() == [folder]  # its own folder, at start
    assert ctx.using(one).manifest.version == one
    assert ctx.models.loaded() == [folder, one]
    assert ctx.using(None).manifest.version == folder  # used again: now the most recent
    ctx.using(two)
    assert ctx.models.loaded() == [folder, two]  # one was the least recently used
    assert _loaded_gauge(one) == 0 and _loaded_gauge(two) == 1
    assert REGISTRY.get_sample_value("xray_model_load_seconds_count", {"version": two}) >= 1
    ctx.using(three)
    assert ctx.models.loaded() == [two, three]
    with pytest.raises(Exception, match="not in the registry's storage"):
        ctx.using("sha256-0000000000000000")


def test_pinned_and_pooled_workers_serve_only_their_versions(pg_url, tiny_model, stored):
    storage, versions = stored
    one, two, _ = versions
    pinned = _context(pg_url, tiny_model, storage)  # model_dir given: pinned, as XRAY_MODEL_DIR is
    assert pinned.settings.model_pinned and pinned.models.serves(None) and not pinned.models.serves(one)
    with pytest.raises(NotServedHere):
        pinned.using(one)
    pool = _context(pg_url, tiny_model, storage, model_pinned=False, model_versions=f"{one},{two}")
    assert pool.manifest.version == min(one, two)  # a pool that does not list the folder's version loads one of its own
    assert pool.models.serves(two) and not pool.models.serves(None)


def test_a_forward_pass_never_mixes_versions_and_each_result_names_its_version(pg_url, tiny_model, stored):
    from worker.pipeline import process_job

    storage, versions = stored
    one, two, _ = versions
    ctx = _context(pg_url, tiny_model, storage, model_pinned=False, max_loaded_models=3)
    files = [lifecycle.NewJob(name, "0" * 64, len(data), image_key=f"uploads/{uuid.uuid4().hex}.png")
             for name, data in real_xray_bytes(4)]
    for job, (_, data) in zip(files, real_xray_bytes(4)):
        ctx.storage.put(job.image_key, data)
    with ctx.db.session() as session:
        owner = ensure_user(session).id
        on_one = [j.id for j in lifecycle.create_batch(session, owner, files, model_version=one).jobs]
        on_two = [j.id for j in lifecycle.create_batch(session, owner, files, model_version=two).jobs]
    shapes = []
    for version in (one, two):
        engine = ctx.using(version).engine
        original = engine.forward
        engine.forward = lambda batch, original=original: shapes.append(len(batch)) or original(batch)
    with quiet_cv2():
        assert process_job(ctx, on_one[0]) == "succeeded"  # claims the other three of its version, not the rest
        assert process_job(ctx, on_two[0]) == "succeeded"
    assert shapes == [4, 4]
    with ctx.db.session() as session:
        produced = {job_id: session.get(Job, job_id).model_version for job_id in on_one + on_two}
    assert {produced[j] for j in on_one} == {one} and {produced[j] for j in on_two} == {two}
    assert REGISTRY.get_sample_value("xray_model_jobs_total", {"version": two, "outcome": "succeeded"}) >= 4
