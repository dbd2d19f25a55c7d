"""What a worker tells its operators: metrics (shared/ops/metrics.py) and one log line per finished job.

The pool processes count; the worker's main process serves (worker/main.py). A pool process reports
how busy it was over the last minute from a small thread, so the figure falls while it sits idle.
"""
from __future__ import annotations

import collections
import logging
import threading
import time

from shared.ops import metrics

log = logging.getLogger("worker.jobs")
BUSY_WINDOW_SECONDS = 60.0
BUSY_TICK_SECONDS = 1.0


class BusyClock:
    """Seconds spent on tasks, read at any moment (a task in progress counts up to now)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._done = 0.0
        self._since: float | None = None
        self._samples: collections.deque[tuple[float, float]] = collections.deque()

    def start(self) -> None:
        with self._lock:
            self._since = time.monotonic()

    def stop(self) -> None:
        with self._lock:
            if self._since is not None:
                self._done += time.monotonic() - self._since
                self._since = None

    def busy_seconds(self, now: float) -> float:
        with self._lock:
            return self._done + (now - self._since if self._since is not None else 0.0)

    def ratio(self) -> float:
        """Busy share of the last BUSY_WINDOW_SECONDS (or of the time since the first reading)."""
        now = time.monotonic()
        self._samples.append((now, self.busy_seconds(now)))
        while len(self._samples) > 2 and now - self._samples[1][0] >= BUSY_WINDOW_SECONDS:
            self._samples.popleft()
        first_time, first_busy = self._samples[0]
        span = now - first_time
        return min(1.0, max(0.0, (self._samples[-1][1] - first_busy) / span)) if span > 0 else 0.0


clock = BusyClock()


def input_checked(result: str) -> None:
    metrics.INPUT_CHECKS.labels(result).inc()


def pool_process_ready(runtime: str, model_version: str) -> None:
    """In a pool process with its model loaded: it counts as alive, names what it serves, reports busyness."""
    for outcome in metrics.OUTCOMES:  # both series exist from the start: increase() needs a first value
        metrics.JOBS.labels(outcome)
    for stage in metrics.STAGES:
        metrics.STAGE_SECONDS.labels(stage)
    for kind in ("shadow", "rerun"):
        for outcome in metrics.OUTCOMES:
            metrics.VERSION_RESULTS.labels(kind, outcome)
    metrics.MODEL_JOBS.labels(model_version, "succeeded")
    metrics.WORKER_INFO.labels(runtime, model_version).set(1)
    metrics.WORKERS_ALIVE.set(1)
    metrics.BUSY_RATIO.set(0)

    def report():
        while True:
            time.sleep(BUSY_TICK_SECONDS)
            metrics.BUSY_RATIO.set(clock.ratio())

    threading.Thread(target=report, name="xray-busy-ratio", daemon=True).start()


def forward_pass(images: int) -> None:
    metrics.BATCH_SIZE.observe(images)


def maps_timer():
    return metrics.STAGE_SECONDS.labels("maps").time()


def group_finished(group, version: str | None = None) -> None:
    """Count each claimed job of the group by outcome and stage times, and log it (ids and figures only)."""
    for work in group:
        if work.outcome in metrics.OUTCOMES:
            metrics.JOBS.labels(work.outcome).inc()
            metrics.MODEL_JOBS.labels(version or "unknown", work.outcome).inc()
        if work.outcome == "succeeded":
            metrics.STAGE_SECONDS.labels("decode").observe(work.decode_ms / 1000)
            metrics.STAGE_SECONDS.labels("model").observe(work.inference_ms / 1000)
        log.info("job %s %s (decode %.1f ms, model %.1f ms, %d in the group)", work.job_id, work.outcome,
                 work.decode_ms, work.inference_ms, len(group),
                 extra={"job_id": str(work.job_id), "batch_id": str(work.batch_id),
                        "outcome": work.outcome, "decode_ms": round(work.decode_ms, 2),
                        "model_ms": round(work.inference_ms, 2)})
