"""Benchmark: the model registry's costs, measured in one run on this machine.

- cold load: a registry version's first job waits for its load (worker/models.py): the committed starter,
  loaded as a worker loads a pushed version, the first time in the process and again after it was evicted;
- promotion: from moving the 'default' alias to the first batch resolved to the new version (the resolve is
  one read; nothing is reloaded by the web);
- two versions at once: images/s of one worker process serving one version, against the same worker serving
  two versions whose batches alternate (both loaded: XRAY_MAX_LOADED_MODELS=2). The ratio is the cost.

Two copies of the starter are used (the second with a re-saved model file, so another version id); on real
full-resolution X-rays when ../shared/data is present.

    .venv/bin/python bench/registry.py [--images 96] [--batch 16]
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
import time
from pathlib import Path

from _common import REPO, machine, real_xrays

STARTER = REPO / "models" / "starter"


def second_version(folder: Path, out: Path) -> str:
    """The starter under another version id: the same weights, the model file saved again with its manifest's
    version set to the new file's hash (what `xray-model export` writes)."""
    import json

    import keras

    from shared.model.manifest import MANIFEST_FILE, MODEL_FILE, file_version

    shutil.copytree(folder, out)
    model = keras.saving.load_model(out / MODEL_FILE, compile=False)
    model.save(out / MODEL_FILE)
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    manifest["version"] = file_version(out / MODEL_FILE)
    manifest["name"] = manifest["name"] + "-copy"
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
    return manifest["version"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    from shared.auth import accounts
    from shared.db.migrate import upgrade
    from shared.jobs import lifecycle
    from shared.jobs.storage import upload_key
    from shared.model import registry
    from shared.model.manifest import read_manifest
    from shared.ops.config import load_settings
    from worker.pipeline import process_job
    from worker.runtime import build_context

    paths = real_xrays(args.images)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        url = f"sqlite:///{work / 'bench.db'}"
        upgrade(url)
        storage = work / "storage"
        settings = load_settings(database_url=url, storage_dir=storage, model_dir=STARTER, model_pinned=False,
                                 max_loaded_models=2, batch_size=args.batch, var_dir=work)
        first = read_manifest(STARTER).version
        shutil.copytree(STARTER, registry.version_dir(storage, first))
        second = second_version(STARTER, work / "copy")
        shutil.copytree(work / "copy", registry.version_dir(storage, second))
        ctx = build_context(settings.replace(model_dir=work / "copy", model_pinned=False), worker_name="bench")

        started = time.perf_counter()
        ctx.using(first)
        cold_first = time.perf_counter() - started
        ctx.models._loaded.pop(first)  # evicted, as the LRU does
        started = time.perf_counter()
        ctx.using(first)
        cold_again = time.perf_counter() - started

        with ctx.db.session() as session:  # both versions were registered (ready) by their loads
            owner = accounts.create_user(session, "bench", None).id
        with ctx.db.session() as session:
            registry.move_alias(session, "default", first, None)

        def batch_of(paths, version):
            uploads = []
            for path in paths:
                data = path.read_bytes()
                key = upload_key("png")
                ctx.storage.put(key, data)
                uploads.append(lifecycle.NewJob(path.name, hashlib.sha256(data).hexdigest(), len(data), image_key=key))
            with ctx.db.session() as session:
                return [job.id for job in lifecycle.create_batch(session, owner, uploads, model_version=version).jobs]

        def run(batches):
            started = time.perf_counter()
            for ids in batches:
                for job_id in ids:
                    process_job(ctx, job_id)
            return sum(len(ids) for ids in batches) / (time.perf_counter() - started)

        ctx.using(second)  # both loaded before anything is timed
        run([batch_of(paths[:args.batch], first)])  # warm-up
        chunks = [paths[i:i + args.batch] for i in range(0, len(paths), args.batch)]
        one = run([batch_of(chunk, first) for chunk in chunks])
        two = run([batch_of(chunk, (first, second)[i % 2]) for i, chunk in enumerate(chunks)])

        with ctx.db.session() as session:
            started = time.perf_counter()
            registry.move_alias(session, "default", second, None)
        with ctx.db.session() as session:
            resolved = registry.resolve_for_batch(session, None).version
        promote_ms = (time.perf_counter() - started) * 1000
        promoted = batch_of(paths[:1], resolved)
        started = time.perf_counter()
        process_job(ctx, promoted[0])
        first_job_ms = (time.perf_counter() - started) * 1000
        assert resolved == second

    print(f"model registry: the committed starter ({first}) and a copy under another version; {len(paths)} real "
          f"X-rays ({paths[0].parent}); batch {args.batch}; {machine()}")
    print(f"  cold load of a version (first job waits for it): {cold_first:.1f} s first in the process, "
          f"{cold_again:.1f} s after eviction")
    print(f"  promotion: alias moved and the next batch resolved to the new version in {promote_ms:.1f} ms; its "
          f"first job (version already loaded) done {first_job_ms:.0f} ms later")
    print(f"  one version: {one:.1f} images/s; two versions, batches alternating: {two:.1f} images/s; "
          f"ratio {two / one:.2f}")


if __name__ == "__main__":
    main()
