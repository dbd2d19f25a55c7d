"""Serving metrics on a port of their own (never the public web port): XRAY_METRICS_PORT on
XRAY_METRICS_HOST, path /metrics.

gunicorn's workers and Celery's pool processes each count for themselves; prometheus-client's
multiprocess mode has them write to files in one folder, which the serving process (gunicorn's
master, Celery's main process) reads at every scrape. That folder must be chosen before
prometheus_client is first imported in the process tree, hence :func:`use_multiprocess_dir` with no
import of it at module level here.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from shared.ops.config import Settings

DEFAULT_PORTS = {"web": 9101, "worker": 9102, "recovery": 9103, "pacs": 9104}
ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when it is imported
log = logging.getLogger(__name__)


def port(settings: Settings, process: str) -> int:
    return DEFAULT_PORTS[process] if settings.metrics_port < 0 else settings.metrics_port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def use_multiprocess_dir(settings: Settings, process: str) -> Path:
    """Point prometheus-client at an empty folder of this process tree's own (``<process>-<pid>`` under
    XRAY_METRICS_DIR, or var/metrics), or at PROMETHEUS_MULTIPROC_DIR when the environment sets it.
    Folders left by process trees that died are removed."""
    import sys

    if "shared.ops.metrics" in sys.modules:
        raise RuntimeError("shared.ops.metrics was imported before the metrics folder was chosen: "
                           "its values would stay in this process only")
    if os.environ.get(ENV):
        path = Path(os.environ[ENV])
    else:
        base = Path(settings.metrics_dir) if settings.metrics_dir else settings.var_dir / "metrics"
        base.mkdir(parents=True, exist_ok=True)
        for old in base.glob(f"{process}-*"):
            pid = old.name.rsplit("-", 1)[1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
        path = base / f"{process}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.db"):  # counters start at zero with the process tree
        old.unlink(missing_ok=True)
    os.environ[ENV] = str(path)
    if "prometheus_client" in sys.modules:
        # Imported already (celery's command line loads Flower's plugin, which imports it): metrics made
        # from now on, ours, must still write to the folder.
        from prometheus_client import values

        values.ValueClass = values.get_value_class()
    return path


class PoolCollector:
    """The multiprocess values of every process of the tree, less the gauges of processes that died
    without saying so (a killed pool process), with the per-process busy ratios averaged into one."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def collect(self):
        from prometheus_client import multiprocess

        for file in self.path.glob("gauge_live*_*.db"):
            pid = file.stem.rsplit("_", 1)[1]
            if pid.isdigit() and not _alive(int(pid)):
                multiprocess.mark_process_dead(int(pid), str(self.path))
        for metric in multiprocess.MultiProcessCollector(None, str(self.path)).collect():
            if metric.name == "xray_worker_busy_ratio":
                # The serving process made the gauge too (at import) but never works on a job: not counted.
                pool = [s for s in metric.samples if s.labels.get("pid") != str(os.getpid())]
                metric.samples = [pool[0]._replace(labels={}, value=sum(s.value for s in pool) / len(pool))] if pool else []
            yield metric


class _Only:
    """The metrics of ``sources`` that this process owns (shared.ops.metrics.SERVED_BY), and the client's own
    process_* and python_* figures."""

    def __init__(self, process: str, sources):
        self.process, self.sources = process, sources

    def collect(self):
        from shared.ops.metrics import SERVED_BY

        for source in self.sources:
            for metric in source.collect():
                if not metric.name.startswith("xray_") or metric.name in SERVED_BY[self.process]:
                    yield metric


def registry(process: str, *collectors):
    """What ``process`` serves: the multiprocess values (when its process tree uses them) or its own, plus
    ``collectors`` (read at scrape time)."""
    from prometheus_client import REGISTRY, CollectorRegistry

    values = PoolCollector(Path(os.environ[ENV])) if os.environ.get(ENV) else REGISTRY
    served = CollectorRegistry(auto_describe=False)
    served.register(_Only(process, [values, *collectors]))
    return served


def serve(settings: Settings, process: str, metrics_registry) -> object | None:
    """Start the /metrics server in a thread; returns it, or None when disabled or the port is taken
    (the process itself keeps working: its metrics are missing, which the scrape's `up` shows)."""
    from prometheus_client import start_http_server

    number = port(settings, process)
    if number == 0:
        return None
    try:
        server, _ = start_http_server(number, settings.metrics_host, registry=metrics_registry)
    except OSError as exc:
        log.error("metrics: cannot listen on %s:%d (%s); this %s serves no metrics", settings.metrics_host, number,
                  exc, process)
        return None
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, number)
    return server
