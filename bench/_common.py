"""Shared by the benchmarks: the model under test, real X-rays, and a timer."""
from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
FULLRES = REPO.parent / "shared" / "data" / "nih" / "nih-fullres-sample" / "images"


def real_xrays(count: int | None = None) -> list[Path]:
    """The 57 full-resolution NIH images (repeated to reach count), or the 64×64 fixtures if absent."""
    paths = sorted(FULLRES.glob("*.png")) or sorted((REPO / "tests" / "fixtures" / "nih64").glob("*.png"))
    if count is None:
        return paths
    return [paths[i % len(paths)] for i in range(count)]


def export_xception(out: Path, input_size: int) -> Path:
    """An Xception-transfer artifact with fixed random weights (ImageNet weights cannot be downloaded here;
    the speed is the same)."""
    import keras

    from training.untrained import init_model

    keras.utils.set_random_seed(0)
    init_model("xception-transfer", input_size, "none", out, name=f"bench-xception-{input_size}")
    return out


def optimized_xception(out: Path, input_size: int, check_images: int = 16) -> dict:
    """``export_xception`` then ``xray-model optimize`` on it (each variant checked on real X-rays, as an
    operator would run it); returns the check's report, which the manifest now holds."""
    from training.optimize import optimize

    export_xception(out, input_size)
    return optimize(out, real_xrays()[:check_images])


def served_engine(artifact: Path, runtime: str = "auto", batch: int = 16):
    """The engine a worker would serve with XRAY_RUNTIME=runtime (for "auto": timed at start, like a worker);
    runtime may also be the name a result records ("tensorflow-float32" means float32)."""
    from shared.ops.config import load_settings
    from worker.artifact import load_artifact
    from worker.runtime import serving_engine
    from worker.runtimes import CHOICES

    if runtime not in CHOICES:
        runtime = runtime.split("-", 1)[1]

    model, manifest = load_artifact(artifact)
    return serving_engine(load_settings(model_dir=artifact, runtime=runtime, batch_size=batch), model, manifest)


def machine() -> str:
    from training.machine import describe_machine

    return describe_machine()


def timed(function, min_seconds: float = 3.0, min_runs: int = 3) -> float:
    """Seconds per call: one warm-up call, then at least min_runs calls and min_seconds in all."""
    function()
    runs, started = 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - started < min_seconds:
        function()
        runs += 1
    return (time.perf_counter() - started) / runs


def process_stats(*pgids: int):
    """(pid, the /proc stat fields after the name) of every running process in these process groups:
    fields[2] is the group, fields[11:15] the CPU ticks (user, system, reaped children's)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) in pgids:
            yield int(stat.parent.name), fields


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system, reaped children included) used so far by every process of a process group:
    what a worker costs per image however busy the rest of the machine is."""
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(sum(int(v) for v in fields[11:15]) for _, fields in process_stats(pgid)) / ticks


PG = os.environ.get("XRAY_BENCH_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")
REDIS = os.environ.get("XRAY_BENCH_REDIS", "redis://127.0.0.1:6379/0")


@contextlib.contextmanager
def throwaway_database():
    """A migrated Postgres database of the benchmark's own (its URL), dropped afterwards."""
    import uuid

    import sqlalchemy as sa

    from shared.db.migrate import upgrade

    name = f"xray_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        upgrade(f"{PG}/{name}")
        yield f"{PG}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
