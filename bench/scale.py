"""Scale test: 1,000 real X-rays (NIH, 64×64) through the HTTP API to a running stack (gunicorn, Redis,
Postgres, the recovery loop) with 1, 2 and 4 worker processes sharing this machine's cores
(``XRAY_TF_THREADS`` = cores // processes, at least 1). Prints jobs/s and p95 upload→result for each, the
speed-up over one process, and the first process count that adds less than 10 %: where more processes stop
helping. Serves the committed starter model unless --xception SIZE asks for an Xception transfer artifact.
Uses the shared Postgres and Redis on 127.0.0.1 with a database and a queue of its own.

    .venv/bin/python bench/scale.py [--images 1000] [--workers 1 2 4] [--batch 16] [--xception 299]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from _common import REPO, export_xception, machine, throwaway_database
from end_to_end import run, running_stack

NIH1000 = REPO.parent / "shared" / "data" / "nih" / "nih1000-64px" / "images"
STARTER = REPO / "models" / "starter"
HELPS = 1.10  # a process count "helps" when it gives at least 10 % more jobs/s than the one before


def stops_helping(results: list[dict]) -> int | None:
    """The first process count whose jobs/s is under HELPS × the previous count's; None if each helped."""
    for before, after in zip(results, results[1:]):
        if after["jobs_per_s"] < HELPS * before["jobs_per_s"]:
            return after["workers"]
    return None


def footprint(url: str, broker: str) -> dict:
    """What one finished image takes in Postgres (its job row and findings, indexes and TOAST included) and
    one queued message in Redis, measured on this run's own database and a scratch queue."""
    import uuid

    import redis
    import sqlalchemy as sa

    from shared.jobs.queue import create_celery, dispatch
    from shared.ops.config import load_settings

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        jobs, findings = conn.execute(sa.text("SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM findings)")).one()
        size = conn.execute(sa.text("SELECT pg_total_relation_size('jobs') + pg_total_relation_size('findings')")).scalar()
        maps = conn.execute(sa.text("SELECT avg(octet_length(maps)) FROM jobs")).scalar() or 0
    engine.dispose()
    queue, count = f"bench-footprint-{uuid.uuid4().hex[:8]}", 1000
    client = redis.Redis.from_url(broker)
    try:
        dispatch(create_celery(load_settings(broker_url=broker, queue_name=queue)), [uuid.uuid4() for _ in range(count)])
        message = client.memory_usage(queue) / client.llen(queue)
    finally:
        client.delete(queue)
    return {"jobs": jobs, "findings_per_job": findings / jobs, "pg_bytes_per_job": size / jobs,
            "maps_bytes": float(maps), "redis_bytes_per_message": message}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--xception", type=int, metavar="SIZE", help="serve an Xception transfer artifact at this input size")
    args = parser.parse_args()
    paths = sorted(NIH1000.glob("*.png"))[:args.images]
    if len(paths) < args.images:
        sys.exit(f"need {args.images} images under {NIH1000}, found {len(paths)}")
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    with throwaway_database() as url, tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        artifact = export_xception(workdir / "model", args.xception) if args.xception else STARTER
        with running_stack(url, workdir, artifact) as (env, base):
            results = [run(env, base, url, n, paths, cores, workdir, args.batch) for n in args.workers]
        sizes = footprint(url, env["CELERY_BROKER_URL"])
    model = f"Xception transfer at {args.xception}" if args.xception else f"the starter model ({STARTER.relative_to(REPO)})"
    print(f"scale: {len(paths)} real NIH X-rays (nih1000-64px) via POST /api/v1/batches (50 per request), gunicorn "
          f"(2 processes) + Redis + Postgres + recovery on the same machine; {model}, served as {results[0]['runtime']}, "
          f"batch {args.batch}; {machine()}; "
          f"load average {load:.2f} at start (the machine is shared)")
    print("| worker processes | TF threads each | jobs | failed | jobs/s | × 1 process | p50 upload→result s | p95 s | "
          "uploads took s | worker CPU s per image | images/s per worker core |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    first = results[0]["jobs_per_s"]
    for r in results:
        cpu = r["worker_cpu_s"] / r["jobs"]
        print(f"| {r['workers']} | {max(1, cores // r['workers'])} | {r['jobs']} | {r['failed']} | {r['jobs_per_s']:.2f} | "
              f"{r['jobs_per_s'] / first:.2f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['upload_s']:.1f} | {cpu:.3f} | {1 / cpu:.1f} |")
    print(f"load average {os.getloadavg()[0]:.2f} at the end. Worker CPU per image counts every worker process's user + "
          "system time from model loaded to last result: on a shared machine it is the steadier figure")
    print(f"footprint: Postgres {sizes['pg_bytes_per_job'] / 1024:.1f} kB per finished image ({sizes['jobs']} jobs, "
          f"{sizes['findings_per_job']:.0f} findings rows each, maps {sizes['maps_bytes'] / 1024:.1f} kB; tables with "
          f"indexes and TOAST); Redis {sizes['redis_bytes_per_message']:.0f} B per queued message")
    least = min(r["worker_cpu_s"] / r["jobs"] for r in results)
    print(f"ceiling of {cores} dedicated cores for the workers alone: {cores / least:.1f} jobs/s (cores ÷ the least "
          "worker CPU s per image); process counts past the one that reaches it add nothing but a larger share of a "
          "shared machine")
    limit = stops_helping(results)
    if len(results) < 2:
        return
    if limit is None:
        print(f"every step added at least {100 * (HELPS - 1):.0f} % jobs/s: more processes still help at {results[-1]['workers']}")
    else:
        print(f"more processes stop helping at {limit} (under {100 * (HELPS - 1):.0f} % more jobs/s than the step before)")


if __name__ == "__main__":
    main()
