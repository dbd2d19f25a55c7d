"""Benchmark 3: end to end. 500 real X-rays through the HTTP API to a running stack (gunicorn, Redis,
Postgres, the recovery loop) with one, then two, worker processes. Reports jobs/s, p50 and p95 from
upload to result, and how much of the model's raw throughput (same batch size, same run) the stack
delivers. Uses the shared Postgres and Redis on 127.0.0.1 with a database and a queue of its own.

The model is first optimized (`xray-model optimize`: bf16 and OpenVINO variants checked on real X-rays),
and the workers serve what XRAY_RUNTIME=--runtime gives them (auto: the fastest verified variant); the
raw throughput it is compared with is that same runtime's forward pass.

    .venv/bin/python bench/end_to_end.py [--images 500] [--input-size 299] [--batch 16] [--workers 1 2]
                                         [--runtime auto|float32|openvino-bf16|...]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import (REDIS, REPO, group_cpu_seconds, machine, optimized_xception, real_xrays, served_engine,
                     throwaway_database, timed)


def post(url: str, files: list[Path], token: str) -> None:
    from tests.helpers import post_images

    status, _, _ = post_images(url, [(p.name, p.read_bytes()) for p in files], timeout=120, token=token)
    assert status == 202, status


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if json.load(response)["status"] == "ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def run(stack_env, base_url, engine_url, workers: int, paths, cores: int, workdir: Path, batch: int) -> dict:
    import sqlalchemy as sa

    env = {**stack_env, "XRAY_TF_THREADS": str(max(1, cores // workers)), "XRAY_BATCH_SIZE": str(batch)}
    procs = []
    for i in range(workers):
        log = workdir / f"worker-{workers}-{i}.log"
        procs.append(start([sys.executable, "-m", "celery", "-A", "worker.main", "worker", "--loglevel=INFO", "--concurrency=1",
                            "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"bench{i}@%h"], env, log))
        while " serves " not in log.read_text():
            time.sleep(0.3)
    ready_cpu = [group_cpu_seconds(process.pid) for process in procs]  # model loading is not counted
    served = log.read_text().split(" serves ", 1)[1].split(" with ", 1)[1].split(" ", 1)[0]
    engine = sa.create_engine(engine_url)
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar()
    started = time.time()
    for i in range(0, len(paths), 50):
        post(base_url + "/api/v1/batches", paths[i:i + 50], stack_env["XRAY_BENCH_TOKEN"])
    uploaded = time.time() - started
    total = before + len(paths)
    while True:
        with engine.connect() as conn:
            done = conn.execute(sa.text("SELECT count(*) FROM jobs WHERE status IN ('succeeded', 'failed')")).scalar()
        if done >= total:
            break
        time.sleep(0.5)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT extract(epoch FROM finished_at - created_at), status, inference_ms FROM jobs "
            f"ORDER BY created_at OFFSET {before}")).all()
        span = conn.execute(sa.text(
            f"SELECT extract(epoch FROM max(finished_at) - min(created_at)) FROM "
            f"(SELECT * FROM jobs ORDER BY created_at OFFSET {before}) recent")).scalar()
    engine.dispose()
    cpu = sum(group_cpu_seconds(process.pid) - started_cpu for process, started_cpu in zip(procs, ready_cpu))
    for process in procs:
        stop(process)
    import numpy as np

    latencies = np.array([float(r[0]) for r in rows])
    return {"workers": workers, "runtime": served, "jobs": len(rows), "failed": sum(r[1] != "succeeded" for r in rows),
            "seconds": float(span), "jobs_per_s": len(rows) / float(span), "upload_s": uploaded, "worker_cpu_s": cpu,
            "p50": float(np.percentile(latencies, 50)), "p95": float(np.percentile(latencies, 95))}


@contextlib.contextmanager
def running_stack(url: str, workdir: Path, artifact: Path, **settings: str):
    """gunicorn and the recovery loop on a throwaway database and a queue of their own; yields (env, base URL).
    Workers are started per run (``run``) with this env; ``settings`` are more environment variables."""
    from tests.helpers import api_token, free_port

    database = url.rsplit("/", 1)[1]
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "CELERY_BROKER_URL": REDIS, "XRAY_QUEUE": f"bench-{database}",
           "XRAY_VAR_DIR": str(workdir), "XRAY_STORAGE_DIR": str(workdir / "storage"),
           "XRAY_MODEL_DIR": str(artifact), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2",
           "XRAY_SECRET_KEY": secrets.token_urlsafe(48), **settings}
    env["XRAY_BENCH_TOKEN"] = api_token(url, "bench")
    web = recovery = None
    try:
        web = start([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
                     "--workers", "2", "--threads", "4", "web:create_app()"], env, workdir / "web.log")
        recovery = start([sys.executable, "-m", "worker.recovery"], env, workdir / "recovery.log")
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/healthz")
        yield env, base
    finally:
        for process in (web, recovery):
            if process:
                stop(process)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--input-size", type=int, default=299)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runtime", default="auto", help="XRAY_RUNTIME for the workers and the raw figure")
    args = parser.parse_args()
    import numpy as np

    cores = os.cpu_count() or 1
    with throwaway_database() as url, tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        artifact = workdir / "model"
        optimized_xception(artifact, args.input_size)
        with running_stack(url, workdir, artifact, XRAY_RUNTIME=args.runtime) as (env, base):
            paths = real_xrays(args.images)
            results = [run(env, base, url, n, paths, cores, workdir, args.batch) for n in args.workers]

            engine = served_engine(artifact, results[0]["runtime"] if args.runtime == "auto" else args.runtime,
                                   args.batch)
            x = np.random.default_rng(0).uniform(-1, 1, (args.batch, args.input_size, args.input_size, 3)).astype("float32")
            cpu_started, wall_started = time.process_time(), time.perf_counter()
            raw = args.batch / timed(lambda: engine.forward(x))
            # CPU seconds per image of the forward pass alone (all its threads), to set beside the worker's
            raw_cpu = (time.process_time() - cpu_started) / ((time.perf_counter() - wall_started) * raw)
    print(f"end to end: {args.images} real NIH X-rays (the 57 full-resolution ones, repeated) via POST /api/v1/batches "
          f"(50 per request), gunicorn + Redis + Postgres + recovery; Xception transfer at {args.input_size}, batch "
          f"{args.batch}; {machine()}")
    print("| workers | runtime | jobs | failed | jobs/s | p50 upload→result s | p95 s | uploads took s | worker CPU s per image "
          "| share of raw model throughput |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['workers']} | {r['runtime']} | {r['jobs']} | {r['failed']} | {r['jobs_per_s']:.2f} | {r['p50']:.1f} | {r['p95']:.1f} | "
              f"{r['upload_s']:.1f} | {r['worker_cpu_s'] / r['jobs']:.3f} | {100 * r['jobs_per_s'] / raw:.0f}% |")
    print(f"the forward pass alone takes {raw_cpu:.3f} CPU s per image; the rest of a worker's CPU per image is decoding, "
          f"maps, claims and commits, and the web, Postgres and Redis share the same {cores} cores")
    print(f"raw model throughput of the served runtime ({engine.runtime}), same batch size, same run: {raw:.2f} "
          f"images/s (target: the stack with one worker delivers ≥ 85%)")


if __name__ == "__main__":
    main()
