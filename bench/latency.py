"""Benchmark: how long one person waits for one X-ray, at idle and behind another owner's backlog.

A stack of its own (gunicorn, Redis, Postgres, the recovery loop, one worker; Xception transfer at 299):
owner A uploads single full-resolution (1024²) X-rays and polls the job (every 20 ms at idle, 0.1 s
under load), from the 202 answer to "succeeded". First 20 at idle, one after another; then owner B uploads a backlog of 500
and A sends one image a second while it drains. The worker's collector takes whatever is queued (up to
XRAY_BATCH_SIZE, the throughput optimum and XRAY_LATENCY_GOAL_MS) at once and takes owners in turn, so a
lone image runs at batch 1 immediately and A's image waits for about the batch in hand and one more.
The model is optimized first and the worker serves XRAY_RUNTIME=--runtime (auto: the fastest verified).

    .venv/bin/python bench/latency.py [--samples 20] [--backlog 500] [--batch 16] [--runtime auto]
                                      [--latency-goal-ms 0]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import machine, optimized_xception, real_xrays, throwaway_database
from end_to_end import running_stack, start, stop


def upload(base: str, token: str, paths: list[Path]) -> dict:
    from tests.helpers import post_images

    status, _, body = post_images(base + "/api/v1/batches", [(p.name, p.read_bytes()) for p in paths],
                                  timeout=300, token=token)
    assert status == 202, status
    return body


def wait_job(base: str, token: str, url: str, interval: float = 0.02) -> None:
    request = urllib.request.Request(base + url, headers={"Authorization": f"Bearer {token}"})
    while True:
        with urllib.request.urlopen(request, timeout=30) as response:
            status = json.load(response)["status"]
        if status in ("succeeded", "failed"):
            assert status == "succeeded", status
            return
        time.sleep(interval)


def one_image(base: str, token: str, path: Path, interval: float = 0.02) -> float:
    """Seconds from the upload's 202 answer to the job's result."""
    body = upload(base, token, [path])
    answered = time.perf_counter()
    wait_job(base, token, body["jobs"][0]["url"], interval)
    return time.perf_counter() - answered


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--backlog", type=int, default=500)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--latency-goal-ms", type=float, default=0.0)
    args = parser.parse_args()
    import sqlalchemy as sa

    from tests.helpers import api_token

    with throwaway_database() as url, tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        optimized_xception(workdir / "model", 299)
        settings = {"XRAY_BATCH_SIZE": str(args.batch), "XRAY_QUOTA_QUEUED_JOBS": str(args.backlog + 100),
                    "XRAY_RATE_LIMIT_API": "100000 per minute", "XRAY_RUNTIME": args.runtime,
                    "XRAY_LATENCY_GOAL_MS": str(args.latency_goal_ms)}
        with running_stack(url, workdir, workdir / "model", **settings) as (env, base):
            person, other = api_token(url, "person"), api_token(url, "other")
            worker_log = workdir / "worker.log"
            worker = start([sys.executable, "-m", "celery", "-A", "worker.main", "worker", "--loglevel=INFO",
                            "--concurrency=1", "--without-gossip", "--without-mingle", "--without-heartbeat",
                            "-n", "latency@%h"], env, worker_log)
            try:
                while " serves " not in worker_log.read_text():
                    time.sleep(0.3)
                serves = next(line for line in worker_log.read_text().splitlines() if " serves " in line)
                serves = serves.split(" with ", 1)[1]
                images = real_xrays(max(args.samples, args.backlog))
                one_image(base, person, images[0])  # the first request of each gunicorn process imports things
                idle = [one_image(base, person, images[i]) for i in range(args.samples)]

                backlog_started = time.perf_counter()
                with concurrent.futures.ThreadPoolExecutor(max_workers=args.samples + 2) as pool:
                    flood = [pool.submit(upload, base, other, images[i:i + 50]) for i in range(0, args.backlog, 50)]
                    for future in flood:
                        future.result()
                    flooded = time.perf_counter() - backlog_started
                    samples = []
                    for i in range(args.samples):
                        # polled every 0.1 s: 20 pollers at 50 a second would take the CPU the worker needs
                        samples.append(pool.submit(one_image, base, person, images[i], 0.1))
                        time.sleep(1.0)
                    busy = [future.result() for future in samples]
                engine = sa.create_engine(url)
                with engine.connect() as conn:
                    waiting = conn.execute(sa.text("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")).scalar()
                engine.dispose()
            finally:
                stop(worker)
    print(f"latency: one 1024² NIH X-ray, from the 202 answer to its result (polled every 20 ms; 0.1 s under load), gunicorn + Redis + "
          f"Postgres + one worker, Xception transfer at 299, XRAY_BATCH_SIZE {args.batch}, XRAY_LATENCY_GOAL_MS "
          f"{args.latency_goal_ms:g}; {machine()}")
    print(f"the worker: {serves}")
    print("| situation | samples | p50 s | p95 s | max s |")
    print("|---|---:|---:|---:|---:|")
    for name, values in (("idle, one after another", idle),
                         (f"behind another owner's {args.backlog}-image backlog, one a second", busy)):
        print(f"| {name} | {len(values)} | {percentile(values, 50):.2f} | {percentile(values, 95):.2f} | "
              f"{max(values):.2f} |")
    print(f"the backlog's {args.backlog} images were uploaded in {flooded:.1f} s; {waiting} jobs were still waiting "
          f"when the last sample finished (it must be > 0 for the second row to mean 'behind a backlog')")
    print("target (issue 13): idle p50 ≤ 0.5 s")


if __name__ == "__main__":
    main()
