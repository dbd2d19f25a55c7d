"""Benchmark 2: the worker pipeline on real X-rays against the original hobby project's per-image path.

Same images (the NIH full-resolution sample), same Xception-transfer weights, same run.
- baseline (hobby): per image: load and resize with OpenCV, ``model.predict`` on it, then a
  GradientTape Grad-CAM for the top class (one map per image).
- ours: jobs recorded in a database, then the worker's path: decode → batched compiled forward pass →
  maps for every class, stored as data → results in the database. No pictures are drawn. The model is
  first optimized (`xray-model optimize`, each variant checked on real X-rays) and the worker serves
  XRAY_RUNTIME=--runtime (auto: the fastest verified runtime, timed at its start).

It also reports the bytes stored per image: now (the upload and its maps) and as the worker stored them
before maps were data (the upload and a full-size JPEG overlay for every finding above threshold, drawn
here with the same renderer the web now uses on request).

    .venv/bin/python bench/worker_pipeline.py [--images 57] [--baseline-images 57] [--input-size 299] [--batch 16]
                                              [--runtime auto]

The steady-state figure needs at least 500 images (the 57 repeated); the hobby baseline is timed on the first
--baseline-images of them (at under one image a second, 500 would take ten minutes and say nothing more).
"""
from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

from _common import machine, optimized_xception, real_xrays, served_engine, timed


def hobby_baseline(model, paths, size: int) -> float:
    import cv2
    import keras
    import numpy as np
    import tensorflow as tf

    # The notebook's Grad-CAM: gradients of the class score with respect to the last conv features.
    grad_model = keras.Model(model.input, [model.get_layer("block14_sepconv2_act").output, model.output])
    started = time.perf_counter()
    for path in paths:
        image = cv2.imread(str(path))
        image = cv2.resize(image, (size, size)).astype(np.float32) / 127.5 - 1.0
        x = image[None]
        predictions = model.predict(x, verbose=0)
        top = int(np.argmax(predictions[0]))
        with tf.GradientTape() as tape:
            features, outputs = grad_model(x)
            score = outputs[:, top]
        grads = tape.gradient(score, features)
        weights = tf.reduce_mean(grads, axis=(1, 2))
        heatmap = tf.nn.relu(tf.einsum("bhwk,bk->bhw", features, weights)).numpy()[0]
        heatmap /= heatmap.max() + 1e-8
    return time.perf_counter() - started


def raw_model(artifact: Path, runtime: str, size: int, batch: int) -> tuple[float, float]:
    """Images/s of the served runtime's forward pass alone (features and logits) at the worker's batch size:
    the ceiling for any pipeline around it on this machine; and its CPU seconds per image (all threads)."""
    import numpy as np

    engine = served_engine(artifact, runtime, batch)
    x = np.random.default_rng(0).uniform(-1, 1, (batch, size, size, 3)).astype("float32")
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    rate = batch / timed(lambda: engine.forward(x))
    return rate, (time.process_time() - cpu_started) / ((time.perf_counter() - wall_started) * rate)


def our_pipeline(artifact: Path, paths, batch: int, workdir: Path, runtime: str) -> tuple[float, dict]:
    from shared.auth import accounts
    from shared.db.migrate import upgrade
    from shared.jobs import lifecycle
    from shared.jobs.storage import upload_key
    from shared.ops.config import load_settings
    from worker.pipeline import process_job
    from worker.runtime import build_context

    url = f"sqlite:///{workdir / 'bench.db'}"
    upgrade(url)
    settings = load_settings(database_url=url, storage_dir=workdir / "storage", model_dir=artifact, batch_size=batch,
                             var_dir=workdir, runtime=runtime)
    ctx = build_context(settings, worker_name="bench")
    uploads = []
    for path in paths:
        data = path.read_bytes()
        key = upload_key("png")
        ctx.storage.put(key, data)
        uploads.append(lifecycle.NewJob(path.name, hashlib.sha256(data).hexdigest(), len(data), image_key=key,
                                        stored_bytes=len(data)))
    with ctx.db.session() as session:
        owner = accounts.create_user(session, "bench", None).id
        ids = [job.id for job in lifecycle.create_batch(session, owner, uploads).jobs]
    started, cpu_started = time.perf_counter(), time.process_time()
    outcomes = {}
    for job_id in ids:  # one message per job, as the queue delivers them; claimed jobs are skipped fast
        outcomes[job_id] = process_job(ctx, job_id)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    from sqlalchemy import func, select
    from sqlalchemy.orm import selectinload

    from shared.db.models import Job
    from web import renders

    with ctx.db.session() as session:
        done = session.scalar(select(func.count()).where(Job.status == "succeeded"))
        timing = session.execute(select(func.avg(Job.decode_ms), func.avg(Job.inference_ms))).one()
        stored = session.scalars(select(Job).options(selectinload(Job.findings))).all()
        uploads = sum(job.stored_bytes or len(ctx.storage.get(job.image_key)) for job in stored)
        maps_bytes = sum(len(job.maps) for job in stored)
        old_overlays = 0  # what the worker used to write: a JPEG overlay per finding above threshold (or the top one)
        old_count = 0
        for job in stored[:20]:
            shown = [f.label for f in job.findings if f.positive] or [max(job.findings, key=lambda f: f.probability).label]
            for label in shown:
                old_overlays += len(renders.overlay(ctx.storage, job, label)[0])
                old_count += 1
        old_per_image = old_overlays / min(20, len(stored))
    assert done == len(ids), f"only {done} of {len(ids)} succeeded"
    n = len(stored)
    return elapsed, {"cpu_per_image": cpu / len(ids), "runtime": ctx.engine.runtime, "decode_ms": timing[0], "inference_ms": timing[1], "upload_per_image": uploads / n,
                     "maps_per_image": maps_bytes / n, "old_overlays_per_image": old_per_image,
                     "old_overlay_count": old_count / min(20, n)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=57)
    parser.add_argument("--baseline-images", type=int, default=57, help="images the hobby baseline is timed on")
    parser.add_argument("--input-size", type=int, default=299)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--runtime", default="auto", help="XRAY_RUNTIME for the worker (auto: the fastest verified)")
    args = parser.parse_args()
    from worker.artifact import load_artifact

    paths = real_xrays(args.images)
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        artifact = workdir / "model"
        optimized_xception(artifact, args.input_size)
        model, manifest = load_artifact(artifact)
        model.predict(__import__("numpy").zeros((1, args.input_size, args.input_size, 3), "float32"), verbose=0)
        baseline_paths = paths[:max(1, min(args.baseline_images, len(paths)))]
        baseline = hobby_baseline(model, baseline_paths, args.input_size) * len(paths) / len(baseline_paths)
        ours, details = our_pipeline(artifact, paths, args.batch, workdir, args.runtime)
        raw, raw_cpu = raw_model(artifact, details["runtime"], args.input_size, args.batch)
    n = len(paths)
    print(f"worker pipeline: {n} real NIH X-rays ({paths[0].parent}), Xception transfer at {args.input_size}, "
          f"same random weights; {machine()}")
    print("| path | seconds | images/s | heatmaps |")
    print("|---|---:|---:|---|")
    print(f"| baseline: hobby per-image predict + GradientTape Grad-CAM (timed on {len(baseline_paths)}, scaled) | {baseline:.1f} | {n / baseline:.2f} | "
          f"1 per image, not saved |")
    print(f"| ours: decode → batch {args.batch} forward ({details['runtime']}) → all 15 maps as data → database | {ours:.1f} | "
          f"{n / ours:.2f} | 15 per image, {details['maps_per_image']:.0f} bytes |")
    print(f"speed-up: {baseline / ours:.1f}x (target 15x); ours per image: decode {details['decode_ms']:.0f} ms "
          f"(on I/O threads), model {details['inference_ms']:.0f} ms")
    print(f"ceiling: the served runtime's forward pass alone, batch {args.batch}, same run: {raw:.2f} images/s = {raw * baseline / n:.1f}x "
          f"the baseline; the pipeline runs at {100 * n / ours / raw:.0f}% of it")
    print(f"CPU per image (all threads): the pipeline {1000 * details['cpu_per_image']:.1f} ms, the forward pass alone "
          f"{1000 * raw_cpu:.1f} ms: {1000 * (details['cpu_per_image'] - raw_cpu):.1f} ms outside it (decode, checks, maps, "
          f"claims, commits); on {__import__('os').cpu_count()} cores")
    kb = 1024
    before = details["upload_per_image"] + details["old_overlays_per_image"]
    after = details["upload_per_image"] + details["maps_per_image"]
    print(f"stored per image: now {after / kb:.1f} kB (upload {details['upload_per_image'] / kb:.1f} kB + maps "
          f"{details['maps_per_image'] / kb:.2f} kB); before maps were data {before / kb:.1f} kB (upload + "
          f"{details['old_overlay_count']:.1f} JPEG overlays, {details['old_overlays_per_image'] / kb:.1f} kB): "
          f"{before / after:.2f}x less")


if __name__ == "__main__":
    main()
